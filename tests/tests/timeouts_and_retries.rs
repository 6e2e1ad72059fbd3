//! The Gateway API's HTTPRoute rule `timeouts` (GEP-1742) and `retry` (GEP-1731) through Envoy.
//!
//! `timeouts.request` bounds the whole request, retries included, and `timeouts.backendRequest`
//! each try to the backend; either exceeded, the client gets a 504 from the proxy and no
//! backend's answer. `0s` means no timeout. `retry` tries an answer whose status is one of
//! `codes` again, up to `attempts` more times (a backend sees at most 1 + `attempts` tries),
//! `backoff` apart; any other status goes back to the client at once. A client cannot change
//! that policy with Envoy's own request headers (`x-envoy-max-retries`,
//! `x-envoy-upstream-rq-timeout-ms` and the like).
//!
//! The echo backend is made slow (`x-echo-delay-ms`) or failing (`x-echo-fail`,
//! `x-echo-fail-first`) by the request itself, and counts the tries of each logical request by
//! its `x-echo-attempt-key` (unique per request here) in every answer it gives, failing ones
//! included. A retried request is therefore told by the count on the answer the client gets:
//! the last try's.

use std::time::Duration;

use meshroute_e2e::echo::{attempt_key, ATTEMPT_KEY_REQUEST, DELAY_REQUEST, FAIL_FIRST_REQUEST, FAIL_REQUEST};
use meshroute_e2e::mesh::{Call, Mesh};

/// The timeout of the timeout routes below.
const TIMEOUT: Duration = Duration::from_millis(300);

/// How long the slow requests make the backend wait: far beyond [`TIMEOUT`].
const SLOW_MS: &str = "1000";

/// How much sooner than the timeout a timed-out request may end as the client measures it.
/// Envoy's event loop (libevent) reads the coarse monotonic clock, which advances one kernel
/// tick at a time (4 ms on this machine, 10 ms on a 100 Hz kernel), so a timer may fire up to a
/// tick early by the client's precise clock: 300 ms timeouts have been seen to answer after
/// 298.8 ms, the client's clock started before the request was even sent.
const EARLY: Duration = Duration::from_millis(10);

/// On top of the issue's "within 10% + 50 ms": the measured time also holds the client's
/// connection to Envoy and the scheduling of three processes (the test's client and backend,
/// and Envoy) on two cores shared with the other tests' meshes, which `cargo test` runs in
/// parallel, and with whatever else the machine runs. Envoy configured by hand with these
/// timeouts answered after 298.8 to 304.7 ms here; 500 ms is more than any scheduling stall
/// needs, yet keeps the bound (880 ms) below the slow backend's 1000 ms, so an answer that
/// waited for the backend can never pass for a timeout.
const SLACK: Duration = Duration::from_millis(500);

/// The longest a timed-out request may take as the client measures it: [`TIMEOUT`] + 10% +
/// 50 ms + [`SLACK`].
fn timeout_deadline() -> Duration {
    TIMEOUT + TIMEOUT / 10 + Duration::from_millis(50) + SLACK
}

/// Service `echo` to `echo-v1`: port 80 under `timeouts.request: 300ms`, port 8080 under
/// `timeouts.backendRequest: 300ms`.
const TIMEOUT_ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-timeout
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - timeouts:
      request: 300ms
    backendRefs:
    - {name: echo-v1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-request-timeout
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 8080}
  rules:
  - timeouts:
      backendRequest: 300ms
    backendRefs:
    - {name: echo-v1, port: 80}
"#;

fn timeout_mesh(name: &str) -> Mesh {
    Mesh::builder(name).service_with_ports("echo", &[80, 8080]).service("echo-v1").routes(TIMEOUT_ROUTES).start()
}

/// Service `echo` to `echo-v1`, retrying 503 and 500 twice, 10 ms apart.
const RETRY_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: retry
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - retry:
      codes: [503, 500]
      attempts: 2
      backoff: 10ms
    backendRefs:
    - {name: echo-v1, port: 80}
"#;

fn retry_mesh(name: &str) -> Mesh {
    Mesh::builder(name).service("echo").service("echo-v1").routes(RETRY_ROUTE).start()
}

/// A request to `echo` (`NAME:PORT`) that `echo-v1` holds for [`SLOW_MS`], under a fresh attempt
/// key, which is returned with it.
fn slow<'m>(mesh: &'m Mesh, service: &str) -> (Call<'m>, String) {
    let key = attempt_key("slow");
    let call = mesh.get(service, "/slow").header(DELAY_REQUEST, SLOW_MS).header(ATTEMPT_KEY_REQUEST, &key);
    (call, key)
}

/// Sends `call` (to a Service whose route times out after [`TIMEOUT`]) and asserts that the
/// proxy answered 504 itself, no sooner than the timeout (less a clock tick, [`EARLY`]) and no
/// later than [`timeout_deadline`]; then that the request had reached `echo-v1` once (its key's
/// count, asked again without the delay, is 2): the timeout cut a request the backend had, it did
/// not stand for a backend that was never reached.
#[track_caller]
fn expect_timed_out(mesh: &Mesh, service: &str, call: Call<'_>, key: &str) {
    let (reply, elapsed) = call.send_timed();
    assert_eq!(reply.status, 504, "{service}: a request slower than the {TIMEOUT:?} timeout should get 504, got {reply}");
    assert!(
        reply.backend.is_none() && reply.echo.is_none() && reply.attempts().is_none(),
        "{service}: the 504 should be the proxy's, with no backend's answer: {reply}"
    );
    let (earliest, deadline) = (TIMEOUT - EARLY, timeout_deadline());
    assert!(
        elapsed >= earliest && elapsed <= deadline,
        "{service}: the 504 came after {elapsed:?}; expected at the {TIMEOUT:?} timeout, between {earliest:?} and {deadline:?}"
    );
    let again = mesh.get(service, "/slow").header(ATTEMPT_KEY_REQUEST, key).expect_backend("echo-v1");
    assert_eq!(again.attempts(), Some(2), "{service}: echo-v1 should have had the timed-out request once: {again}");
}

/// `timeouts.request: 300ms`: a backend that takes a second gets cut off, and the client gets
/// the proxy's 504 after 300 ms.
#[test]
fn a_request_slower_than_the_request_timeout_gets_504_when_it_expires() {
    let mesh = timeout_mesh("a_request_slower_than_the_request_timeout_gets_504_when_it_expires");
    let (call, key) = slow(&mesh, "echo:80");
    expect_timed_out(&mesh, "echo:80", call, &key);
}

/// `timeouts.backendRequest: 300ms` alone: the one try to a backend that takes a second gets
/// cut off, and (nothing retries it) the client gets the proxy's 504 after 300 ms.
#[test]
fn a_try_slower_than_the_backend_request_timeout_gets_504_when_it_expires() {
    let mesh = timeout_mesh("a_try_slower_than_the_backend_request_timeout_gets_504_when_it_expires");
    let (call, key) = slow(&mesh, "echo:8080");
    expect_timed_out(&mesh, "echo:8080", call, &key);
}

/// Under the same routes, requests the backend answers at once get its answer: neither timeout
/// hurts fast requests.
#[test]
fn fast_requests_pass_under_either_timeout() {
    let mesh = timeout_mesh("fast_requests_pass_under_either_timeout");
    for service in ["echo:80", "echo:8080"] {
        for _ in 0..5 {
            mesh.get(service, "/fast").expect_backend("echo-v1");
        }
    }
}

/// `timeouts.request: 0s` is no timeout at all, not one that expires at once: a request the
/// backend holds for a second gets the backend's answer.
#[test]
fn a_zero_request_timeout_lets_a_slow_request_finish() {
    let mesh = Mesh::builder("a_zero_request_timeout_lets_a_slow_request_finish")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: no-timeout
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - timeouts:
      request: 0s
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();
    let (call, _) = slow(&mesh, "echo");
    let reply = call.expect_backend("echo-v1");
    assert_eq!(reply.attempts(), Some(1), "{reply}");
}

/// A backend that fails the first try with a listed code (503, then 500) and answers the
/// second: the client gets the second try's 200, and the backend saw two tries.
#[test]
fn a_listed_failure_is_retried_and_the_retry_answers() {
    let mesh = retry_mesh("a_listed_failure_is_retried_and_the_retry_answers");
    for code in ["503", "500"] {
        let key = attempt_key("retried");
        let reply = mesh
            .get("echo", "/")
            .header(FAIL_FIRST_REQUEST, "1")
            .header(FAIL_REQUEST, code)
            .header(ATTEMPT_KEY_REQUEST, &key)
            .expect_backend("echo-v1");
        assert_eq!(reply.attempts(), Some(2), "first try failed with {code}: one retry, two tries in all: {reply}");
    }
}

/// A failure whose code the rule does not list goes back to the client as it is, with no
/// retry: not 502 or 504 (which Envoy's `5xx` and `gateway-error` retry), not 429.
#[test]
fn a_code_not_listed_is_not_retried() {
    let mesh = retry_mesh("a_code_not_listed_is_not_retried");
    for code in [502, 504, 429] {
        let key = attempt_key("unlisted");
        let reply = mesh
            .get("echo", "/")
            .header(FAIL_FIRST_REQUEST, "1")
            .header(FAIL_REQUEST, &code.to_string())
            .header(ATTEMPT_KEY_REQUEST, &key)
            .expect_backend_status("echo-v1", code);
        assert_eq!(reply.attempts(), Some(1), "{code} is not listed: one try only: {reply}");
    }
}

/// A backend that fails every try with a listed code sees 1 + `attempts` tries (3), no more,
/// and the client gets the last try's failure.
#[test]
fn retries_stop_after_the_rules_attempts() {
    let mesh = retry_mesh("retries_stop_after_the_rules_attempts");
    for code in [503, 500] {
        let key = attempt_key("always-failing");
        let reply = mesh
            .get("echo", "/")
            .header(FAIL_REQUEST, &code.to_string())
            .header(ATTEMPT_KEY_REQUEST, &key)
            .expect_backend_status("echo-v1", code);
        assert_eq!(reply.attempts(), Some(3), "every try failed with {code}: the first and 2 retries: {reply}");
    }
}

/// `attempts: 0` retries nothing, even a listed code: one try, and its failure goes back to the
/// client, also when a second try would have answered.
#[test]
fn zero_attempts_means_no_retry() {
    let mesh = Mesh::builder("zero_attempts_means_no_retry")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: no-retry
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - retry:
      codes: [503, 500]
      attempts: 0
      backoff: 10ms
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();
    let key = attempt_key("no-retry-always");
    let reply =
        mesh.get("echo", "/").header(FAIL_REQUEST, "503").header(ATTEMPT_KEY_REQUEST, &key).expect_backend_status("echo-v1", 503);
    assert_eq!(reply.attempts(), Some(1), "{reply}");
    let key = attempt_key("no-retry-once");
    let reply = mesh
        .get("echo", "/")
        .header(FAIL_FIRST_REQUEST, "1")
        .header(FAIL_REQUEST, "503")
        .header(ATTEMPT_KEY_REQUEST, &key)
        .expect_backend_status("echo-v1", 503);
    assert_eq!(reply.attempts(), Some(1), "{reply}");
}

/// The policy is the route's, whatever Envoy headers the client sends: `x-envoy-max-retries: 5`
/// still gets 1 + `attempts` (3) tries, `x-envoy-retry-on: 5xx` does not make an unlisted 502
/// retried, and `x-envoy-upstream-rq-timeout-ms: 50` (with its per-try sibling) does not cut a
/// request the backend holds for 300 ms, well within the route's `timeouts` (5 s, 2 s per try).
#[test]
fn a_clients_envoy_headers_do_not_change_the_policy() {
    let mesh = Mesh::builder("a_clients_envoy_headers_do_not_change_the_policy")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: retry-and-timeouts
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - retry:
      codes: [503, 500]
      attempts: 2
      backoff: 10ms
    timeouts:
      request: 5s
      backendRequest: 2s
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    let key = attempt_key("max-retries");
    let reply = mesh
        .get("echo", "/")
        .header("x-envoy-max-retries", "5")
        .header(FAIL_REQUEST, "503")
        .header(ATTEMPT_KEY_REQUEST, &key)
        .expect_backend_status("echo-v1", 503);
    assert_eq!(reply.attempts(), Some(3), "x-envoy-max-retries: 5 from the client: still the route's 2 retries: {reply}");

    let key = attempt_key("retry-on");
    let reply = mesh
        .get("echo", "/")
        .header("x-envoy-retry-on", "5xx")
        .header(FAIL_FIRST_REQUEST, "1")
        .header(FAIL_REQUEST, "502")
        .header(ATTEMPT_KEY_REQUEST, &key)
        .expect_backend_status("echo-v1", 502);
    assert_eq!(reply.attempts(), Some(1), "x-envoy-retry-on: 5xx from the client: 502 is still not retried: {reply}");

    let key = attempt_key("rq-timeout");
    let (reply, elapsed) = mesh
        .get("echo", "/")
        .header("x-envoy-upstream-rq-timeout-ms", "50")
        .header("x-envoy-upstream-rq-per-try-timeout-ms", "50")
        .header(DELAY_REQUEST, "300")
        .header(ATTEMPT_KEY_REQUEST, &key)
        .send_timed();
    assert!(
        reply.status == 200 && reply.backend.as_deref() == Some("echo-v1") && reply.attempts() == Some(1),
        "x-envoy-upstream-rq-timeout-ms: 50 from the client should not cut a 300 ms request under the route's 5 s timeout; \
         got {reply} after {elapsed:?}"
    );
}
