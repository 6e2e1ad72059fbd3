//! The `meshroute-grpc-echo` binary, as the demo runs it: `serve` says where it listens on its
//! first line and answers every method of the service; `call` prints one line of JSON per answer,
//! and a gRPC status with its code on stderr and exit status 1.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshroute-grpc-echo");

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(name: &str) -> (Server, SocketAddr) {
    let child = Command::new(BIN)
        .args(["serve", "--name", name, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start meshroute-grpc-echo serve: {error}"));
    let mut server = Server(child);
    let stdout = server.0.stdout.take().unwrap_or_else(|| panic!("meshroute-grpc-echo has no stdout"));
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap_or_else(|error| panic!("reading meshroute-grpc-echo: {error}"));
    let address = first
        .trim()
        .strip_prefix("listening on ")
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("serve's first line should be `listening on ADDR:PORT`, was {first:?}"));
    (server, address)
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap_or_else(|error| panic!("cannot run meshroute-grpc-echo: {error}"))
}

/// The JSON lines `call` printed; asserts it succeeded.
fn answers(args: &[&str]) -> Vec<Value> {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "meshroute-grpc-echo {args:?} failed ({}): {stderr}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{args:?}: {line:?} is not JSON: {error}")))
        .collect()
}

#[test]
fn grpc_echo_serves_and_calls_every_method() {
    let (_server, address) = start_server("grpc-echo-v7");
    let to = address.to_string();
    for method in ["Echo", "EchoTwo", "EchoThree"] {
        let got = answers(&["call", "--to", &to, method, "hello there"]);
        let expected = serde_json::json!({
            "backend": "grpc-echo-v7",
            "method": format!("/echo_basic.grpcecho.GrpcEcho/{method}"),
            "message": "hello there",
        });
        assert_eq!(got, vec![expected], "call {method}");
    }
    // The message defaults to hello; metadata is accepted; a full path names the method too.
    let got = answers(&["call", "--to", &to, "--metadata", "version=one", "/echo_basic.grpcecho.GrpcEcho/Echo"]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], "hello");
    // A stream answers every message, in order.
    let got = answers(&["call", "--to", &to, "EchoStream", "a", "b", "c"]);
    let messages: Vec<&Value> = got.iter().map(|answer| &answer["message"]).collect();
    assert_eq!(messages, ["a", "b", "c"], "{got:?}");
    assert!(got.iter().all(|answer| answer["method"] == "/echo_basic.grpcecho.GrpcEcho/EchoStream"), "{got:?}");

    // A method the service does not have: the server's UNIMPLEMENTED, reported with its code.
    let out = run(&["call", "--to", &to, "/other.Service/Echo"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("grpc-status 12 (Unimplemented)"), "{stderr}");
    assert!(stderr.contains("from backend grpc-echo-v7"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout for an error");
}

#[test]
fn grpc_echo_call_reports_an_unreachable_server() {
    // Port 1 on loopback: nothing listens there.
    let out = run(&["call", "--to", "127.0.0.1:1", "Echo"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("grpc-status 14 (Unavailable)"), "{stderr}");
}

#[test]
fn grpc_echo_refuses_bad_arguments() {
    for args in [
        &[][..],
        &["serve", "--name", "x"],
        &["serve", "--listen", "127.0.0.1:0"],
        &["call", "Echo"],
        &["call", "--to", "127.0.0.1:1"],
        &["call", "--to", "127.0.0.1:1", "--metadata", "novalue", "Echo"],
        &["call", "--to", "127.0.0.1:1", "Echo", "one", "two"],
        &["fetch"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "meshroute-grpc-echo {args:?} should exit 2");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"), "{args:?} should print the usage");
    }
}
