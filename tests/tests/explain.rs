//! `meshroute explain` runs the filter's matching code on the command line; what it says about a
//! request must be what Envoy then does with it.

use meshroute_e2e::mesh::{Call, Mesh};

/// Every request below is explained, then sent through Envoy, and the two must agree: on 200 an
/// answer from one of the explained backends with a weight above 0, otherwise the same status
/// from the proxy itself.
#[test]
fn explain_agrees_with_envoy() {
    let mesh = Mesh::conformance("explain_agrees_with_envoy")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mixed
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: Exact, value: /exact}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /v2}
    - headers:
      - {name: version, value: two}
    backendRefs:
    - {name: echo-v2, port: 80}
  - matches:
    - method: POST
      queryParams:
      - {name: animal, value: whale}
    backendRefs:
    - {name: echo-v1, port: 8080, weight: 0}
    - {name: echo-v2, port: 8080, weight: 5}
  - matches:
    - path: {type: RegularExpression, value: "/r[0-9]+"}
      headers:
      - {type: RegularExpression, name: color, value: "bl.*"}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /none}
  - matches:
    - path: {type: PathPrefix, value: /missing}
    backendRefs:
    - {name: no-such-service, port: 80}
"#,
        )
        .start();

    let calls: Vec<Call> = vec![
        mesh.get("echo", "/exact"),
        mesh.get("echo", "/exact/"),
        mesh.get("echo", "/v2"),
        mesh.get("echo", "/v2/x?y=z"),
        mesh.get("echo", "/v2x"),
        mesh.get("echo", "/").header("version", "two"),
        mesh.get("echo", "/exact").header("version", "two"),
        mesh.request("POST", "echo", "/?animal=whale"),
        mesh.request("POST", "echo", "/v2?animal=whale"),
        mesh.request("GET", "echo", "/?animal=whale"),
        mesh.get("echo", "/r12").header("color", "blue"),
        mesh.get("echo", "/r12").header("color", "red"),
        mesh.get("echo", "/r12/x").header("color", "blue"),
        mesh.get("echo", "/none"),
        mesh.get("echo", "/missing/x"),
        mesh.get("echo", "/"),
        mesh.request("DELETE", "echo", "/nothing"),
        mesh.get("echo:8080", "/exact"),
        mesh.get("echo-v1", "/v2"),
        mesh.request("POST", "echo-v2:8080", "/?animal=whale"),
    ];
    let mut statuses = Vec::new();
    for call in calls {
        let explained = call.clone().explain();
        if explained.status == 200 {
            let chosen: Vec<&str> =
                explained.backends.iter().filter(|b| b.weight > 0).map(|backend| backend.name.as_str()).collect();
            call.expect_one_of(&chosen);
        } else {
            call.expect_status(explained.status);
        }
        statuses.push(explained.status);
    }
    // The cases cover every outcome.
    for status in [200, 404, 500] {
        assert!(statuses.contains(&status), "no case explained as {status}: {statuses:?}");
    }
}

/// Envoy normalizes the path (dot segments, then runs of slashes) before the filter sees it;
/// explain must route the path as normalized, or it names the wrong rule.
#[test]
fn explain_routes_the_path_envoy_normalizes() {
    let mesh = Mesh::conformance("explain_routes_the_path_envoy_normalizes")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: normalized
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: Exact, value: /exact}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /v2}
    backendRefs:
    - {name: echo-v2, port: 80}
"#,
        )
        .start();

    for (path, backend) in [
        ("/v2/../exact", Some("echo-v1")),
        ("//exact", Some("echo-v1")),
        ("/a/%2e%2e/exact", Some("echo-v1")),
        ("/x/../v2/", Some("echo-v2")),
        ("/v2//x", Some("echo-v2")),
        ("/exact/.", None),
    ] {
        let explained = mesh.get("echo", path).explain();
        let names: Vec<&str> = explained.backends.iter().map(|b| b.name.as_str()).collect();
        let reply = mesh.get("echo", path).send();
        match backend {
            Some(backend) => {
                assert_eq!((explained.status, names), (200, vec![backend]), "explain {path}");
                assert_eq!((reply.status, reply.backend.as_deref()), (200, Some(backend)), "Envoy {path}: {reply}");
            }
            None => {
                assert_eq!(explained.status, 404, "explain {path}");
                assert_eq!((reply.status, reply.backend.as_deref()), (404, None), "Envoy {path}: {reply}");
            }
        }
    }
}
