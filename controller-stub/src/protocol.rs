//! What a Service port declares it carries, read as Istio reads it: `appProtocol` first, else
//! the protocol prefix of the port's name (`<protocol>[-<suffix>]`: `http`, `http-web`, `grpc`,
//! `grpc-echo`, `tcp-db`). This one reading decides three things: how Envoy speaks to the port
//! (its cluster's HTTP version), which ports a GRPCRoute parentRef without `port` attaches to,
//! and which backends a route's protocol cannot reach (`ResolvedRefs: False`,
//! `UnsupportedProtocol`).

use meshroute_filter::document::RouteKind;

use crate::model::ServicePort;

/// A Service port's declared protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// Plain HTTP/1 (`http`, `https`, WebSocket, gRPC-Web): no gRPC.
    Http1,
    /// HTTP/2 in clear text (`kubernetes.io/h2c`, `grpc`, `http2`).
    Http2,
    /// Not HTTP at all (`tcp`, `tls`, `mysql`, ...).
    NotHttp,
    /// Nothing meshroute recognises, often a port with neither name nor `appProtocol`. Envoy
    /// then speaks to it in the client's own protocol (HTTP/1.1 for HTTP/1.1, HTTP/2 for h2c and
    /// gRPC), as Istio does for ports it cannot classify.
    Undeclared,
}

/// The declared protocol of `port` and how it was declared (`appProtocol http`, `named
/// grpc-echo`), for messages; `None` for an undeclared port.
pub fn declared(port: &ServicePort) -> (Declared, Option<String>) {
    const HTTP1: &[&str] = &[
        "http",
        "http1",
        "kubernetes.io/http",
        "https",
        "kubernetes.io/https",
        "kubernetes.io/ws",
        "kubernetes.io/wss",
        "ws",
        "wss",
        "grpc-web",
    ];
    const HTTP2: &[&str] = &["kubernetes.io/h2c", "grpc", "http2", "h2c"];
    const NOT_HTTP: &[&str] = &["tcp", "tls", "udp", "mongo", "mysql", "redis"];
    let classify = |protocol: &str| {
        if HTTP1.contains(&protocol) {
            Declared::Http1
        } else if HTTP2.contains(&protocol) {
            Declared::Http2
        } else if NOT_HTTP.contains(&protocol) {
            Declared::NotHttp
        } else {
            Declared::Undeclared
        }
    };
    if let Some(protocol) = &port.app_protocol {
        let kind = classify(&protocol.to_ascii_lowercase());
        return (kind, (kind != Declared::Undeclared).then(|| format!("appProtocol {protocol}")));
    }
    let Some(name) = &port.name else { return (Declared::Undeclared, None) };
    let lower = name.to_ascii_lowercase();
    let prefix = if lower.starts_with("grpc-web") { "grpc-web" } else { lower.split('-').next().unwrap_or("") };
    let kind = classify(prefix);
    (kind, (kind != Declared::Undeclared).then(|| format!("named {name}")))
}

/// Why a route of `kind` cannot reach a backend on `port`, if it cannot: gRPC needs HTTP/2, and
/// no route reaches a port declared not to carry HTTP.
pub fn unreachable_by(kind: RouteKind, port: &ServicePort) -> Option<String> {
    match (kind, declared(port)) {
        (_, (Declared::NotHttp, Some(how))) => Some(format!("port {} is declared not HTTP ({how})", port.port)),
        (RouteKind::Grpc, (Declared::Http1, Some(how))) => {
            Some(format!("port {} is declared HTTP/1 ({how}); gRPC needs HTTP/2", port.port))
        }
        _ => None,
    }
}

/// Why a GRPCRoute parentRef without `port` leaves this Service port alone, or `None` if the
/// port may carry gRPC: ports declared HTTP/1 or not HTTP are skipped; `grpc`, `http2`,
/// `kubernetes.io/h2c` and undeclared ports qualify.
pub fn not_grpc(port: &ServicePort) -> Option<String> {
    match declared(port) {
        (Declared::Http1, Some(how)) => Some(format!("{how}: HTTP/1")),
        (Declared::NotHttp, Some(how)) => Some(format!("{how}: not HTTP")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: Option<&str>, app_protocol: Option<&str>) -> ServicePort {
        ServicePort { name: name.map(Into::into), port: 8080, target_port: None, app_protocol: app_protocol.map(Into::into) }
    }

    #[test]
    fn app_protocol_wins_over_the_name() {
        assert_eq!(declared(&port(Some("http"), Some("grpc"))).0, Declared::Http2);
        assert_eq!(declared(&port(Some("grpc"), Some("kubernetes.io/ws"))).0, Declared::Http1);
        assert_eq!(declared(&port(None, Some("kubernetes.io/h2c"))).0, Declared::Http2);
        assert_eq!(declared(&port(None, Some("TCP"))).0, Declared::NotHttp);
    }

    #[test]
    fn names_declare_by_their_protocol_prefix() {
        for (name, kind) in [
            ("http", Declared::Http1),
            ("http-web", Declared::Http1),
            ("https", Declared::Http1),
            ("grpc", Declared::Http2),
            ("grpc-echo", Declared::Http2),
            ("grpc-web", Declared::Http1),
            ("grpc-web-ui", Declared::Http1),
            ("http2", Declared::Http2),
            ("tcp-db", Declared::NotHttp),
            ("mysql", Declared::NotHttp),
            ("grpcx", Declared::Undeclared),
            ("web", Declared::Undeclared),
            ("httpx", Declared::Undeclared),
        ] {
            assert_eq!(declared(&port(Some(name), None)).0, kind, "{name}");
        }
    }

    #[test]
    fn a_port_without_name_or_app_protocol_is_undeclared() {
        assert_eq!(declared(&port(None, None)), (Declared::Undeclared, None));
        assert_eq!(declared(&port(None, Some("example.com/custom"))), (Declared::Undeclared, None));
    }

    #[test]
    fn grpc_cannot_reach_http1_ports_and_nothing_reaches_tcp() {
        assert!(unreachable_by(RouteKind::Grpc, &port(Some("http"), None)).is_some_and(|m| m.contains("gRPC needs HTTP/2")));
        assert_eq!(unreachable_by(RouteKind::Http, &port(Some("http"), None)), None);
        assert!(unreachable_by(RouteKind::Http, &port(Some("tcp"), None)).is_some());
        for reachable in [port(None, None), port(Some("grpc"), None), port(Some("web"), None)] {
            assert_eq!(unreachable_by(RouteKind::Grpc, &reachable), None, "{reachable:?}");
        }
    }
}
