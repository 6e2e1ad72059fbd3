//! Weighted backend choice through Envoy, counted over many requests.
//!
//! How the tolerances are chosen: each request independently goes to a backend with probability
//! w / (sum of weights), so the count a backend gets over n requests is binomial(n, p), with
//! mean np and standard deviation sigma = sqrt(n p (1 - p)). A bound k sigma from the mean is
//! crossed by chance with probability below 2 * (1 - Phi(k)): 1e-6 at k = 4.9, 4e-7 at k = 5.
//! Every bound below is at least 5 sigma from the expected count, so a correct implementation
//! fails it less than once in a million runs, and each says which skew it still catches.

use meshroute_e2e::mesh::Mesh;

/// The product page's `echo-route` in the form that does what it intends: echo-service split
/// 9:1 over echo-v1 and echo-v2 by one rule holding both backendRefs.
#[test]
fn product_page_echo_route_splits_nine_to_one() {
    let mesh = Mesh::builder("product_page_echo_route_splits_nine_to_one")
        .service("echo-service")
        .service("echo-v1")
        .service("echo-v2")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo-route
spec:
  parentRefs:
  - kind: Service
    group: ""
    name: echo-service
  rules:
  - backendRefs:
    - name: echo-v1
      port: 80
      weight: 9
    - name: echo-v2
      port: 80
      weight: 1
"#,
        )
        .start();

    // Every single request is answered by one of the two, unchanged.
    for _ in 0..20 {
        mesh.get("echo-service", "/hello?x=1").header("version", "two").expect_one_of(&["echo-v1", "echo-v2"]);
        mesh.request("POST", "echo-service", "/").expect_one_of(&["echo-v1", "echo-v2"]);
    }

    // n = 5000, p(echo-v1) = 0.9: mean 4500, sigma = sqrt(5000 * 0.9 * 0.1) = 21.2. The bound
    // +-125 is 5.9 sigma: a false failure has probability ~4e-9. A 5-point skew is caught: at
    // p = 0.85 the mean is 4250 with sigma 25.2, 5.0 sigma below 4375 (missed with probability
    // ~3e-7); at p = 0.95 the mean is 4750 with sigma 15.4, 8.1 sigma above 4625.
    let n = 5000;
    let tally = mesh.get("echo-service", "/").spread(n);
    println!("echo-route, {n} requests: {tally}");
    let v1 = tally.count("echo-v1");
    assert_eq!(v1 + tally.count("echo-v2"), n, "every request should reach echo-v1 or echo-v2: {tally}");
    assert!((4375..=4625).contains(&v1), "echo-v1 should get 9/10 of {n} requests (4500 +- 125): {tally}");
}

/// A backendRef with weight 0 gets nothing, ever; an omitted weight is 1.
#[test]
fn weight_zero_is_never_chosen() {
    let mesh = Mesh::conformance("weight_zero_is_never_chosen")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: weights
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /three}
    backendRefs:
    - {name: echo-v1, port: 80}
    - {name: echo-v2, port: 80, weight: 0}
    - {name: echo, port: 8080, weight: 1}
  - matches:
    - path: {type: PathPrefix, value: /heavy}
    backendRefs:
    - {name: echo-v1, port: 80, weight: 1000000}
    - {name: echo-v2, port: 80, weight: 0}
"#,
        )
        .start();

    // n = 1000, p(echo-v1) = 1/2: mean 500, sigma = sqrt(1000 * 0.25) = 15.8; +-80 is 5.1
    // sigma (false failure ~4e-7), and still catches an omitted weight read as anything other
    // than 1 by more than a third (at 1:2 the mean is 333, 10 sigma away).
    let n = 1000;
    let tally = mesh.get("echo", "/three").spread(n);
    println!("weights 1 (omitted), 0, 1: {tally}");
    assert_eq!(tally.count("echo-v2"), 0, "echo-v2 has weight 0: {tally}");
    assert_eq!(tally.count("echo-v1") + tally.count("echo"), n, "only echo-v1 and echo may answer: {tally}");
    assert!(
        (420..=580).contains(&tally.count("echo-v1")),
        "echo-v1 (weight omitted, so 1) and echo (weight 1) should split {n} requests evenly (500 +- 80): {tally}"
    );

    let tally = mesh.get("echo", "/heavy").spread(n);
    assert_eq!(tally.count("echo-v1"), n, "echo-v2 has weight 0 next to the maximum weight: {tally}");
}

/// An invalid backendRef keeps its share of the weight, and that share answers 500.
#[test]
fn invalid_backend_share_answers_500() {
    let mesh = Mesh::conformance("invalid_backend_share_answers_500")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: half-broken
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /missing}
    backendRefs:
    - {name: echo-v1, port: 80, weight: 1}
    - {name: no-such-service, port: 80, weight: 1}
  - matches:
    - path: {type: PathPrefix, value: /unknown-kind}
    backendRefs:
    - {name: echo-v2, port: 80, weight: 3}
    - {group: example.com, kind: Widget, name: echo-v2, port: 80, weight: 1}
"#,
        )
        .start();

    // n = 1000, p = 1/2: mean 500, sigma 15.8; +-80 is 5.1 sigma (false failure ~4e-7). It
    // catches an invalid share that is dropped or merged into the valid one (0 or 1000 errors)
    // and any skew beyond about 15 points (at p = 0.35 the mean is 350, 4.6 sigma below 420).
    let n = 1000;
    let tally = mesh.get("echo", "/missing").spread(n);
    println!("valid 1, missing Service 1: {tally}");
    let errors = tally.count("HTTP 500");
    assert_eq!(errors + tally.count("echo-v1"), n, "only echo-v1 and 500 may answer: {tally}");
    assert!((420..=580).contains(&errors), "half of {n} requests should get 500 (500 +- 80): {tally}");

    // n = 1000, p(500) = 1/4: mean 250, sigma = sqrt(1000 * 0.25 * 0.75) = 13.7; +-70 is 5.1
    // sigma.
    let tally = mesh.get("echo:8080", "/unknown-kind/x").spread(n);
    println!("valid 3, unknown kind 1: {tally}");
    let errors = tally.count("HTTP 500");
    assert_eq!(errors + tally.count("echo-v2"), n, "only echo-v2 and 500 may answer: {tally}");
    assert!((180..=320).contains(&errors), "a quarter of {n} requests should get 500 (250 +- 70): {tally}");
}
