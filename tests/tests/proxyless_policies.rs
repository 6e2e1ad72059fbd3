//! An HTTPRoute rule's `timeouts.request` and `retry` on a gRPC port, for proxyless gRPC clients
//! (which `meshroute serve` gives them as gRFC A31's `max_stream_duration` and A44's
//! `retry_policy`) and, for comparison, through Envoy, with the same calls and the same harness
//! ([`meshroute_e2e::proxyless`]).
//!
//! The two data planes differ, as the README says, and these tests pin the differences:
//!
//! - A call that outlives `timeouts.request` ends after the timeout on both, but a proxyless
//!   client ends it with DEADLINE_EXCEEDED, while Envoy answers 504, which a gRPC client sees as
//!   UNAVAILABLE.
//! - A gRPC backend's own UNAVAILABLE answer is retried by a proxyless client (the rule's 503
//!   is UNAVAILABLE in A44's terms). Envoy retries on HTTP statuses, and a gRPC status is an HTTP
//!   200 with `grpc-status: 14`, so Envoy hands the first try's UNAVAILABLE to the client.
//!
//! The gRPC echo backend is made slow or failing by the call's own metadata (`x-echo-delay-ms`,
//! `x-echo-fail`, `x-echo-fail-first`) and counts the tries of each call by its
//! `x-echo-attempt-key`, unique per call here, in the `x-echo-attempts` of every answer it gives
//! and in its record of the calls it received.

use std::thread;
use std::time::Duration;

use meshroute_e2e::echo::{attempt_key, ATTEMPT_KEY_REQUEST, DELAY_REQUEST, FAIL_FIRST_REQUEST, FAIL_REQUEST};
use meshroute_e2e::mesh::{Mesh, MeshBuilder};
use meshroute_e2e::proxyless::{DataPlane, Outcome};
use tonic::Code;

const V1: &str = "grpc-infra-backend-v1";

/// The timeout of the `Echo` rule.
const TIMEOUT: Duration = Duration::from_millis(300);

/// How long the slow calls make the backend wait: far beyond [`TIMEOUT`].
const SLOW_MS: &str = "1000";

/// The shortest a timed-out call may take as the client measures it: a timer may fire a little
/// early by the client's clock (Envoy's reads the coarse monotonic clock, a kernel tick at a
/// time), and nothing should end it much sooner than the timeout.
const EARLIEST: Duration = Duration::from_millis(250);

/// On top of the timeout + 10%: the client's connection (to Envoy, or a proxyless client's
/// to the backend) and the scheduling of the client, the backend and Envoy on a machine shared
/// with the other tests' meshes. The bound (530 ms) stays far below the slow backend's 1000 ms,
/// so an answer that waited for the backend can never pass for a timeout.
const SLACK: Duration = Duration::from_millis(200);

/// `retry.attempts` of the `EchoTwo` rule: a backend sees at most 1 + this many tries.
const RETRIES: u64 = 2;

meshroute_e2e::on_both_data_planes!(retry_on_unavailable);

mod request_timeout_bounds_the_call {
    use super::DataPlane;

    #[test]
    fn envoy() {
        super::request_timeout_bounds_the_call(DataPlane::Envoy)
    }

    /// grpcio (1.85.1 measured) ends a call under a method timeout, which is what A31's
    /// `max_stream_duration` becomes in gRPC's core, 1 to 2 s before the timeout: under
    /// `timeouts.request: 300ms` every call, an undelayed one too, fails DEADLINE_EXCEEDED at
    /// once without reaching the backend; under 3s a call ends after 1.06 to 1.95 s, under 10s
    /// after 8.07 s. A plain channel with a service config `timeout` does the same, so it is not
    /// the xDS translation (the README and `check` say so). What holds is the bound itself: this
    /// case uses the rule with the 3 s timeout.
    #[test]
    fn proxyless() {
        super::a_long_request_timeout_bounds_a_proxyless_call()
    }
}

/// Service `policies` (a port named `grpc`, appProtocol `kubernetes.io/h2c`) with an HTTPRoute:
/// `Echo` to the backend under `timeouts.request: 300ms`, `EchoTwo` to it under `retry: {codes:
/// [503], attempts: 2}`.
fn mesh(name: &str, plane: DataPlane) -> MeshBuilder {
    Mesh::builder(&format!("{name}_{plane}")).data_plane(plane).grpc_service(V1).grpc_service("policies").routes(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: policies
spec:
  parentRefs:
  - {group: "", kind: Service, name: policies, port: 8080}
  rules:
  - matches:
    - path: {type: Exact, value: /echo_basic.grpcecho.GrpcEcho/Echo}
      headers: [{name: x-timeout, value: long}]
    timeouts:
      request: 3s
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
  - matches:
    - path: {type: Exact, value: /echo_basic.grpcecho.GrpcEcho/Echo}
    timeouts:
      request: 300ms
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
  - matches:
    - path: {type: Exact, value: /echo_basic.grpcecho.GrpcEcho/EchoTwo}
    retry:
      codes: [503]
      attempts: 2
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
"#,
    )
}

/// A call that outlives `timeouts.request` ends after about 300 ms, from the data plane, not the
/// backend: DEADLINE_EXCEEDED for a proxyless client (A31's `max_stream_duration`), UNAVAILABLE
/// through Envoy (its 504). A call within the timeout is answered.
fn request_timeout_bounds_the_call(plane: DataPlane) {
    let mesh = mesh("policies_timeout", plane).start();
    // First, so that a proxyless client has its configuration before the timed call.
    mesh.rpc("policies", "Echo").expect_backend(V1);
    mesh.rpc("policies", "Echo").metadata(DELAY_REQUEST, "50").expect_backend(V1);

    let expected = match plane {
        DataPlane::Proxyless => Code::DeadlineExceeded,
        DataPlane::Envoy => Code::Unavailable,
    };
    let latest = TIMEOUT + TIMEOUT / 10 + SLACK;
    for _ in 0..3 {
        let outcome = mesh.rpc("policies", "Echo").metadata(DELAY_REQUEST, SLOW_MS).expect_code(expected);
        assert!(
            EARLIEST <= outcome.elapsed && outcome.elapsed <= latest,
            "a call past the {TIMEOUT:?} timeout on {plane}: expected {expected:?} after {EARLIEST:?} to {latest:?}, got {outcome}"
        );
    }
    // The timeout is the `Echo` rule's alone.
    mesh.rpc("policies", "EchoTwo").metadata(DELAY_REQUEST, SLOW_MS).expect_backend(V1);
}

/// A proxyless call under the 3 s timeout rule: answered when quick; bounded when the backend
/// takes 5 s: DEADLINE_EXCEEDED, from the client, before the backend could answer. grpcio ends
/// it 1 to 2 s early (see the test's comment), so the bound checked is [1 s, 3 s + 10% + slack].
fn a_long_request_timeout_bounds_a_proxyless_call() {
    let mesh = mesh("policies_long_timeout", DataPlane::Proxyless).start();
    mesh.rpc("policies", "Echo").metadata("x-timeout", "long").expect_backend(V1);
    mesh.rpc("policies", "Echo").metadata("x-timeout", "long").metadata(DELAY_REQUEST, "50").expect_backend(V1);
    let outcome = mesh
        .rpc("policies", "Echo")
        .metadata("x-timeout", "long")
        .metadata(DELAY_REQUEST, "5000")
        .expect_code(Code::DeadlineExceeded);
    let (earliest, latest) = (Duration::from_secs(1), Duration::from_millis(3000 + 300) + SLACK);
    assert!(
        earliest <= outcome.elapsed && outcome.elapsed <= latest,
        "a call past the 3 s timeout: expected DEADLINE_EXCEEDED after {earliest:?} to {latest:?}, got {outcome}"
    );
}

/// The tries of the call keyed `key` that the backend received.
fn tries(mesh: &Mesh, key: &str) -> usize {
    // A late try would still be on its way: let any retry's backoff (25 ms and up) pass first.
    thread::sleep(Duration::from_millis(300));
    mesh.grpc_received(V1).iter().filter(|call| call.header(ATTEMPT_KEY_REQUEST).as_deref() == Some(key)).count()
}

/// A backend's own UNAVAILABLE under `retry: {codes: [503], attempts: 2}`: a proxyless client
/// tries again (A44), up to 1 + 2 tries, and a call that fails only once is answered; Envoy
/// retries on HTTP statuses only, and a gRPC UNAVAILABLE is an HTTP 200, so it hands the first
/// try's status to the client.
fn retry_on_unavailable(plane: DataPlane) {
    let mesh = mesh("policies_retry", plane).start();
    mesh.rpc("policies", "EchoTwo").expect_backend(V1);

    let once = attempt_key("unavailable-once");
    let call = mesh.rpc("policies", "EchoTwo").metadata(FAIL_REQUEST, "14").metadata(FAIL_FIRST_REQUEST, "1");
    let outcome = call.clone().metadata(ATTEMPT_KEY_REQUEST, &once).send();
    let always = attempt_key("unavailable-always");
    let failing = mesh.rpc("policies", "EchoTwo").metadata(FAIL_REQUEST, "14").metadata(ATTEMPT_KEY_REQUEST, &always);
    let last = failing.send();

    let is_unavailable_from_backend =
        |outcome: &Outcome| outcome.code == Code::Unavailable && outcome.header_backend.as_deref() == Some(V1);
    match plane {
        DataPlane::Proxyless => {
            assert!(
                outcome.backend() == Some(V1) && outcome.attempts == Some(2),
                "{call} failing once on {plane}: expected an answer on the second try, got {outcome}"
            );
            assert_eq!(tries(&mesh, &once), 2, "{call}: the backend's tries");
            let most = 1 + RETRIES;
            assert!(
                is_unavailable_from_backend(&last) && last.attempts == Some(most),
                "{failing} on {plane}: expected UNAVAILABLE from {V1} on try {most}, got {last}"
            );
            assert_eq!(tries(&mesh, &always), 3, "{failing}: the backend's tries");
        }
        DataPlane::Envoy => {
            assert!(
                is_unavailable_from_backend(&outcome) && outcome.attempts == Some(1),
                "{call} failing once on {plane}: expected the first try's UNAVAILABLE, not retried, got {outcome}"
            );
            assert_eq!(tries(&mesh, &once), 1, "{call}: the backend's tries");
            assert!(
                is_unavailable_from_backend(&last) && last.attempts == Some(1),
                "{failing} on {plane}: expected the first try's UNAVAILABLE, not retried, got {last}"
            );
            assert_eq!(tries(&mesh, &always), 1, "{failing}: the backend's tries");
        }
    }
    // A status the rule does not list is never retried, on either data plane.
    let internal = attempt_key("internal");
    let other = mesh.rpc("policies", "EchoTwo").metadata(FAIL_REQUEST, "13").metadata(ATTEMPT_KEY_REQUEST, &internal).send();
    assert!(
        other.code == Code::Internal && other.attempts == Some(1),
        "INTERNAL under a retry on 503 only, on {plane}: expected one try, got {other}"
    );
    assert_eq!(tries(&mesh, &internal), 1, "INTERNAL: the backend's tries");
}
