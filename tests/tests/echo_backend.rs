//! The `meshroute-echo` binary, as the demo runs it: it says where it listens on its first line
//! and answers HTTP/1.1 and cleartext HTTP/2 with its name and what it saw.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// The echo process, killed when dropped.
struct EchoProcess(Child);

impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_echo(name: &str) -> (EchoProcess, SocketAddr) {
    let child = Command::new(env!("CARGO_BIN_EXE_meshroute-echo"))
        .args(["--name", name, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start meshroute-echo: {error}"));
    let mut process = EchoProcess(child);
    let stdout = process.0.stdout.take().unwrap_or_else(|| panic!("meshroute-echo has no stdout"));
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap_or_else(|error| panic!("reading meshroute-echo: {error}"));
    let address = first
        .trim()
        .strip_prefix("listening on ")
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("meshroute-echo's first line should be `listening on ADDR:PORT`, was {first:?}"));
    (process, address)
}

async fn exchange(address: SocketAddr, http2: bool) -> (u16, Option<String>, Value) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|error| panic!("connect: {error}"));
    let request = hyper::Request::builder()
        .method("PUT")
        .uri(format!("http://{address}/a/b?c=d&e"))
        .header("x-first", "1")
        .header("x-twice", "a")
        .header("x-twice", "b")
        .body(Empty::<Bytes>::new())
        .unwrap_or_else(|error| panic!("request: {error}"));
    let response = if http2 {
        let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap_or_else(|error| panic!("h2c handshake: {error}"));
        tokio::spawn(connection);
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap_or_else(|error| panic!("HTTP/1.1 handshake: {error}"));
        tokio::spawn(connection);
        sender.send_request(request).await
    };
    let response = response.unwrap_or_else(|error| panic!("no answer: {error}"));
    let status = response.status().as_u16();
    let backend = response.headers().get("x-echo-backend").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let body = response.into_body().collect().await.unwrap_or_else(|error| panic!("body: {error}")).to_bytes();
    let body = serde_json::from_slice(&body).unwrap_or_else(|error| panic!("the answer is not JSON: {error}"));
    (status, backend, body)
}

#[tokio::test]
async fn echo_reports_who_it_is_and_what_it_saw_over_http1_and_h2c() {
    let (_echo, address) = start_echo("echo-v7");
    for http2 in [false, true] {
        let protocol = if http2 { "h2c" } else { "HTTP/1.1" };
        let (status, backend, body) = exchange(address, http2).await;
        assert_eq!(status, 200, "{protocol}");
        assert_eq!(backend.as_deref(), Some("echo-v7"), "{protocol}: x-echo-backend");
        assert_eq!(body["backend"], "echo-v7", "{protocol}: {body}");
        assert_eq!(body["method"], "PUT", "{protocol}: {body}");
        assert_eq!(body["path"], "/a/b?c=d&e", "{protocol}: {body}");
        assert_eq!(body["headers"]["x-first"], "1", "{protocol}: {body}");
        assert_eq!(body["headers"]["x-twice"], "a, b", "{protocol}: {body}");
        assert_eq!(body["headers"]["host"], address.to_string(), "{protocol}: {body}");
    }
}

#[test]
fn echo_refuses_bad_arguments() {
    for args in [&["--name", "x"][..], &["--listen", "127.0.0.1:0"], &["--name", "x", "--listen", "127.0.0.1:0", "extra"]] {
        let status = Command::new(env!("CARGO_BIN_EXE_meshroute-echo"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|error| panic!("cannot run meshroute-echo: {error}"));
        assert_eq!(status.code(), Some(2), "meshroute-echo {args:?} should exit 2");
    }
}
