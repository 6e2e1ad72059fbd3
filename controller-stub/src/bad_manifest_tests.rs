//! Hostile and broken manifests: each gets its exact error (file, line, resource, field) and
//! nothing crashes, however large, deep or binary the input.

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::decode_text;
use crate::load::SourceFile;
use crate::pipeline::{build, build_files, LastGood};

const ROUTE_HEAD: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: s
    kind: Service
    group: \"\"
  rules:
";

fn errors(text: &str) -> Vec<String> {
    decode_text("x.yaml", text).1
}

fn one(errors: Vec<String>) -> String {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap_or_default()
}

fn rules(rules: &str) -> String {
    one(errors(&format!("{ROUTE_HEAD}{rules}")))
}

#[test]
fn malformed_yaml_names_file_line_and_the_parser_message() {
    let cases = [
        ("a:\n\tb: 1\n", "x.yaml:2: invalid YAML: tabs disallowed within this context (block indentation)"),
        ("a: [1, 2\nb: 3\n", "x.yaml:2: invalid YAML: illegal placement of ':' indicator"),
        ("a:\n  b: 1\n c: 2\n", "x.yaml:3: invalid YAML: while parsing a block mapping, did not find expected key"),
        ("a: \"abc\nb: 1\n", "x.yaml:1: invalid YAML: invalid indentation in quoted scalar"),
    ];
    for (text, expected) in cases {
        assert_eq!(one(errors(text)), expected, "{text:?}");
    }
}

#[test]
fn a_document_that_is_not_a_mapping() {
    assert_eq!(one(errors("- a\n- b\n")), "x.yaml:1: must be a mapping, found a list");
    assert_eq!(one(errors("hello\n")), "x.yaml:1: must be a mapping, found the string \"hello\"");
}

#[test]
fn unknown_or_mistyped_kind() {
    let supported = "meshroute reads Service (v1), EndpointSlice (discovery.k8s.io/v1), HTTPRoute and GRPCRoute \
(gateway.networking.k8s.io/v1)";
    assert_eq!(one(errors("apiVersion: v1\nmetadata:\n  name: r\n")), format!("x.yaml:1: kind: required; {supported}"));
    assert_eq!(
        one(errors("apiVersion: v1\nkind: 42\nmetadata:\n  name: r\n")),
        "x.yaml:2: kind: must be a string, found the number 42 (quote it)"
    );
    assert_eq!(
        one(errors("apiVersion: gateway.networking.k8s.io/v1\nkind: HttpRoute\nmetadata:\n  name: r\n")),
        format!(
            "x.yaml:2: HttpRoute default/r: kind: kind \"HttpRoute\" is not one meshroute reads (did you mean HTTPRoute?); it reads {}",
            &supported["meshroute reads ".len()..]
        )
    );
}

#[test]
fn unknown_or_missing_api_version() {
    assert_eq!(
        one(errors("apiVersion: gateway.networking.k8s.io/v2\nkind: HTTPRoute\nmetadata:\n  name: r\nspec: {}\n")),
        "x.yaml:1: HTTPRoute default/r: apiVersion: \"gateway.networking.k8s.io/v2\" is not supported for HTTPRoute; use gateway.networking.k8s.io/v1 or gateway.networking.k8s.io/v1beta1"
    );
    assert_eq!(
        one(errors("kind: Service\nmetadata:\n  name: r\nspec:\n  ports:\n  - port: 80\n")),
        "x.yaml:1: Service default/r: apiVersion: required"
    );
}

#[test]
fn unknown_fields_at_every_level() {
    assert_eq!(
        one(errors("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  lables: {a: b}\nspec:\n  ports:\n  - port: 80\n")),
        "x.yaml:5: Service default/s: metadata: unknown field \"lables\" (did you mean \"labels\"?)"
    );
    let e = one(errors(&format!("{ROUTE_HEAD}  - backendRefs:\n    - name: a\n      port: 80\n      wieght: 2\n")));
    assert_eq!(
        e,
        "x.yaml:14: HTTPRoute default/r: spec.rules[0].backendRefs[0]: unknown field \"wieght\" (did you mean \"weight\"?)"
    );
    assert_eq!(
        one(errors("apiVersion: v1\nkind: Service\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n")),
        "x.yaml:3: Service default/s: kind: duplicate field"
    );
}

#[test]
fn mistyped_fields() {
    let backend = |weight: &str| rules(&format!("  - backendRefs:\n    - name: a\n      port: 80\n      weight: {weight}\n"));
    let at = "x.yaml:14: HTTPRoute default/r: spec.rules[0].backendRefs[0].weight";
    assert_eq!(backend("ten"), format!("{at}: must be an integer, found the string \"ten\""));
    assert_eq!(backend("\"5\""), format!("{at}: must be an integer, found the string \"5\""));
    assert_eq!(backend("1.5"), format!("{at}: must be an integer, found the number 1.5"));
    assert_eq!(backend("true"), format!("{at}: must be an integer, found the boolean true"));
    assert_eq!(backend("[1]"), format!("{at}: must be an integer, found a list"));
    // Past i64: still refused, never wrapped round to something in range.
    assert_eq!(backend("99999999999999999999"), format!("{at}: must be an integer, found the number 99999999999999999999"));
    assert_eq!(backend("-0x10"), format!("{at}: must be between 0 and 1000000"));
    assert_eq!(
        rules("  - backendRefs:\n    - name: a\n      port: http\n"),
        "x.yaml:13: HTTPRoute default/r: spec.rules[0].backendRefs[0].port: must be an integer, found the string \"http\""
    );
    assert_eq!(rules("    backendRefs: []\n"), "x.yaml:11: HTTPRoute default/r: spec.rules: must be a list, found a mapping");
}

#[test]
fn missing_or_empty_names() {
    assert_eq!(one(errors("apiVersion: v1\nkind: Service\nspec:\n  ports:\n  - port: 80\n")), "x.yaml:1: metadata: required");
    assert_eq!(
        one(errors("apiVersion: v1\nkind: Service\nmetadata:\n  name: \"\"\nspec:\n  ports:\n  - port: 80\n")),
        "x.yaml:4: Service default/: metadata.name: \"\" must be 1 to 63 characters"
    );
    assert_eq!(
        rules("  - backendRefs:\n    - port: 80\n"),
        "x.yaml:12: HTTPRoute default/r: spec.rules[0].backendRefs[0].name: required"
    );
}

#[test]
fn duplicate_routes_across_files_name_the_first() {
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  namespace: ns\nspec: {}\n";
    let files = [
        SourceFile { path: "a.yaml".into(), text: route.to_owned() },
        SourceFile { path: "b/c.yaml".into(), text: format!("# another copy\n{route}") },
    ];
    let errors = build_files(&files, Vec::new(), &LastGood::default(), "default").unwrap().problems();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors, ["b/c.yaml:5: HTTPRoute ns/r: defined twice: also at a.yaml:4"]);
}

#[test]
fn paths_with_encoded_slashes_or_dot_segments() {
    let path = |value: &str| rules(&format!("  - matches:\n    - path:\n        value: {value}\n"));
    let at = "x.yaml:13: HTTPRoute default/r: spec.rules[0].matches[0].path.value";
    assert_eq!(path("/a%2fb"), format!("{at}: must not contain '%2f' or '%2F'"));
    assert_eq!(path("//a"), format!("{at}: must not contain '//'"));
    assert_eq!(path("/a/../b"), format!("{at}: must not contain '/../' or end with '/..'"));
    assert_eq!(path("/a/./b"), format!("{at}: must not contain '/./' or end with '/.'"));
    assert_eq!(path("/a%zz"), format!("{at}: has a '%' that does not start a %XX escape"));
}

#[test]
fn oversized_or_invalid_regexes() {
    let path_regex =
        |value: &str| rules(&format!("  - matches:\n    - path:\n        type: RegularExpression\n        value: \"{value}\"\n"));
    let at = "x.yaml:14: HTTPRoute default/r: spec.rules[0].matches[0].path.value";
    // Short to write, too big to compile: the regex engine's size limit, not memory, stops it.
    assert_eq!(
        path_regex("a{1000}{1000}"),
        format!("{at}: invalid regex \"a{{1000}}{{1000}}\": compiled regex exceeded size limit")
    );
    assert_eq!(path_regex(&format!("/{}", "a".repeat(1100))), format!("{at}: must be at most 1024 characters"));
    let header = format!(
        "  - matches:\n    - headers:\n      - type: RegularExpression\n        name: x\n        value: \"{}\"\n",
        "a".repeat(2000)
    );
    assert_eq!(
        rules(&header),
        "x.yaml:15: HTTPRoute default/r: spec.rules[0].matches[0].headers[0].value: regex is longer than 1024 bytes"
    );
    let query = "  - matches:\n    - queryParams:\n      - type: RegularExpression\n        name: x\n        value: \"(a\"\n";
    assert_eq!(
        rules(query),
        "x.yaml:15: HTTPRoute default/r: spec.rules[0].matches[0].queryParams[0].value: invalid regex \"(a\": found open group without closing ')'"
    );
}

#[test]
fn empty_files_hold_no_resources_and_no_errors() {
    for text in ["", "\n\n", "   \n", "# just a comment\n", "---\n---\n", "...\n", "null\n", "~\n", "\u{feff}"] {
        let (m, e) = decode_text("x.yaml", text);
        assert!(e.is_empty(), "{text:?}: {e:#?}");
        assert!(m.services.is_empty() && m.http_routes.is_empty(), "{text:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("empty.yaml"), "").unwrap();
    fs::write(dir.path().join("comments.yml"), "# nothing yet\n---\n").unwrap();
    fs::write(
        dir.path().join("bom.yaml"),
        "\u{feff}apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let built = build(dir.path(), "default").unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(built.manifests.services.len(), 1, "a byte order mark is not part of the first key");
    assert!(built.table.frontends.is_empty() && built.table.routes.is_empty());
}

#[test]
fn invalid_utf8_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ok.yaml"), "# fine\n").unwrap();
    fs::write(dir.path().join("garbage.yaml"), b"kind: Service\n\xff\xfe\x80 binary").unwrap();
    let errors: Vec<String> = build(dir.path(), "default").unwrap().problems().iter().map(ToString::to_string).collect();
    assert_eq!(errors, ["garbage.yaml: is not UTF-8 text"]);
}

#[test]
fn control_characters_are_refused_not_read_as_the_end_of_the_file() {
    // yaml-rust2 alone reads a NUL as the end of the text: everything after it would vanish.
    let text = "apiVersion: v1\nkind: Service\u{0}metadata: {name: s}\n";
    assert_eq!(
        one(errors(text)),
        "x.yaml:2: invalid YAML: control character U+0000 at column 14 (YAML allows printable characters only; is this a binary file?)"
    );
    assert_eq!(
        one(errors("a: 1\nb: \u{1b}[31mred\n")),
        "x.yaml:2: invalid YAML: control character U+001B at column 4 (YAML allows printable characters only; is this a binary file?)"
    );
    assert_eq!(
        one(errors("\u{7f}ELF\u{2}\u{1}\u{1}")),
        "x.yaml:1: invalid YAML: control character U+007F at column 1 (YAML allows printable characters only; is this a binary file?)"
    );
}

/// A small deterministic generator, so that a failure names its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_give_errors_naming_the_file_and_never_a_crash() {
    // Bytes biased towards YAML's own punctuation, so the parser gets past its first character.
    const ALPHABET: &[u8] = b"-:[]{}&*!|>'\"%@`#,? \n\t\r\x00\x01abcdkinmetaSvc0123456789/.\xc3\xa9";
    for seed in 1..=2_000u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let len = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]).collect();
        let text = String::from_utf8_lossy(&bytes);
        for e in errors(&text) {
            assert!(e.starts_with("x.yaml"), "seed {seed}: {e}");
        }
    }
}

#[test]
fn deep_nesting_is_an_error_with_its_place() {
    assert_eq!(one(errors(&"[".repeat(10_000))), "x.yaml:1: invalid YAML: recursion limit exceeded");
    let text =
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  labels: {}x{}\n", "[".repeat(150), "]".repeat(150));
    assert_eq!(one(errors(&text)), "x.yaml:5: invalid YAML: lists and mappings nested deeper than 100 levels");
    let text = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  labels:\n    {}x\n", "- ".repeat(100_000));
    assert_eq!(one(errors(&text)), "x.yaml:6: invalid YAML: lists and mappings nested deeper than 100 levels");
}

#[test]
fn alias_bomb_is_refused_without_expanding_it() {
    let mut text = String::from("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations:\n    a0: &a0 [lol]\n");
    for i in 1..12 {
        text.push_str(&format!("    a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    let started = Instant::now();
    let e = one(errors(&text));
    assert_eq!(e, "x.yaml:11: invalid YAML: the aliases expand to more than 100000 nodes");
    println!("alias bomb refused in {:?}", started.elapsed());
}

/// `n` HTTPRoutes over `services` Services, spread over files of 100 routes.
fn large_manifest_set(dir: &Path, routes: usize, services: usize) {
    let mut text = String::new();
    for s in 0..services {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s}\nspec:\n  clusterIP: 10.1.{}.{}\n  ports:\n  - name: http\n    port: 80\n",
            s / 250,
            s % 250 + 1
        ));
    }
    fs::write(dir.join("services.yaml"), text).unwrap();
    for file in 0..routes.div_ceil(100) {
        let mut text = String::new();
        for i in file * 100..((file + 1) * 100).min(routes) {
            text.push_str(&format!(
                "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: route-{i}\nspec:\n  parentRefs:\n  - {{group: \"\", kind: Service, name: svc-{}, port: 80}}\n  rules:\n  - matches:\n    - path: {{type: PathPrefix, value: /r{i}}}\n      headers: [{{name: x-user, value: u{i}}}]\n    - path: {{type: Exact, value: /exact/{i}}}\n    backendRefs:\n    - {{name: svc-{}, port: 80, weight: 3}}\n    - {{name: svc-{}, port: 80, weight: 1}}\n",
                i % services,
                (i + 1) % services,
                (i + 2) % services,
            ));
        }
        fs::write(dir.join(format!("routes-{file:03}.yaml")), text).unwrap();
    }
}

#[test]
fn five_thousand_routes_build() {
    let dir = tempfile::tempdir().unwrap();
    large_manifest_set(dir.path(), 5_000, 20);
    let started = Instant::now();
    let built = build(dir.path(), "default").unwrap_or_else(|e| panic!("{:#?}", &e[..e.len().min(5)]));
    let elapsed = started.elapsed();
    assert_eq!(built.table.routes.len(), 5_000);
    assert_eq!(built.table.frontends.len(), 20);
    assert!(built.warnings_vec().is_empty(), "{:#?}", &built.warnings_vec()[..built.warnings_vec().len().min(5)]);
    let json = serde_json::to_vec(&built.table).unwrap();
    let table = meshroute_filter::table::RouteTable::from_json(&json).unwrap();
    assert_eq!(table.frontends().len(), 20);
    println!("5,000 HTTPRoutes on 20 Services ({} KiB of table): built in {elapsed:?}", json.len() / 1024);
}
