//! `meshroute-bench`: what `make bench` (bench/bench.py) drives.
//!
//! - `gen`: a route set as manifests (Services, EndpointSlices, HTTPRoutes) and the list of
//!   requests that spreads over every rule; with `--grpc`, Services of one gRPC port and a
//!   GRPCRoute each, and the names proxyless gRPC clients dial them by.
//! - `load`: sends requests from such a list through Envoy, closed-loop (as fast as the
//!   connections allow) or at a fixed rate, and prints one JSON line: counts, throughput and
//!   latency percentiles. At a fixed rate, latency counts from when a request was due, so a
//!   stalled server is not hidden by a client that waits for it (no coordinated omission).
//! - `ads`: simulated proxyless gRPC clients on `meshroute serve` (see `ads.rs`).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

mod ads;
// `miss()` is the criterion benchmark's; every request here is taken by a rule.
#[allow(dead_code)]
mod routeset;

const USAGE: &str = "usage:
  meshroute-bench gen (--rules N | --services N) [--no-routes] [--header-modifier] --upstream IP:PORT --out DIR
  meshroute-bench gen --services N --grpc [--swap-backends] --upstream IP:PORT --out DIR
  meshroute-bench load --requests FILE --net A.B --count N [--connections C] [--rate PER_SECOND]
  meshroute-bench ads --xds IP:PORT --listeners FILE --clients N [--connections C] [--namespace NS]";

/// Rules per HTTPRoute (the Gateway API allows 16).
const RULES_PER_ROUTE: usize = 10;
/// Requests in a row to one Service in a multi-Service list, so that connections are reused.
const GROUP: usize = 20;
/// Addresses in generated files use this network; `load --net` puts each Envoy's own.
const NET: &str = "127.77";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen") => generate(&Options::parse(&args[1..])),
        Some("load") => load(&Options::parse(&args[1..])),
        Some("ads") => ads::run(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    if let Err(error) = result {
        eprintln!("meshroute-bench: {error}");
        std::process::exit(2);
    }
}

#[derive(Default)]
struct Options {
    rules: Option<usize>,
    services: Option<usize>,
    no_routes: bool,
    /// Every rule also sets a request header (RequestHeaderModifier): what such a rule costs.
    header_modifier: bool,
    /// Services of one gRPC port, each with a GRPCRoute, for proxyless clients.
    grpc: bool,
    /// The GRPCRoutes' backends b1 and b2 exchanged: the same set with every route changed.
    swap_backends: bool,
    upstream: Option<SocketAddr>,
    out: Option<PathBuf>,
    requests: Option<PathBuf>,
    net: Option<String>,
    count: usize,
    connections: usize,
    rate: Option<f64>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut options = Options { count: 10_000, connections: 8, ..Options::default() };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "--no-routes" {
                options.no_routes = true;
                continue;
            }
            if flag == "--header-modifier" {
                options.header_modifier = true;
                continue;
            }
            if flag == "--grpc" {
                options.grpc = true;
                continue;
            }
            if flag == "--swap-backends" {
                options.swap_backends = true;
                continue;
            }
            let Some(value) = args.next() else { fail(&format!("{flag} needs a value")) };
            let number = || value.parse::<usize>().unwrap_or_else(|_| fail(&format!("{flag} {value}: not a number")));
            match flag.as_str() {
                "--rules" => options.rules = Some(number()),
                "--services" => options.services = Some(number()),
                "--upstream" => options.upstream = Some(value.parse().unwrap_or_else(|_| fail("--upstream: IP:PORT"))),
                "--out" => options.out = Some(value.into()),
                "--requests" => options.requests = Some(value.into()),
                "--net" => options.net = Some(value.clone()),
                "--count" => options.count = number(),
                "--connections" => options.connections = number().max(1),
                "--rate" => options.rate = Some(value.parse().unwrap_or_else(|_| fail("--rate: a number"))),
                _ => fail(&format!("unknown option {flag}\n{USAGE}")),
            }
        }
        options
    }
}

fn fail(message: &str) -> ! {
    eprintln!("meshroute-bench: {message}");
    std::process::exit(2)
}

// ---------------------------------------------------------------------------------------------
// gen

/// A Service with one HTTP port, 80, and its EndpointSlice.
fn service(out: &mut String, name: &str, ip: &str, upstream: SocketAddr) {
    service_port(out, name, ip, ("http", 80), upstream);
}

/// A Service with one port (its name and number), whose one endpoint is `upstream`.
fn service_port(out: &mut String, name: &str, ip: &str, (port_name, port): (&str, u16), upstream: SocketAddr) {
    let _ = write!(
        out,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: bench\nspec:\n  clusterIP: {ip}\n  ports:\n  - name: {port_name}\n    port: {port}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-a\n  namespace: bench\n  labels:\n    kubernetes.io/service-name: {name}\n\
         addressType: IPv4\nports:\n- name: {port_name}\n  port: {}\nendpoints:\n- addresses: [\"{}\"]\n---\n",
        upstream.port(),
        upstream.ip()
    );
}

/// A Service with one gRPC port, 8080, and its EndpointSlice.
fn grpc_service(out: &mut String, name: &str, ip: &str, upstream: SocketAddr) {
    service_port(out, name, ip, ("grpc", 8080), upstream);
}

/// Service `parent`'s GRPCRoute: one method of its gRPC service to one backend, the rest of the
/// service split 9:1 over two.
fn grpc_route_yaml(out: &mut String, parent: &str, swap: bool) {
    let (one, two) = if swap { ("b2", "b1") } else { ("b1", "b2") };
    let _ = write!(
        out,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: {parent}\n  namespace: bench\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n\
         spec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: {parent}\n    port: 8080\n  rules:\n\
         \x20 - matches:\n    - method:\n        service: bench.{parent}.Api\n        method: Get\n    backendRefs:\n    - name: {one}\n      port: 8080\n\
         \x20 - matches:\n    - method:\n        service: bench.{parent}.Api\n    backendRefs:\n    - name: {one}\n      port: 8080\n      weight: 9\n    - name: {two}\n      port: 8080\n      weight: 1\n---\n"
    );
}

/// `--grpc`: N Services with a GRPCRoute each, and `listeners.txt`, the name a client dials
/// each by.
fn generate_grpc(options: &Options, count: usize, upstream: SocketAddr, out: &std::path::Path) -> Result<(), String> {
    let manifests = out.join("manifests");
    let (mut services, mut routes, mut listeners) = (String::new(), String::new(), String::new());
    grpc_service(&mut services, "b1", &format!("{NET}.255.1"), upstream);
    grpc_service(&mut services, "b2", &format!("{NET}.255.2"), upstream);
    for j in 0..count {
        let name = format!("s{j:05}");
        grpc_service(&mut services, &name, &format!("{NET}.{}.{}", 1 + j / 250, 1 + j % 250), upstream);
        grpc_route_yaml(&mut routes, &name, options.swap_backends);
        let _ = writeln!(listeners, "{name}.bench.svc.cluster.local:8080");
    }
    for (path, text) in [
        (manifests.join("services.yaml"), services),
        (manifests.join("routes.yaml"), routes),
        (out.join("listeners.txt"), listeners),
    ] {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn rule_yaml(out: &mut String, rule: &routeset::Rule, header_modifier: bool) {
    let kind = match rule.path_kind {
        routeset::PathKind::Exact => "Exact",
        routeset::PathKind::Prefix => "PathPrefix",
        routeset::PathKind::Regex => "RegularExpression",
    };
    let _ = write!(out, "  - matches:\n    - path:\n        type: {kind}\n        value: \"{}\"\n", rule.path);
    if let Some(method) = rule.method {
        let _ = writeln!(out, "      method: {method}");
    }
    if let Some((name, value)) = &rule.header {
        let _ = write!(out, "      headers:\n      - name: {name}\n        value: \"{value}\"\n");
    }
    if let Some((name, value)) = &rule.query {
        let _ = write!(out, "      queryParams:\n      - name: {name}\n        value: \"{value}\"\n");
    }
    if header_modifier {
        out.push_str("    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set:\n        - {name: x-bench, value: modified}\n");
    }
    out.push_str("    backendRefs:\n    - name: b1\n      port: 80\n");
    if rule.split {
        out.push_str("    - name: b2\n      port: 80\n");
    }
}

fn route_yaml(out: &mut String, name: &str, parent: &str, rules: &[routeset::Rule], header_modifier: bool) {
    let _ = write!(
        out,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {name}\n  namespace: bench\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n\
         spec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: {parent}\n    port: 80\n  rules:\n"
    );
    for rule in rules {
        rule_yaml(out, rule, header_modifier);
    }
    out.push_str("---\n");
}

fn request_line(out: &mut String, address: &str, probe: &routeset::Probe) {
    let headers: Vec<String> = probe.headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
    let _ = writeln!(out, "{address}\t{}\t{}\t{}", probe.method, probe.path, headers.join("|"));
}

/// A fixed shuffle, so that every run sends the same sequence.
fn shuffle<T>(items: &mut [T]) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

fn generate(options: &Options) -> Result<(), String> {
    let upstream = options.upstream.ok_or("--upstream is needed")?;
    let out = options.out.clone().ok_or("--out is needed")?;
    let manifests = out.join("manifests");
    std::fs::create_dir_all(&manifests).map_err(|e| format!("{}: {e}", manifests.display()))?;
    if options.grpc {
        let count = options.services.ok_or("--grpc needs --services N")?;
        return generate_grpc(options, count, upstream, &out);
    }
    let mut services = String::new();
    let mut routes = String::new();
    let mut requests = String::new();
    service(&mut services, "b1", &format!("{NET}.255.1"), upstream);
    service(&mut services, "b2", &format!("{NET}.255.2"), upstream);
    match (options.rules, options.services) {
        (Some(rules), None) => {
            let address = format!("{NET}.0.1:80");
            service(&mut services, "svc", &format!("{NET}.0.1"), upstream);
            let all: Vec<routeset::Rule> = (0..rules).map(routeset::rule).collect();
            for (chunk, first) in all.chunks(RULES_PER_ROUTE).zip((0..).step_by(RULES_PER_ROUTE)) {
                route_yaml(&mut routes, &format!("r{first:05}"), "svc", chunk, options.header_modifier);
            }
            let mut order: Vec<usize> = (0..rules).collect();
            shuffle(&mut order);
            for i in order {
                request_line(&mut requests, &address, &routeset::probe(&all[i], i));
            }
        }
        (None, Some(count)) => {
            let mut order = Vec::new();
            for j in 0..count {
                let name = format!("s{j:05}");
                let ip = format!("{NET}.{}.{}", 1 + j / 250, 1 + j % 250);
                service(&mut services, &name, &ip, upstream);
                let pair = [routeset::rule(2 * j), routeset::rule(2 * j + 1)];
                route_yaml(&mut routes, &name, &name, &pair, options.header_modifier);
                order.push((format!("{ip}:80"), pair, j));
            }
            shuffle(&mut order);
            for (address, pair, j) in &order {
                for k in 0..GROUP {
                    let i = 2 * j + k % 2;
                    request_line(&mut requests, address, &routeset::probe(&pair[k % 2], i));
                }
            }
        }
        _ => return Err("say --rules N or --services N".into()),
    }
    let write = |name: &str, text: &str| {
        let path = if name.ends_with(".tsv") { out.join(name) } else { manifests.join(name) };
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("services.yaml", &services)?;
    if !options.no_routes {
        write("routes.yaml", &routes)?;
    }
    write("requests.tsv", &requests)
}

// ---------------------------------------------------------------------------------------------
// load

struct Planned {
    address: SocketAddr,
    method: hyper::Method,
    path: String,
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
}

fn read_requests(path: &PathBuf, net: &str) -> Result<Vec<Planned>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut planned = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = || format!("{}:{}: bad request line", path.display(), n + 1);
        let mut fields = line.split('\t');
        let (Some(address), Some(method), Some(target)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad());
        };
        let address = address.strip_prefix(NET).map(|rest| format!("{net}{rest}")).unwrap_or(address.to_owned());
        let mut headers = vec![(hyper::header::HOST, hyper::header::HeaderValue::from_static("svc"))];
        for header in fields.next().unwrap_or("").split('|').filter(|h| !h.is_empty()) {
            let (name, value) = header.split_once(": ").ok_or_else(bad)?;
            headers.push((name.parse().map_err(|_| bad())?, value.parse().map_err(|_| bad())?));
        }
        planned.push(Planned {
            address: address.parse().map_err(|_| bad())?,
            method: method.parse().map_err(|_| bad())?,
            path: target.to_owned(),
            headers,
        });
    }
    if planned.is_empty() {
        return Err(format!("{}: no requests", path.display()));
    }
    Ok(planned)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    other_status: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    first_failure: Option<String>,
}

type Sender = http1::SendRequest<Empty<Bytes>>;

async fn connect(address: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(address).await.map_err(|e| format!("connect {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn send(sender: &mut Sender, request: &Planned) -> Result<u16, String> {
    let mut builder = hyper::Request::builder().method(request.method.clone()).uri(request.path.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let request = builder.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    response.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok(status)
}

fn load(options: &Options) -> Result<(), String> {
    let net = options.net.clone().ok_or("--net is needed")?;
    let planned = Rc::new(read_requests(options.requests.as_ref().ok_or("--requests is needed")?, &net)?);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let (count, rate) = (options.count, options.rate);
    let next_unit = Rc::new(Cell::new(0usize));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let started = Instant::now();
    local.block_on(&runtime, async {
        let mut workers = Vec::new();
        for _ in 0..options.connections {
            let (planned, next_unit, tally) = (Rc::clone(&planned), Rc::clone(&next_unit), Rc::clone(&tally));
            workers.push(tokio::task::spawn_local(async move {
                let mut connection: Option<(SocketAddr, Sender)> = None;
                loop {
                    let unit = next_unit.get();
                    next_unit.set(unit + 1);
                    let first = unit * GROUP;
                    if first >= count {
                        break;
                    }
                    for index in first..(first + GROUP).min(count) {
                        let request = &planned[index % planned.len()];
                        let due = rate.map(|rate| started + Duration::from_secs_f64(index as f64 / rate));
                        if let Some(due) = due {
                            // Tokio's timer ticks in milliseconds: sleep most of the way, then
                            // yield until the request is due.
                            if let Some(early) = due.checked_sub(Duration::from_millis(1)) {
                                tokio::time::sleep_until(early.into()).await;
                            }
                            while Instant::now() < due {
                                tokio::task::yield_now().await;
                            }
                        }
                        let sent = Instant::now();
                        if connection.as_ref().is_none_or(|(address, _)| *address != request.address) {
                            connection = match connect(request.address).await {
                                Ok(sender) => Some((request.address, sender)),
                                Err(error) => {
                                    let mut tally = tally.borrow_mut();
                                    tally.errors += 1;
                                    tally.first_failure.get_or_insert(error);
                                    continue;
                                }
                            };
                        }
                        let Some((_, sender)) = connection.as_mut() else { continue };
                        let result = send(sender, request).await;
                        let latency = due.unwrap_or(sent).elapsed();
                        let mut tally = tally.borrow_mut();
                        match result {
                            Ok(status) if (200..300).contains(&status) => tally.ok += 1,
                            Ok(status) => {
                                tally.other_status += 1;
                                tally.first_failure.get_or_insert(format!("{} {} -> {status}", request.method, request.path));
                            }
                            Err(error) => {
                                tally.errors += 1;
                                tally.first_failure.get_or_insert(error);
                                connection = None;
                            }
                        }
                        tally.latencies_us.push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                }
            }));
        }
        for worker in workers {
            let _ = worker.await;
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut tally = tally.take();
    tally.latencies_us.sort_unstable();
    let percentile = |p: f64| -> u32 {
        let n = tally.latencies_us.len();
        if n == 0 {
            return 0;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        tally.latencies_us.get(rank).copied().unwrap_or(0)
    };
    let answered = tally.ok + tally.other_status;
    println!(
        "{{\"requests\":{},\"ok\":{},\"other_status\":{},\"errors\":{},\"seconds\":{seconds:.4},\"rps\":{:.1},\"p50_us\":{},\"p99_us\":{},\"first_failure\":{}}}",
        answered + tally.errors,
        tally.ok,
        tally.other_status,
        tally.errors,
        answered as f64 / seconds,
        percentile(0.50),
        percentile(0.99),
        tally.first_failure.as_deref().map_or("null".to_owned(), |f| format!("{f:?}")),
    );
    Ok(())
}
