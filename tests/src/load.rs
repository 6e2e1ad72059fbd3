//! A steady load through Envoy while something changes under it: a fixed number of long-lived
//! connections (HTTP/1.1 and cleartext HTTP/2 with prior knowledge), each sending one request
//! at a time at a fixed pace, bounded by a request count and a duration. Every response is
//! recorded: when it was sent and answered, its status, which backend answered
//! (`x-echo-backend`) and over which protocol.
//!
//! A connection that the server closed while idle is reopened before the next request, as any
//! pooling client does; a request that was sent and got no answer is recorded as a failure.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper::Uri;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::echo::BACKEND_HEADER;

/// The response header in which the filter reports its version, when it does.
pub const VERSION_HEADER: &str = "x-meshroute-version";

/// No answer within this long is a failure, not a measurement.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Http1,
    H2c,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::H2c => "h2c",
        })
    }
}

/// One kind of request the load sends: `GET path` to a Service address.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: SocketAddr,
    pub path: String,
    /// The Host header for HTTP/1.1 (HTTP/2 sends the address as `:authority`).
    pub host: String,
}

/// What to send, how fast and for how long.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Sent in turn, each connection starting at another one.
    pub targets: Vec<Target>,
    /// Connections in all; the first half speak HTTP/1.1, the rest h2c.
    pub connections: usize,
    /// Requests per second over all connections.
    pub rate: u32,
    /// The load ends after this long or after `max_requests`, whichever comes first.
    pub duration: Duration,
    pub max_requests: usize,
}

/// One request and what came of it. Times are from the start of the load.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Index into [`LoadSpec::targets`].
    pub target: usize,
    pub connection: usize,
    pub protocol: Protocol,
    pub sent: Duration,
    pub done: Duration,
    /// The HTTP status, or the error that stood in for an answer.
    pub outcome: Result<u16, String>,
    /// `x-echo-backend`: the backend that answered.
    pub backend: Option<String>,
    /// `x-meshroute-version`, if the filter reports one.
    pub version: Option<String>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Ok(status) if (200..300).contains(&status))
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request to target {} on connection {} ({}), sent at {:?}, done at {:?}: ",
            self.target, self.connection, self.protocol, self.sent, self.done
        )?;
        match &self.outcome {
            Ok(status) => write!(f, "{status} from {}", self.backend.as_deref().unwrap_or("no backend")),
            Err(error) => write!(f, "no answer: {error}"),
        }
    }
}

/// A load that is running; [`Load::finish`] waits for its end and returns what it recorded.
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    connections: Vec<JoinHandle<(Vec<Sample>, usize)>>,
}

impl Load {
    /// Starts the load on `runtime`; it runs while the caller goes on.
    pub fn start(runtime: &Runtime, spec: &LoadSpec) -> Load {
        assert!(spec.connections > 0 && spec.rate > 0 && !spec.targets.is_empty(), "an empty load: {spec:?}");
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let per_connection = spec.max_requests.div_ceil(spec.connections);
        let interval = Duration::from_secs_f64(spec.connections as f64 / f64::from(spec.rate));
        let connections = (0..spec.connections)
            .map(|connection| {
                let protocol = if connection < spec.connections / 2 { Protocol::Http1 } else { Protocol::H2c };
                let worker = Worker {
                    connection,
                    protocol,
                    targets: spec.targets.clone(),
                    started,
                    interval,
                    end: started + spec.duration,
                    max_requests: per_connection,
                    stop: Arc::clone(&stop),
                };
                runtime.spawn(worker.run())
            })
            .collect();
        Load { started, stop, connections }
    }

    /// When the load started; sample times count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Time since the start of the load.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sending and waits for the answers in flight.
    pub fn stop(self, runtime: &Runtime) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        self.finish(runtime)
    }

    /// Waits until the load has run its course.
    pub fn finish(self, runtime: &Runtime) -> LoadReport {
        let mut samples = Vec::new();
        let mut reconnects = 0;
        for handle in self.connections {
            match runtime.block_on(handle) {
                Ok((recorded, reopened)) => {
                    samples.extend(recorded);
                    reconnects += reopened;
                }
                Err(error) => panic!("a load connection's task failed: {error}"),
            }
        }
        samples.sort_by_key(|sample| sample.sent);
        LoadReport { samples, reconnects, elapsed: self.started.elapsed() }
    }
}

/// Everything a load recorded, in the order the requests were sent.
pub struct LoadReport {
    pub samples: Vec<Sample>,
    /// Connections reopened because the server closed them while idle.
    pub reconnects: usize,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|sample| !sample.ok()).collect()
    }

    /// Requests per protocol.
    pub fn by_protocol(&self) -> BTreeMap<Protocol, usize> {
        let mut counts = BTreeMap::new();
        for sample in &self.samples {
            *counts.entry(sample.protocol).or_default() += 1;
        }
        counts
    }

    /// Answers per backend (`none` when no backend answered).
    pub fn by_backend(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for sample in &self.samples {
            *counts.entry(sample.backend.clone().unwrap_or_else(|| "none".to_owned())).or_default() += 1;
        }
        counts
    }

    /// Panics, listing the first few, unless every request got a 2xx answer.
    #[track_caller]
    pub fn assert_all_ok(&self) {
        let failures = self.failures();
        if !failures.is_empty() {
            let shown: Vec<String> = failures.iter().take(10).map(ToString::to_string).collect();
            panic!("{} of {} requests failed; the first:\n{}", failures.len(), self.samples.len(), shown.join("\n"));
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        write!(
            f,
            "{} requests in {seconds:.1} s ({:.0}/s), {} failed; by protocol {:?}; by backend {:?}; {} idle connections reopened",
            self.samples.len(),
            self.samples.len() as f64 / seconds.max(f64::MIN_POSITIVE),
            self.failures().len(),
            self.by_protocol(),
            self.by_backend(),
            self.reconnects
        )
    }
}

struct Worker {
    connection: usize,
    protocol: Protocol,
    targets: Vec<Target>,
    started: Instant,
    interval: Duration,
    end: Instant,
    max_requests: usize,
    stop: Arc<AtomicBool>,
}

enum Sender {
    Http1(http1::SendRequest<Empty<Bytes>>),
    H2c(http2::SendRequest<Empty<Bytes>>),
}

impl Worker {
    async fn run(self) -> (Vec<Sample>, usize) {
        let mut samples = Vec::with_capacity(self.max_requests);
        let mut reconnects = 0;
        let mut sender: Option<Sender> = None;
        // Connections start spread over one interval, not all at once.
        let offset = self.interval.mul_f64(self.connection as f64 / 8.0);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, self.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for round in 0..self.max_requests {
            ticks.tick().await;
            if self.stop.load(Ordering::SeqCst) || Instant::now() >= self.end {
                break;
            }
            let target = (self.connection + round) % self.targets.len();
            // An idle connection the server closed is reopened, not counted as a failure.
            let ready = match sender.as_mut() {
                Some(Sender::Http1(send)) => send.ready().await.is_ok(),
                Some(Sender::H2c(send)) => send.ready().await.is_ok(),
                None => false,
            };
            if !ready {
                if sender.is_some() {
                    reconnects += 1;
                }
                sender = None;
            }
            let sent = self.started.elapsed();
            let (outcome, backend, version) = match sender.as_mut() {
                Some(send) => self.send(send, &self.targets[target]).await,
                None => match self.connect(&self.targets[target]).await {
                    Ok(mut fresh) => {
                        let answer = self.send(&mut fresh, &self.targets[target]).await;
                        sender = Some(fresh);
                        answer
                    }
                    Err(error) => (Err(error), None, None),
                },
            };
            if outcome.is_err() {
                sender = None;
            }
            let done = self.started.elapsed();
            samples.push(Sample {
                target,
                connection: self.connection,
                protocol: self.protocol,
                sent,
                done,
                outcome,
                backend,
                version,
            });
        }
        (samples, reconnects)
    }

    async fn connect(&self, target: &Target) -> Result<Sender, String> {
        let stream = TcpStream::connect(target.address).await.map_err(|error| format!("connect: {error}"))?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        match self.protocol {
            Protocol::Http1 => {
                let (send, connection) = http1::handshake(io).await.map_err(|error| format!("handshake: {error}"))?;
                tokio::spawn(connection);
                Ok(Sender::Http1(send))
            }
            Protocol::H2c => {
                let (send, connection) =
                    http2::handshake(TokioExecutor::new(), io).await.map_err(|error| format!("handshake: {error}"))?;
                tokio::spawn(connection);
                Ok(Sender::H2c(send))
            }
        }
    }

    async fn send(&self, sender: &mut Sender, target: &Target) -> (Result<u16, String>, Option<String>, Option<String>) {
        let exchange = async {
            let response = match sender {
                Sender::Http1(send) => {
                    let uri: Uri = target.path.parse().map_err(|error| format!("path {:?}: {error}", target.path))?;
                    let request = hyper::Request::get(uri)
                        .header("host", &target.host)
                        .body(Empty::new())
                        .map_err(|error| error.to_string())?;
                    send.send_request(request).await
                }
                Sender::H2c(send) => {
                    let uri: Uri = format!("http://{}{}", target.address, target.path)
                        .parse()
                        .map_err(|error| format!("path {:?}: {error}", target.path))?;
                    let request = hyper::Request::get(uri).body(Empty::new()).map_err(|error| error.to_string())?;
                    send.send_request(request).await
                }
            }
            .map_err(|error| format!("{error}"))?;
            let status = response.status().as_u16();
            let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
            let (backend, version) = (header(BACKEND_HEADER), header(VERSION_HEADER));
            response.into_body().collect().await.map_err(|error| format!("reading the body: {error}"))?;
            Ok::<_, String>((status, backend, version))
        };
        match tokio::time::timeout(ANSWER_DEADLINE, exchange).await {
            Ok(Ok((status, backend, version))) => (Ok(status), backend, version),
            Ok(Err(error)) => (Err(error), None, None),
            Err(_) => (Err(format!("no answer within {ANSWER_DEADLINE:?}")), None, None),
        }
    }
}
