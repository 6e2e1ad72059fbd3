//! The proxyless gRPC client itself (grpcio, `tests/proxyless/client.py`), without xDS: its
//! channel dials a running gRPC echo backend by address, so what the proxyless tests read from
//! it is known to be what the backend answered. No `meshroute serve` is involved.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};

use meshroute_e2e::grpc;
use meshroute_e2e::proxyless::ProxylessClient;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tonic::Code;

/// A gRPC echo backend named `name` on a free loopback port, served until `runtime` is dropped.
fn backend(runtime: &Runtime, name: &str) -> SocketAddr {
    let listener =
        runtime.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).unwrap_or_else(|error| panic!("cannot listen: {error}"));
    let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
    runtime.spawn(grpc::serve(name.to_owned(), listener));
    address
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("cannot start a runtime: {error}"))
}

/// Answers carry the backend's name, the method it served, the message and the metadata it saw,
/// and its `x-echo-backend` header; a status the backend gives is told apart from one nobody
/// gave; many calls are counted by outcome.
#[test]
fn the_client_reports_who_answered_and_what_it_saw() {
    let runtime = runtime();
    let address = backend(&runtime, "grpc-v1");
    let client = ProxylessClient::without_xds(&address.to_string());

    let answer = client.rpc("Echo").metadata("x-variant", "b").message("hi").expect_backend("grpc-v1");
    assert_eq!(answer.method, "/echo_basic.grpcecho.GrpcEcho/Echo");
    assert_eq!(answer.message, "hi");
    assert_eq!(answer.metadata.get("x-variant").map(String::as_str), Some("b"), "{answer:?}");
    assert!(answer.metadata.get("user-agent").is_some_and(|agent| agent.contains("grpc-python/1.85.1")), "{answer:?}");
    client.rpc("EchoTwo").expect_backend("grpc-v1");

    // A method the backend's service does not have: UNIMPLEMENTED, and from that backend.
    let status = client.rpc("/other.Service/Nothing").expect_backend_status("grpc-v1", Code::Unimplemented);
    assert_eq!(status.label(), "gRPC Unimplemented from grpc-v1");

    let tally = client.rpc("EchoThree").spread(200);
    assert_eq!(tally.count("grpc-v1"), 200, "{tally}");
}

/// An RPC error is reported with its code and details and never ends the client: a call to an
/// address where nothing listens is UNAVAILABLE from no backend, and the next calls on another
/// client are answered as usual. When dropped, the client's process is gone.
#[test]
fn errors_are_outcomes_and_no_process_is_left_behind() {
    let runtime = runtime();
    let address = backend(&runtime, "grpc-v2");
    // A port nothing listens on: bound, then released.
    let nowhere = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|error| panic!("{error}"));

    let refused = ProxylessClient::without_xds(&nowhere.to_string());
    let outcome = refused.rpc("Echo").expect_code(Code::Unavailable);
    assert!(!outcome.details.is_empty(), "an error gives its details: {outcome}");
    // Still there, still answering probes.
    refused.rpc("Echo").expect_code(Code::Unavailable);
    let pid = refused.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(refused);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the client process {pid} outlived its ProxylessClient");

    let client = ProxylessClient::without_xds(&address.to_string());
    client.rpc("Echo").expect_backend("grpc-v2");
}

/// Steady calls run in the background, one at a time at the interval asked, each with the time
/// it started and took, while other calls are made on the same client.
#[test]
fn steady_calls_are_timed_and_run_beside_other_calls() {
    let runtime = runtime();
    let address = backend(&runtime, "grpc-v3");
    let client = ProxylessClient::without_xds(&address.to_string());

    let before = SystemTime::now();
    let steady = client.rpc("Echo").metadata("x-steady", "yes").steady(Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(300));
    client.rpc("EchoTwo").expect_backend("grpc-v3");
    std::thread::sleep(Duration::from_millis(300));
    let outcomes = steady.stop();
    let after = SystemTime::now();

    // 600 ms at one call per 20 ms: about 30 calls; fewer than 10 would mean they did not run
    // steadily, more than 40 that the interval was not kept.
    assert!((10..=40).contains(&outcomes.len()), "{} calls", outcomes.len());
    for outcome in &outcomes {
        assert_eq!(outcome.backend(), Some("grpc-v3"), "{outcome}");
        assert!(before <= outcome.started && outcome.started <= after, "{outcome} started outside the run");
        let seen = outcome.answer.as_ref().and_then(|answer| answer.metadata.get("x-steady"));
        assert_eq!(seen.map(String::as_str), Some("yes"), "{outcome}");
    }
    assert!(outcomes.windows(2).all(|pair| pair[0].started <= pair[1].started), "in the order they started");
}

/// The expectations bite: an answer from another backend than the one expected fails the test,
/// naming both.
#[test]
#[should_panic(expected = "expected an answer from grpc-v9, got an answer from grpc-v4")]
fn an_answer_from_another_backend_fails_the_expectation() {
    let runtime = runtime();
    let address = backend(&runtime, "grpc-v4");
    let client = ProxylessClient::without_xds(&address.to_string());
    client.rpc("Echo").expect_backend("grpc-v9");
}
