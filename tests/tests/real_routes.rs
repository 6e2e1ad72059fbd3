//! Routes people really write: manifests as they come out of clusters, samples and other
//! implementations' docs, rather than as this project's own examples put them. A header sent on
//! several lines, a parentRef scoped by `sectionName`, a match naming a header twice, a backend
//! port that declares no protocol, a backend in another namespace, a directory that holds
//! Deployments and Gateways beside the routes, a parentRef that leaves out `group`, and
//! `hostnames` on a route attached to a Service.

use std::fs;
use std::path::PathBuf;

use meshroute_e2e::mesh::{Call, Mesh, Port};
use meshroute_e2e::tools;

/// Explains `call`, then sends it through Envoy: both must name `backend` as the only
/// candidate and the answer.
#[track_caller]
fn explained_and_routed_to(call: Call<'_>, backend: &str) {
    let explained = call.clone().explain();
    let candidates: Vec<&str> =
        explained.backends.iter().filter(|candidate| candidate.weight > 0).map(|candidate| candidate.name.as_str()).collect();
    assert_eq!((explained.status, candidates), (200, vec![backend]), "meshroute explain: {explained:?}");
    call.expect_backend(backend);
}

/// A header sent on several lines matches when any one line matches, in either order, over
/// HTTP/1.1 and HTTP/2; a line folded as `prod, canary` is one value, which is not `canary`.
/// Envoy's router and the filter agree on it, and so does `meshroute explain`.
#[test]
fn a_header_sent_on_several_lines_matches_when_any_line_does() {
    let mesh = Mesh::builder("a_header_sent_on_several_lines_matches_when_any_line_does")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: canary
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - headers:
      - {type: Exact, name: x-env, value: canary}
    backendRefs:
    - {name: echo-v2, port: 80}
  - backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in [false, true] {
        let get = || if http2 { mesh.get("echo", "/").http2() } else { mesh.get("echo", "/") };
        explained_and_routed_to(get().header("x-env", "canary").header("x-env", "prod"), "echo-v2");
        explained_and_routed_to(get().header("x-env", "prod").header("x-env", "canary"), "echo-v2");
        explained_and_routed_to(get().header("x-env", "prod").header("X-Env", "canary"), "echo-v2");
        explained_and_routed_to(get().header("x-env", "prod, canary"), "echo-v1");
        explained_and_routed_to(get().header("x-env", "canary"), "echo-v2");
        explained_and_routed_to(get().header("x-env", "prod").header("x-env", "staging"), "echo-v1");
        explained_and_routed_to(get(), "echo-v1");
    }
    // Both lines reach the backend.
    let reply = mesh.get("echo", "/").header("x-env", "prod").header("x-env", "canary").expect_backend("echo-v2");
    assert_eq!(reply.seen_header("x-env"), Some("prod, canary"), "{reply}");
}

/// A Service parentRef's `sectionName` names one of the Service's ports, as a Gateway
/// listener's name does: the route attaches to that port only. A `sectionName` the Service does
/// not have attaches the route nowhere, and `check --strict` says `NoMatchingParent`.
#[test]
fn section_name_on_a_service_parent_is_the_port_name() {
    let mesh = Mesh::builder("section_name_on_a_service_parent_is_the_port_name")
        // Ports named http-80 and http-8080.
        .service_with_ports("echo", &[80, 8080])
        .service("echo-v1")
        .service("echo-v2")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: by-port-name
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, sectionName: http-8080}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: by-missing-port-name
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-v2, sectionName: no-such-port}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    mesh.get("echo:8080", "/").expect_backend("echo-v1");
    mesh.get("echo:8080", "/any/path?at=all").expect_backend("echo-v1");
    mesh.get("echo:80", "/").expect_backend("echo");
    mesh.get("echo-v2", "/").expect_backend("echo-v2");

    let (code, said) = mesh.check(true);
    assert_eq!(code, Some(1), "meshroute check --strict:\n{said}");
    assert!(said.contains("NoMatchingParent"), "meshroute check --strict should say NoMatchingParent:\n{said}");
}

/// One match that names a header twice (in another letter case): the Gateway API says the
/// later entry must be ignored, so the match is `x-env: one` alone. `check` accepts the route and
/// says which entry it ignores.
#[test]
fn a_header_named_twice_in_one_match_keeps_the_first() {
    let mesh = Mesh::builder("a_header_named_twice_in_one_match_keeps_the_first")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: twice
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - headers:
      - {name: x-env, value: one}
      - {name: X-Env, value: two}
    backendRefs:
    - {name: echo-v2, port: 80}
  - backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    explained_and_routed_to(mesh.get("echo", "/").header("x-env", "one"), "echo-v2");
    explained_and_routed_to(mesh.get("echo", "/").header("X-ENV", "one"), "echo-v2");
    explained_and_routed_to(mesh.get("echo", "/").header("x-env", "two"), "echo-v1");
    explained_and_routed_to(mesh.get("echo", "/"), "echo-v1");

    let (code, said) = mesh.check(false);
    assert_eq!(code, Some(0), "meshroute check:\n{said}");
    assert!(said.contains("headers[1]"), "meshroute check should name the ignored entry headers[1]:\n{said}");
}

/// A backend Service whose only port has neither a name nor an appProtocol (`ports: [{port:
/// 8080}]`, what `kubectl expose` writes) declares no protocol: a gRPC call routed there still
/// reaches its gRPC server, and a plain HTTP/1.1 request routed to such a port on an HTTP server
/// still works.
#[test]
fn backends_on_ports_that_declare_no_protocol() {
    let mesh = Mesh::builder("backends_on_ports_that_declare_no_protocol")
        .service_with("echo-service", &[Port::Http(80), Port::Grpc(8080)])
        .service_with("grpc-undeclared", &[Port::GrpcUndeclared(8080)])
        .service_with("http-undeclared", &[Port::HttpUndeclared(8080)])
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: to-undeclared
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service, port: 8080}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    backendRefs:
    - {name: grpc-undeclared, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: to-undeclared
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /plain}
    backendRefs:
    - {name: http-undeclared, port: 8080}
"#,
        )
        .start();

    mesh.grpc("echo-service", "Echo").expect_backend("grpc-undeclared");
    mesh.grpc("echo-service", "Echo").message("again").metadata("x-request-id", "7").expect_backend("grpc-undeclared");
    mesh.get("echo-service:80", "/plain").expect_backend("http-undeclared");
    mesh.request("POST", "echo-service:80", "/plain/x?y=z").expect_backend("http-undeclared");
    mesh.get("http-undeclared", "/").expect_backend("http-undeclared");
}

/// A backendRef to a Service in another namespace is routed without a ReferenceGrant: GAMMA
/// routes are producer routes (or consumer routes in the client's namespace), and the
/// ReferenceGrant gate is for Gateways.
#[test]
fn a_backend_in_another_namespace_needs_no_reference_grant() {
    let mesh = Mesh::builder("a_backend_in_another_namespace_needs_no_reference_grant")
        .service("echo")
        .service_in("other", "echo-other", &[Port::Http(80)])
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: across
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /other}
    backendRefs:
    - {name: echo-other, namespace: other, port: 80}
"#,
        )
        .start();

    mesh.get("echo", "/other").expect_backend("echo-other");
    mesh.get("echo", "/other/x?y=z").expect_backend("echo-other");
    mesh.get("echo", "/").expect_status(404);
    // The Service itself, addressed in its namespace, has no routes.
    mesh.get("echo-other.other", "/other").expect_backend("echo-other");
}

/// A directory as it comes out of `kubectl get -o yaml` or a Helm chart holds more than routes:
/// a Namespace, a Deployment, a ConfigMap and a Gateway beside them are skipped, the mesh starts
/// and the routes route, and `check` says which kinds it skipped.
#[test]
fn a_directory_that_holds_more_than_routes() {
    let mesh = Mesh::builder("a_directory_that_holds_more_than_routes")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: v1
kind: Namespace
metadata:
  name: default
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo-v1
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: echo, version: v1}
  template:
    metadata:
      labels: {app: echo, version: v1}
    spec:
      containers:
      - name: echo
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: echo-settings
  namespace: default
data:
  greeting: hello
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ingress
  namespace: default
spec:
  gatewayClassName: example
  listeners:
  - name: http
    protocol: HTTP
    port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo-route
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v1}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    mesh.get("echo", "/v1").expect_backend("echo-v1");
    mesh.get("echo", "/").expect_status(404);
    mesh.get("echo-v1", "/").expect_backend("echo-v1");

    let (code, said) = mesh.check(false);
    assert_eq!(code, Some(0), "meshroute check:\n{said}");
    for kind in ["Namespace", "Deployment", "ConfigMap", "Gateway"] {
        assert!(said.contains(kind), "meshroute check should note that it skipped the {kind}:\n{said}");
    }
}

/// Istio's published v1beta1 90/10 sample writes `kind: Service` without `group`, which then
/// defaults to `gateway.networking.k8s.io`: no Service of that group exists, so the route
/// attaches nowhere. `check --strict` fails and hints at `group: ""`. (The route here is `v1`, so
/// the missing group is the only thing wrong with it.)
#[test]
fn a_service_parent_without_group_is_refused_with_a_hint() {
    let dir = TempDir::new("a_service_parent_without_group_is_refused_with_a_hint");
    let services = r#"
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-v1
  namespace: default
spec:
  clusterIP: 10.96.0.11
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-v2
  namespace: default
spec:
  clusterIP: 10.96.0.12
  ports:
  - {name: http, port: 80, targetPort: 8080}
"#;
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo-split
  namespace: default
spec:
  parentRefs:
  - kind: Service
    name: echo
    port: 80
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80, weight: 90}
    - {name: echo-v2, port: 80, weight: 10}
"#;
    fs::write(dir.0.join("services.yaml"), services).unwrap_or_else(|error| panic!("writing services.yaml: {error}"));
    fs::write(dir.0.join("route.yaml"), route).unwrap_or_else(|error| panic!("writing route.yaml: {error}"));

    let (code, said) = tools::meshroute_check(&dir.0, true);
    assert_eq!(code, Some(1), "meshroute check --strict:\n{said}");
    assert!(said.contains(r#"group: """#), "meshroute check --strict should hint at group: \"\":\n{said}");
}

/// A directory of this process, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("meshroute-e2e-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `hostnames` on a route attached to a Service are ignored: the route takes every request sent
/// to the Service, whatever its Host, and `check` says so in a note (never a warning).
#[test]
fn hostnames_on_a_service_parent_are_ignored() {
    let mesh = Mesh::builder("hostnames_on_a_service_parent_are_ignored")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: with-hostnames
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  hostnames: [shop.example.com]
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    explained_and_routed_to(mesh.get("echo", "/"), "echo-v1");
    explained_and_routed_to(mesh.get("echo", "/").header("Host", "shop.example.com"), "echo-v1");
    explained_and_routed_to(mesh.get("echo", "/").header("Host", "elsewhere.example.org"), "echo-v1");
    let (code, text) = mesh.check(true);
    assert_eq!(code, Some(0), "meshroute check --strict:\n{text}");
    assert!(text.contains("note: HTTPRoute default/with-hostnames: spec.hostnames: ignored on a Service parent"), "{text}");
}
