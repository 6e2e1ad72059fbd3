//! The Gateway API's `RequestRedirect` and `URLRewrite` filters through Envoy.
//!
//! A rule with a RequestRedirect (and no backendRefs) is answered by the proxy itself: the
//! redirect's status (302 unless `statusCode` says 301, 303, 307 or 308) and an absolute
//! `Location` built from the request's URL with the parts the filter names replaced. A part the
//! filter leaves out keeps the request's value: scheme `http`, the hostname of the Host header
//! (without its port), the path, and always the query string. The port is the filter's `port`
//! if it has one, else the default port of the filter's `scheme` if it has one (80 for http,
//! 443 for https), else the Service port the client dialled (the mesh's "listener port"); a
//! scheme's default port is left out of the Location, any other is written.
//!
//! A URLRewrite (on a rule, or on a backendRef for only the requests sent to that backend)
//! changes what the backend sees: `hostname` its Host, `path` its path (ReplaceFullPath, or
//! ReplacePrefixMatch of the rule's one PathPrefix match, as the API's table of prefixes and
//! replacements says); the query string is kept.
//!
//! Every outcome is asserted on what the client received and what the echo backend saw. The
//! harness's client never follows a redirect, so the proxy's own answer is what is checked.
//! Each HTTP case is checked over HTTP/1.1, whose Host is the Service's name (`echo`, or
//! `echo:8080` off port 80), and over cleartext HTTP/2, whose `:authority` is the ClusterIP and
//! port the client dialled.

use meshroute_e2e::mesh::{Call, Mesh, Mode};

/// HTTP/1.1 (false) and cleartext HTTP/2 (true).
const PROTOCOLS: [bool; 2] = [false, true];

/// `GET path` to `service` (`NAME` or `NAME:PORT`) over HTTP/1.1 or h2c.
fn get<'m>(mesh: &'m Mesh, service: &str, path: &str, http2: bool) -> Call<'m> {
    let call = mesh.get(service, path);
    if http2 {
        call.http2()
    } else {
        call
    }
}

/// The hostname a redirect keeps when its filter names none: the request's Host without its
/// port. Over HTTP/1.1 that is the Service's name; over h2c the `:authority` is the address the
/// client dialled, so it is the Service's ClusterIP.
fn kept_hostname(mesh: &Mesh, name: &str, http2: bool) -> String {
    if http2 {
        mesh.service(name).cluster_ip.to_string()
    } else {
        name.to_owned()
    }
}

/// One HTTPRoute named `name` (a test's name, underscores made dashes) on every port of the Service `echo` whose single rule has only the
/// RequestRedirect `redirect` (its fields, in YAML flow style) and no backendRefs.
fn redirect_route(name: &str, redirect: &str) -> String {
    let name = name.replace('_', "-");
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: default
spec:
  parentRefs:
  - {{group: "", kind: Service, name: echo}}
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {redirect}
"#
    )
}

/// A mesh whose Service `echo` (ports 80 and 8080) has the one redirect rule `redirect`.
fn redirect_mesh(test: &str, redirect: &str) -> Mesh {
    Mesh::builder(test).service_with_ports("echo", &[80, 8080]).routes(&redirect_route(test, redirect)).start()
}

// ---------------------------------------------------------------------------------------------
// RequestRedirect
// ---------------------------------------------------------------------------------------------

/// `hostname` replaces the host and nothing else: the scheme stays http, the path and query
/// stay, the port is the one dialled (80, the default, so not written), and the status is the
/// default 302.
#[test]
fn redirect_hostname_replaces_the_host_and_keeps_the_rest_with_302() {
    let mesh = redirect_mesh("redirect_hostname_replaces_the_host_and_keeps_the_rest_with_302", "{hostname: example.com}");
    for http2 in PROTOCOLS {
        get(&mesh, "echo:80", "/x?a=1", http2).expect_redirect(302, "http://example.com/x?a=1");
    }
}

/// Without `port` or `scheme`, the redirect keeps the Service port the client dialled: a request
/// to echo:8080 goes to example.com:8080, written since 8080 is not http's default.
#[test]
fn redirect_hostname_keeps_the_service_port_the_client_dialled() {
    let mesh = redirect_mesh("redirect_hostname_keeps_the_service_port_the_client_dialled", "{hostname: example.com}");
    for http2 in PROTOCOLS {
        get(&mesh, "echo:8080", "/x?a=1", http2).expect_redirect(302, "http://example.com:8080/x?a=1");
    }
}

/// `scheme: https` without `port` takes https's default port, 443, which is left out of the
/// Location: from echo:80 and from echo:8080 alike (the dialled port is not kept). The host is
/// the request's, without its port.
#[test]
fn redirect_scheme_https_takes_port_443_and_leaves_it_out() {
    let mesh = redirect_mesh("redirect_scheme_https_takes_port_443_and_leaves_it_out", "{scheme: https}");
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:80", "/x?a=1", http2).expect_redirect(302, &format!("https://{host}/x?a=1"));
        get(&mesh, "echo:8080", "/x?a=1", http2).expect_redirect(302, &format!("https://{host}/x?a=1"));
    }
}

/// `scheme: http` without `port` takes http's default port, 80, left out of the Location, even
/// for a request to echo:8080.
#[test]
fn redirect_scheme_http_takes_port_80_and_leaves_it_out() {
    let mesh = redirect_mesh("redirect_scheme_http_takes_port_80_and_leaves_it_out", "{scheme: http}");
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:8080", "/x?a=1", http2).expect_redirect(302, &format!("http://{host}/x?a=1"));
    }
}

/// `scheme: https` with `port: 8443`: the port is not https's default, so it is written.
#[test]
fn redirect_scheme_with_a_port_of_its_own_writes_the_port() {
    let mesh = redirect_mesh("redirect_scheme_with_a_port_of_its_own_writes_the_port", "{scheme: https, port: 8443}");
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:80", "/x?a=1", http2).expect_redirect(302, &format!("https://{host}:8443/x?a=1"));
        get(&mesh, "echo:8080", "/x?a=1", http2).expect_redirect(302, &format!("https://{host}:8443/x?a=1"));
    }
}

/// `port: 8080` alone: the scheme stays http, and 8080 is written.
#[test]
fn redirect_port_replaces_the_dialled_port_and_is_written() {
    let mesh = redirect_mesh("redirect_port_replaces_the_dialled_port_and_is_written", "{port: 8080}");
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:80", "/x?a=1", http2).expect_redirect(302, &format!("http://{host}:8080/x?a=1"));
    }
}

/// A `port` that is the scheme's default is left out of the Location: `port: 80` (http) for a
/// request to echo:8080, and `scheme: https, port: 443`.
#[test]
fn redirect_to_the_schemes_default_port_leaves_it_out() {
    let mesh = Mesh::builder("redirect_to_the_schemes_default_port_leaves_it_out")
        .service_with_ports("echo", &[80, 8080])
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: default-ports
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /plain}
    filters:
    - type: RequestRedirect
      requestRedirect: {port: 80}
  - matches:
    - path: {type: PathPrefix, value: /secure}
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, port: 443}
"#,
        )
        .start();
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:8080", "/plain/x?a=1", http2).expect_redirect(302, &format!("http://{host}/plain/x?a=1"));
        get(&mesh, "echo:8080", "/secure/x?a=1", http2).expect_redirect(302, &format!("https://{host}/secure/x?a=1"));
        get(&mesh, "echo:80", "/secure/x?a=1", http2).expect_redirect(302, &format!("https://{host}/secure/x?a=1"));
    }
}

/// `path: ReplaceFullPath` replaces the whole path, whatever it was; the query string stays.
#[test]
fn redirect_replace_full_path_keeps_the_query() {
    let mesh =
        redirect_mesh("redirect_replace_full_path_keeps_the_query", "{path: {type: ReplaceFullPath, replaceFullPath: /new}}");
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:80", "/x?a=1", http2).expect_redirect(302, &format!("http://{host}/new?a=1"));
        get(&mesh, "echo:80", "/deep/er/path", http2).expect_redirect(302, &format!("http://{host}/new"));
    }
}

/// `path: ReplacePrefixMatch` swaps the rule's matched prefix for the replacement and keeps the
/// rest of the path and the query: `/old/a/b?q=1` to `/new/a/b?q=1`, `/old` to `/new`, `/old/`
/// to `/new/`. The redirect belongs to its rule: a request the other rule takes reaches its
/// backend unchanged.
#[test]
fn redirect_replace_prefix_match_swaps_the_matched_prefix() {
    let mesh = Mesh::builder("redirect_replace_prefix_match_swaps_the_matched_prefix")
        .service_with_ports("echo", &[80, 8080])
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: moved-prefix
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
  - backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:80", "/old/a/b?q=1", http2).expect_redirect(302, &format!("http://{host}/new/a/b?q=1"));
        get(&mesh, "echo:80", "/old", http2).expect_redirect(302, &format!("http://{host}/new"));
        get(&mesh, "echo:80", "/old/", http2).expect_redirect(302, &format!("http://{host}/new/"));
        get(&mesh, "echo:8080", "/old/a?q=1", http2).expect_redirect(302, &format!("http://{host}:8080/new/a?q=1"));
        get(&mesh, "echo:80", "/other?q=1", http2).expect_backend("echo-v1");
    }
}

/// A redirect with only `statusCode`: answered with that status, and a Location that is the
/// request's own URL (every part kept, the dialled port written when it is not 80).
fn assert_status_code_redirect(test: &str, status: u16) {
    let mesh = redirect_mesh(test, &format!("{{statusCode: {status}}}"));
    for http2 in PROTOCOLS {
        let host = kept_hostname(&mesh, "echo", http2);
        get(&mesh, "echo:80", "/x?a=1", http2).expect_redirect(status, &format!("http://{host}/x?a=1"));
        get(&mesh, "echo:8080", "/x?a=1", http2).expect_redirect(status, &format!("http://{host}:8080/x?a=1"));
    }
}

#[test]
fn redirect_status_code_301_moved_permanently() {
    assert_status_code_redirect("redirect_status_code_301_moved_permanently", 301);
}

#[test]
fn redirect_status_code_302_found_when_asked() {
    assert_status_code_redirect("redirect_status_code_302_found_when_asked", 302);
}

#[test]
fn redirect_status_code_303_see_other() {
    assert_status_code_redirect("redirect_status_code_303_see_other", 303);
}

#[test]
fn redirect_status_code_307_temporary_redirect() {
    assert_status_code_redirect("redirect_status_code_307_temporary_redirect", 307);
}

#[test]
fn redirect_status_code_308_permanent_redirect() {
    assert_status_code_redirect("redirect_status_code_308_permanent_redirect", 308);
}

// ---------------------------------------------------------------------------------------------
// URLRewrite
// ---------------------------------------------------------------------------------------------

/// One frontend Service per (prefix, replacement) pair of the API's ReplacePrefixMatch table,
/// since pairs share a prefix: its one HTTPRoute rewrites the prefix and sends to echo-v1.
const PREFIX_PAIRS: &[(&str, &str, &str)] = &[
    ("foo-to-xyz", "/foo", "/xyz"),
    ("foo-to-xyz-slash", "/foo", "/xyz/"),
    ("foo-slash-to-xyz", "/foo/", "/xyz"),
    ("foo-slash-to-xyz-slash", "/foo/", "/xyz/"),
    ("foo-to-empty", "/foo", ""),
    ("foo-to-slash", "/foo", "/"),
];

/// Rows: the frontend Service, the path sent, the path echo-v1 must see.
const PREFIX_ROWS: &[(&str, &str, &str)] = &[
    // The Gateway API's table (HTTPPathModifier.replacePrefixMatch).
    ("foo-to-xyz", "/foo/bar", "/xyz/bar"),
    ("foo-to-xyz-slash", "/foo/bar", "/xyz/bar"),
    ("foo-slash-to-xyz", "/foo/bar", "/xyz/bar"),
    ("foo-slash-to-xyz-slash", "/foo/bar", "/xyz/bar"),
    ("foo-to-xyz", "/foo", "/xyz"),
    ("foo-to-xyz", "/foo/", "/xyz/"),
    ("foo-to-empty", "/foo/bar", "/bar"),
    ("foo-to-empty", "/foo/", "/"),
    ("foo-to-empty", "/foo", "/"),
    ("foo-to-slash", "/foo/", "/"),
    ("foo-to-slash", "/foo", "/"),
    // Stripping a prefix (`strip`: /prefix and /strip-prefix, both to `/`, in one route).
    ("strip", "/prefix/one/two", "/one/two"),
    ("strip", "/strip-prefix", "/"),
    // The query string is kept.
    ("foo-to-xyz", "/foo/bar?q=1&r=2", "/xyz/bar?q=1&r=2"),
    ("foo-to-empty", "/foo?q=1", "/?q=1"),
    ("strip", "/prefix/one?q=1", "/one?q=1"),
];

/// ReplacePrefixMatch, row by row of the API's table: the matched prefix is replaced segment
/// by segment, a trailing slash of the prefix or the replacement never doubles or drops the
/// slash that separates the rest, and an empty or `/` replacement leaves at least `/`.
#[test]
fn url_rewrite_replace_prefix_match_follows_the_apis_table() {
    let mut builder =
        Mesh::builder("url_rewrite_replace_prefix_match_follows_the_apis_table").service("echo-v1").service("strip");
    for (frontend, prefix, replacement) in PREFIX_PAIRS {
        builder = builder.service(frontend).routes(&format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {frontend}
  namespace: default
spec:
  parentRefs:
  - {{group: "", kind: Service, name: {frontend}, port: 80}}
  rules:
  - matches:
    - path: {{type: PathPrefix, value: "{prefix}"}}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {{type: ReplacePrefixMatch, replacePrefixMatch: "{replacement}"}}
    backendRefs:
    - {{name: echo-v1, port: 80}}
"#
        ));
    }
    let mesh = builder
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: strip
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: strip, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /prefix}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /strip-prefix}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        for (frontend, sent, seen) in PREFIX_ROWS {
            let rule = match PREFIX_PAIRS.iter().find(|(name, _, _)| name == frontend) {
                Some((_, prefix, replacement)) => format!("prefix {prefix:?} replaced by {replacement:?}"),
                None => "prefixes /prefix and /strip-prefix replaced by \"/\"".to_owned(),
            };
            let reply = get(&mesh, frontend, sent, http2).send();
            assert!(
                reply.status == 200 && reply.backend.as_deref() == Some("echo-v1"),
                "h2c: {http2}: {rule}: {sent} sent to {frontend} should reach echo-v1 as {seen}, got {reply}"
            );
            let path = reply.echo.as_ref().map(|echo| echo.path.as_str());
            assert_eq!(path, Some(*seen), "h2c: {http2}: {rule}: {sent} sent to {frontend}: the path echo-v1 saw");
        }
    }
}

/// `hostname` is the Host the backend sees (over h2c too, where the client named the host in
/// `:authority`); the path and query are untouched.
#[test]
fn url_rewrite_hostname_is_the_host_the_backend_sees() {
    let mesh = Mesh::builder("url_rewrite_hostname_is_the_host_the_backend_sees")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rewrite-host
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: URLRewrite
      urlRewrite:
        hostname: rewritten.example.com
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();
    for http2 in PROTOCOLS {
        let reply = get(&mesh, "echo", "/x?a=1", http2).expect_backend("echo-v1");
        assert_eq!(reply.seen_header("host"), Some("rewritten.example.com"), "h2c: {http2}: {:?}", reply.echo);
    }
}

/// `path: ReplaceFullPath` is the path the backend sees whatever was sent, with the request's
/// query string; the Host is untouched.
#[test]
fn url_rewrite_replace_full_path_keeps_the_query() {
    let mesh = Mesh::builder("url_rewrite_replace_full_path_keeps_the_query")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rewrite-full-path
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplaceFullPath, replaceFullPath: /new}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();
    for http2 in PROTOCOLS {
        let host = if http2 { mesh.address_of("echo:80") } else { "echo".to_owned() };
        let reply = get(&mesh, "echo", "/api/any/thing?a=1&b=2", http2).expect_backend_at("echo-v1", "/new?a=1&b=2");
        assert_eq!(reply.seen_header("host"), Some(host.as_str()), "h2c: {http2}: the Host echo-v1 saw");
        get(&mesh, "echo", "/api", http2).expect_backend_at("echo-v1", "/new");
        get(&mesh, "echo", "/api/", http2).expect_backend_at("echo-v1", "/new");
    }
}

/// A URLRewrite (hostname and path) and a RequestHeaderModifier on one rule: the backend sees
/// the rewritten Host and path and every header change.
#[test]
fn url_rewrite_and_request_header_modifier_on_one_rule_both_apply() {
    let mesh = Mesh::builder("url_rewrite_and_request_header_modifier_on_one_rule_both_apply")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rewrite-and-headers
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /public}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-set, value: route}
        add:
        - {name: x-add, value: route}
        remove: [x-remove-me]
    - type: URLRewrite
      urlRewrite:
        hostname: internal.example.com
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /internal}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();
    for http2 in PROTOCOLS {
        let reply = get(&mesh, "echo", "/public/page?id=7", http2)
            .header("x-set", "client")
            .header("x-add", "client")
            .header("x-remove-me", "client")
            .expect_backend_at("echo-v1", "/internal/page?id=7");
        assert_eq!(reply.seen_header("host"), Some("internal.example.com"), "h2c: {http2}: {:?}", reply.echo);
        assert_eq!(reply.seen_header_values("x-set"), ["route"], "h2c: {http2}: {:?}", reply.echo);
        assert_eq!(reply.seen_header_values("x-add"), ["client", "route"], "h2c: {http2}: {:?}", reply.echo);
        assert_eq!(reply.seen_header("x-remove-me"), None, "h2c: {http2}: {:?}", reply.echo);
    }
}

/// A rule on PathPrefix /api of the Service `echo`, split 1:1 over echo-v1 and echo-v2, each
/// backendRef with the URLRewrite `v1_rewrite` and `v2_rewrite` (YAML flow style).
fn split_rewrite_route(v1_rewrite: &str, v2_rewrite: &str) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rewrite-per-backend
  namespace: default
spec:
  parentRefs:
  - {{group: "", kind: Service, name: echo, port: 80}}
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /api}}
    backendRefs:
    - name: echo-v1
      port: 80
      weight: 1
      filters:
      - type: URLRewrite
        urlRewrite: {v1_rewrite}
    - name: echo-v2
      port: 80
      weight: 1
      filters:
      - type: URLRewrite
        urlRewrite: {v2_rewrite}
"#
    )
}

/// Sends `/api/items?page=2` to `echo` 50 times, alternating HTTP/1.1 and h2c, and asserts
/// that every answer came from a backend of `expected` (`(backend, path, host)`: the path and
/// Host that backend must see, `None` for the Host the client sent: `echo` over HTTP/1.1, the
/// address dialled over h2c) and saw exactly those, and that both backends answered. At
/// 1:1 the chance that one of two never answers in 50 requests is 2 × 2^-50 = 2^-49, so this
/// cannot flake in practice.
#[track_caller]
fn assert_each_backend_sees_its_own_rewrite(mesh: &Mesh, expected: [(&str, &str, Option<&str>); 2]) {
    const REQUESTS: usize = 50;
    let mut answered = [0usize; 2];
    for i in 0..REQUESTS {
        let http2 = i % 2 == 1;
        let reply = get(mesh, "echo", "/api/items?page=2", http2).send();
        let found = expected.iter().position(|(backend, _, _)| reply.status == 200 && reply.backend.as_deref() == Some(*backend));
        let Some(which) = found else {
            panic!("request {i} (h2c: {http2}): expected an answer from echo-v1 or echo-v2, got {reply}")
        };
        answered[which] += 1;
        let (backend, path, host) = &expected[which];
        let host = match host {
            Some(host) => (*host).to_owned(),
            None if http2 => mesh.address_of("echo:80"),
            None => "echo".to_owned(),
        };
        let seen = reply.echo.as_ref().map(|echo| (echo.path.as_str(), echo.headers.get("host").map(String::as_str)));
        assert_eq!(seen, Some((*path, Some(host.as_str()))), "request {i} (h2c: {http2}): the path and Host {backend} saw");
    }
    assert!(
        answered[0] > 0 && answered[1] > 0,
        "both backends should answer some of {REQUESTS} requests split 1:1: {} {}, {} {}",
        expected[0].0,
        answered[0],
        expected[1].0,
        answered[1]
    );
}

/// A backendRef's URLRewrite `hostname` applies only to the requests sent to that backend:
/// echo-v1 sees Host v1.example.com and echo-v2 v2.example.com, both the path as it was sent.
#[test]
fn backend_ref_url_rewrite_hostname_applies_only_to_requests_sent_to_that_backend() {
    let mesh = Mesh::builder("backend_ref_url_rewrite_hostname_applies_only_to_requests_sent_to_that_backend")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(&split_rewrite_route("{hostname: v1.example.com}", "{hostname: v2.example.com}"))
        .start();
    assert_each_backend_sees_its_own_rewrite(
        &mesh,
        [("echo-v1", "/api/items?page=2", Some("v1.example.com")), ("echo-v2", "/api/items?page=2", Some("v2.example.com"))],
    );
}

/// A backendRef's URLRewrite `path` applies only to the requests sent to that backend: the
/// prefix /api becomes /v1 for echo-v1 and /v2 for echo-v2; the Host is the client's.
///
/// Envoy's own router rewrites a path per route, never per cluster of a split: in native mode
/// the path is left as it is (the rule rewrites none), and `meshroute check` says so rather than
/// let the modes differ silently.
#[test]
fn backend_ref_url_rewrite_path_applies_only_to_requests_sent_to_that_backend() {
    let mesh = Mesh::builder("backend_ref_url_rewrite_path_applies_only_to_requests_sent_to_that_backend")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(&split_rewrite_route(
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}}",
            "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}",
        ))
        .start();
    let native = mesh.mode() == Mode::Native;
    let (v1, v2) = if native { ("/api/items?page=2", "/api/items?page=2") } else { ("/v1/items?page=2", "/v2/items?page=2") };
    assert_each_backend_sees_its_own_rewrite(&mesh, [("echo-v1", v1, None), ("echo-v2", v2, None)]);
    let (code, text) = mesh.check(false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("its backendRefs rewrite the path differently") && text.contains("--mode native"), "{text}");
}
