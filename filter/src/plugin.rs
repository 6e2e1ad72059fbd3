//! The proxy-wasm glue: read the request in as few host calls as possible, ask the core
//! ([`crate::decision::decide`]), apply its decision: one write for a plain forward, one more
//! per change the matched rule's filters make.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use log::{error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, GrpcStatusCode, LogLevel};

use crate::choice::Rng;
use crate::counters::{self, Counters};
use crate::decision::{decide, mirror_choice, Decision, Forward, RequestChanges, ResponseChanges};
use crate::document::is_shared_table_config;
use crate::header_modifier::{HeaderEdit, HeaderModifier};
use crate::metrics::{self, Series};
use crate::mirror::{MirrorChoice, MIRROR_HEADER};
use crate::policy::ROUTER_CONTROL_HEADERS;
use crate::reply::{GrpcStatus, LocalReply};
use crate::request::Request;
use crate::shared_table;
use crate::table::{Destination, DestinationSource, RouteTable, TableError};
use crate::{DESTINATION_HEADER, SELECTION_HEADER};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|panic| error!("panic, the VM will be reloaded: {panic}")));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { loaded: None, shared: false, rng: Rc::new(Cell::new(Rng::new(seed()))) })
    });
}}

/// One seed per VM from the host's entropy; a fixed seed only if the host offers none.
fn seed() -> u64 {
    getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15)
}

thread_local! {
    /// The last table this VM compiled, with the configuration it came from.
    static LAST_TABLE: RefCell<Option<(Vec<u8>, Rc<Loaded>)>> = const { RefCell::new(None) };
}

/// A compiled table and the counters of its series.
struct Loaded {
    table: RouteTable,
    counters: Counters,
}

struct Root {
    /// This instance's table; for a shared instance, the VM's when it configured.
    loaded: Option<Rc<Loaded>>,
    /// Whether this instance holds no table of its own
    /// ([`crate::document::SHARED_TABLE_CONFIG`]): its requests take the table the VM holds
    /// when they start.
    shared: bool,
    rng: Rc<Cell<Rng>>,
}

impl Context for Root {}

impl RootContext for Root {
    /// Validates the whole table; returning false makes Envoy refuse this configuration and
    /// keep the previous one. Every listener's instance of the filter receives the same table:
    /// it is compiled once per VM and shared. A shared instance
    /// ([`crate::document::SHARED_TABLE_CONFIG`]) takes the VM's table, else the one in shared
    /// data, else none yet (its requests pass through until a holder's configuration brings one).
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = self.get_plugin_configuration() else {
            error!("route table refused: the plugin configuration is empty");
            return false;
        };
        if is_shared_table_config(&config) {
            self.shared = true;
            self.loaded = vm_table().or_else(|| load(shared_table::published()?).ok());
            info!(
                "route table: shared with this VM's other listeners ({})",
                if self.loaded.is_some() { "loaded" } else { "none yet" }
            );
            return true;
        }
        match load(config) {
            Ok(loaded) => {
                self.loaded = Some(loaded);
                true
            }
            Err(e) => {
                error!("route table refused: {e}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let loaded = if self.shared { vm_table().or_else(|| self.loaded.clone()) } else { self.loaded.clone() };
        Some(Box::new(Exchange { loaded, rng: Rc::clone(&self.rng), response_headers: Vec::new() }))
    }
}

/// The table this VM compiled last.
fn vm_table() -> Option<Rc<Loaded>> {
    LAST_TABLE.with(|last| last.borrow().as_ref().map(|(_, loaded)| Rc::clone(loaded)))
}

/// Compiles a table document, unless it is the one this VM compiled last, and makes it the
/// VM's table (and the published one, for VMs to come).
fn load(config: Vec<u8>) -> Result<Rc<Loaded>, TableError> {
    let cached =
        LAST_TABLE.with(|last| last.borrow().as_ref().filter(|(bytes, _)| *bytes == config).map(|(_, loaded)| Rc::clone(loaded)));
    if let Some(loaded) = cached {
        return Ok(loaded);
    }
    let started = hostcalls::get_current_time().ok();
    let table = RouteTable::from_json(&config)?;
    let elapsed = started
        .and_then(|start| hostcalls::get_current_time().ok()?.duration_since(start).ok())
        .map_or_else(String::new, |d| format!(" in {:.1} ms", d.as_secs_f64() * 1000.0));
    let version = metrics::table_version(&config);
    info!("route table loaded: version {version}, {} frontend ports{elapsed}", table.frontends().len());
    counters::record_table_version(version);
    shared_table::publish(&config, version);
    let loaded = Rc::new(Loaded { table, counters: Counters::default() });
    LAST_TABLE.with(|last| *last.borrow_mut() = Some((config, Rc::clone(&loaded))));
    Ok(loaded)
}

/// One request/response exchange.
struct Exchange {
    loaded: Option<Rc<Loaded>>,
    rng: Rc<Cell<Rng>>,
    /// The ResponseHeaderModifiers of the rule and backendRef the request went to, in order;
    /// empty (and unallocated) for the many routes without one.
    response_headers: Vec<HeaderModifier>,
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    /// Host calls are what a wasm filter costs: a request to a Service port without routes
    /// costs two (its destination, and the selection header: set to the port's cluster, or
    /// looked up, and removed only if a client sent one); a routed request costs two plus what
    /// its frontend's matches read — nothing for a rule without matches, `:path` and `:method`
    /// one call each, every header in one call when headers are matched, none of these when
    /// the destination came with every header ([`DestinationSource::AllHeaders`]); a local
    /// reply reads `content-type` too (one call, unless every header was read). The
    /// matched rule's filters cost one call per header they change, per rewritten `:path` or
    /// `:authority`, and per router control header of its timeouts and retries; in a table
    /// with mirrors, a forwarded request costs one more (the mirror header, set or removed).
    /// Counting costs one call per request to a port with routes (a few more, once, per new series).
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(loaded) = self.loaded.clone() else { return self.pass_through() };
        let table = &loaded.table;
        let source = table.destination_source();
        let mut headers: Vec<(String, String)> =
            if source == DestinationSource::AllHeaders { self.request_headers() } else { Vec::new() };
        let own: Option<Vec<u8>> =
            if source == DestinationSource::Header { self.get_http_request_header_bytes(DESTINATION_HEADER) } else { None };
        let written = match source {
            DestinationSource::AllHeaders => header_among(&headers, DESTINATION_HEADER),
            DestinationSource::Header => own.as_deref().and_then(|d| std::str::from_utf8(d).ok()),
            DestinationSource::Property => None,
        };
        // Also when the table says the listener writes the header and this one did not.
        let property = if written.is_none() { self.get_property(vec!["destination", "address"]) } else { None };
        let destination = written.or_else(|| property.as_deref().and_then(|d| std::str::from_utf8(d).ok())).unwrap_or_default();
        let frontend = match table.destination(destination) {
            Destination::Frontend(frontend) => frontend,
            Destination::PassThrough(cluster) => return self.pass_through_to(table, cluster),
        };

        let inputs = frontend.inputs();
        let all_read = source == DestinationSource::AllHeaders || inputs.headers;
        if all_read && headers.is_empty() {
            headers = self.request_headers();
        }
        // `:method` and `:path` are borrowed from the headers when every header was read; else
        // each is read on its own, only when a match needs it.
        let read = |needed: bool, name: &str| -> Option<String> {
            (needed && !all_read).then(|| self.get_http_request_header_bytes(name).map(utf8_or_lossy)).flatten()
        };
        let (method, path) = (read(inputs.method, ":method"), read(inputs.path, ":path"));
        let request = Request {
            method: field(&headers, &method, ":method"),
            path_and_query: field(&headers, &path, ":path"),
            headers: &headers,
        };
        let mut rng = self.rng.get();
        let draw = rng.next_u64();
        self.rng.set(rng);
        // Read only for a local reply; from the headers when they were read already.
        let header = |name: &str| match header_among(&headers, name) {
            Some(value) => Some(value.as_bytes().to_vec()),
            None if all_read => None,
            None => self.get_http_request_header_bytes(name),
        };
        let decision = decide(table, Some(frontend), &request, draw, header);
        if table.metrics() {
            if let Some(series) = Series::of(frontend, &decision) {
                loaded.counters.count(&series);
            }
        }
        match decision {
            Decision::PassThrough => self.pass_through(),
            // Every change named, so that a new one fails to compile until it is applied here.
            Decision::Forward(Forward {
                cluster,
                request: RequestChanges { headers: request_headers, path: new_path, authority, policy, mirror },
                response: ResponseChanges { headers: response_headers },
                ..
            }) => {
                if let Some(policy) = policy {
                    for name in ROUTER_CONTROL_HEADERS {
                        self.set_http_request_header(name, None);
                    }
                    for (name, value) in policy.router_headers() {
                        self.set_http_request_header(name, Some(&value));
                    }
                }
                if let Some(path) = new_path {
                    self.set_http_request_header(":path", Some(&path));
                }
                if let Some(authority) = authority {
                    self.set_http_request_header(":authority", Some(authority));
                }
                for edit in request_headers.edits() {
                    match edit {
                        HeaderEdit::Remove(name) => self.set_http_request_header(name, None),
                        HeaderEdit::Set(name, value) => self.set_http_request_header(name, Some(value)),
                        HeaderEdit::Add(name, value) => self.add_http_request_header(name, value),
                    }
                }
                self.apply_mirror(mirror);
                self.response_headers = response_headers.rule.into_iter().chain(response_headers.backend).cloned().collect();
                // Replaces any copy the client sent.
                self.set_http_request_header(SELECTION_HEADER, Some(cluster));
                Action::Continue
            }
            Decision::LocalReply { reply, .. } => send_local_reply(&reply),
        }
    }

    /// The ResponseHeaderModifiers of the rule and backendRef the request went to; no host call
    /// for a response without any.
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for edit in self.response_headers.iter().flat_map(HeaderModifier::edits) {
            match edit {
                HeaderEdit::Remove(name) => self.set_http_response_header(name, None),
                HeaderEdit::Set(name, value) => self.set_http_response_header(name, Some(value)),
                HeaderEdit::Add(name, value) => self.add_http_response_header(name, value),
            }
        }
        Action::Continue
    }
}

fn grpc_status_code(status: GrpcStatus) -> GrpcStatusCode {
    match status {
        GrpcStatus::Unknown => GrpcStatusCode::Unknown,
        GrpcStatus::PermissionDenied => GrpcStatusCode::PermissionDenied,
        GrpcStatus::Unimplemented => GrpcStatusCode::Unimplemented,
        GrpcStatus::Internal => GrpcStatusCode::Internal,
        GrpcStatus::Unavailable => GrpcStatusCode::Unavailable,
        GrpcStatus::Unauthenticated => GrpcStatusCode::Unauthenticated,
    }
}

/// Sends the core's answer as it is: an HTTP status, or a trailers-only gRPC status.
fn send_local_reply(reply: &LocalReply) -> Action {
    let sent = match reply.grpc_status {
        Some(status) => {
            let metadata = reply.headers.iter().map(|(name, value)| (name.as_ref(), value.as_bytes())).collect();
            hostcalls::send_grpc_response(grpc_status_code(status), Some(&reply.body), metadata)
        }
        None => {
            let headers = reply.headers.iter().map(|(name, value)| (name.as_ref(), value.as_ref())).collect();
            hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()))
        }
    };
    if let Err(status) = sent {
        error!("local reply {} not sent: {status:?}", reply.status);
    }
    Action::Pause
}

/// Request field `name`: its value among the headers read, else the copy read on its own, else
/// empty (not read: no match needs it).
fn field<'a>(headers: &'a [(String, String)], own: &'a Option<String>, name: &str) -> &'a str {
    header_among(headers, name).or(own.as_deref()).unwrap_or_default()
}

/// The first value of header `name` (lower case, as Envoy hands names over) among those read.
fn header_among<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
}

/// Header values are almost always UTF-8: keep the bytes then, replace what is not otherwise.
fn utf8_or_lossy(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Exchange {
    /// Every request header, in one host call.
    fn request_headers(&self) -> Vec<(String, String)> {
        self.get_http_request_headers_bytes().into_iter().map(|(name, value)| (name, utf8_or_lossy(value))).collect()
    }

    /// Leaves routing to Envoy's default route; a client's selection header never survives.
    /// Any change to the request headers, a removal too, makes Envoy drop the route it chose
    /// and match the request again, so the header is removed only when a client sent one:
    /// looking is a host call that returns nothing when it is absent, cheaper than that match.
    fn pass_through(&self) -> Action {
        if self.get_http_request_header_bytes(SELECTION_HEADER).is_some() {
            self.set_http_request_header(SELECTION_HEADER, None);
        }
        Action::Continue
    }

    /// A request to a Service port without routes: on to the port's own cluster when the table
    /// names it (one listener serves every Service address), else to Envoy's default route.
    fn pass_through_to(&self, table: &RouteTable, cluster: Option<&str>) -> Action {
        let Some(cluster) = cluster else { return self.pass_through() };
        self.apply_mirror(mirror_choice(table, None));
        self.set_http_request_header(SELECTION_HEADER, Some(cluster));
        Action::Continue
    }

    fn apply_mirror(&self, mirror: MirrorChoice<'_>) {
        match mirror {
            MirrorChoice::None => {}
            MirrorChoice::Clear => self.set_http_request_header(MIRROR_HEADER, None),
            MirrorChoice::Set(set) => self.set_http_request_header(MIRROR_HEADER, Some(set.header_value())),
        }
    }
}
