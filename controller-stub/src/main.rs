//! `meshroute`: reads Gateway API mesh manifests from a directory, validates them, compiles the
//! route table the filter runs, and publishes it with the rest of Envoy's configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

mod check;
mod compile;
mod decode;
mod diag;
mod envoy;
mod explain;
mod grpc_bootstrap;
mod load;
mod model;
mod pipeline;
mod protocol;
mod publish;
mod reader;
mod resolve;
mod route;
mod route_filters;
mod serve;
mod shadow;
mod status;
mod sync;
mod syntax;
mod typo;
mod watch;
mod xds;
mod yaml;

#[derive(Parser)]
#[command(name = "meshroute", version, about = "Gateway API mesh routing (GAMMA) for stock Envoy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the manifests and print each route's status per parent.
    Check(CheckArgs),
    /// Show how one request would be routed, by the filter's own code.
    Explain(ExplainArgs),
    /// Compile the manifests and print the route table the filter receives.
    Compile(CompileArgs),
    /// Write Envoy's configuration for the manifests, and keep it up to date.
    Sync(SyncArgs),
    /// Serve the routes over xDS (ADS) to proxyless gRPC clients, and keep them up to date.
    Serve(ServeArgs),
    /// Print the xDS bootstrap a proxyless gRPC client reads from GRPC_XDS_BOOTSTRAP.
    GrpcBootstrap(GrpcBootstrapArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// Manifests directory (a mounted ConfigMap works as is).
    pub dir: PathBuf,
    /// Treat unresolved references and shadowed rules as errors.
    #[arg(long)]
    pub strict: bool,
    /// `yaml` or `json`: each route with its Gateway API `status`, diagnostics on stderr.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: check::Output,
}

#[derive(Args)]
pub struct ExplainArgs {
    pub dir: PathBuf,
    /// The Service the request is sent to: NAME, NAME.NAMESPACE, its FQDN or a ClusterIP, with
    /// an optional :PORT (default 80).
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub client: Client,
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Path with an optional query string.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// A request header, 'Name: value'; repeatable.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// A gRPC call, SERVICE/METHOD: a POST to /SERVICE/METHOD with content-type
    /// application/grpc. The answer then carries grpc_status.
    #[arg(long, value_name = "SERVICE/METHOD", conflicts_with_all = ["path", "method"])]
    pub grpc: Option<String>,
}

#[derive(Args)]
pub struct CompileArgs {
    pub dir: PathBuf,
    #[command(flatten)]
    pub client: Client,
    /// What to print: the filter's route table (JSON), or the same routes as Envoy's own
    /// RouteConfiguration (RDS YAML, a virtual host per listener; see `sync --mode native`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    EnvoyRds,
}

/// How Envoy routes: by the meshroute filter and its table, or natively by a RouteConfiguration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Filter,
    Native,
}

#[derive(Args)]
pub struct SyncArgs {
    pub dir: PathBuf,
    /// Directory Envoy reads its configuration from.
    #[arg(long)]
    pub out: PathBuf,
    /// Publish once and exit instead of watching DIR.
    #[arg(long)]
    pub once: bool,
    /// `filter`: the meshroute filter routes (ECDS); `native`: Envoy's own router does, from a
    /// RouteConfiguration (RDS, `rds.json`), with the same bootstrap, listeners and clusters.
    #[arg(long, value_enum, default_value_t = Mode::Filter)]
    pub mode: Mode,
    /// The filter module to publish (filter mode).
    #[arg(long, default_value = "target/wasm32-wasip1/release/meshroute_filter.wasm")]
    pub wasm: PathBuf,
    /// Port of Envoy's admin interface, on 127.0.0.1.
    #[arg(long, default_value_t = 9901)]
    pub admin_port: u16,
    /// Write only a bootstrap (OUT/envoy.yaml) whose listeners, clusters and filter come over
    /// ADS from `meshroute serve` at this address (run it with --wasm), then exit: after that,
    /// route changes reach Envoy through serve alone. Loopback only, unless --xds-allow-remote.
    #[arg(long, conflicts_with = "mode")]
    pub xds: Option<String>,
    /// Name a non-loopback --xds address: xDS here has no authentication or TLS.
    #[arg(long, requires = "xds")]
    pub xds_allow_remote: bool,
    /// Count no requests: the filter skips its counter (one host call per request), native
    /// mode its stats access loggers.
    #[arg(long)]
    pub no_metrics: bool,
    #[command(flatten)]
    pub client: Client,
}

/// Whose view of the mesh: a sidecar routes for the application in its pod, so the table is
/// that client's (GEP-1294: consumer routes apply only to clients in their own namespace).
#[derive(Args)]
pub struct Client {
    /// Namespace of the client (the pod's, as the downward API gives it in POD_NAMESPACE). Its
    /// consumer routes replace the producer routes of the Services they attach to; a short
    /// Service name resolves there.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
}

#[derive(Args)]
pub struct ServeArgs {
    pub dir: PathBuf,
    /// Address to serve xDS on. Loopback only, unless --xds-allow-remote.
    #[arg(long, default_value = serve::DEFAULT_XDS)]
    pub xds: String,
    /// Serve xDS on a non-loopback address. Anyone who reaches it can read every route and
    /// endpoint: xDS here has no authentication.
    #[arg(long)]
    pub xds_allow_remote: bool,
    /// The filter module for Envoy nodes (`sync --xds`), served on the xDS port at
    /// /modules/meshroute_filter-HASH.wasm and named by the filter configuration with its
    /// sha256. Read again on every rebuild. Without it, Envoy nodes get no filter configuration.
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// Where to write each route's Gateway API status, as `sync` does: OUT/status/.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct GrpcBootstrapArgs {
    /// Address of `meshroute serve`, as the client reaches it.
    #[arg(long, default_value = serve::DEFAULT_XDS)]
    pub xds: String,
    /// The client's namespace: its short Service names and consumer routes. Default:
    /// $POD_NAMESPACE, else `default`.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The client's xDS node id. Default: built from the namespace and the host name.
    #[arg(long)]
    pub node_id: Option<String>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => run_check(&args),
        Command::Explain(args) => run_explain(&args),
        Command::Compile(args) => run_compile(&args),
        Command::Sync(args) => sync::run(&args),
        Command::Serve(args) => serve::run(&args, Arc::new(serve::resources)),
        Command::GrpcBootstrap(args) => grpc_bootstrap::run(&args),
    }
}

/// Exit 0 when valid (and, with `--strict`, without warnings), 1 otherwise.
fn run_check(args: &CheckArgs) -> ExitCode {
    let report = check::check(&args.dir, args.strict, args.output);
    print!("{}", report.text);
    eprint!("{}", report.stderr);
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Exit 1 when the manifests directory cannot be read, 2 when the request cannot be explained.
/// Resources that do not validate are left out, as `sync` would leave them out; their errors go
/// to stderr.
fn run_explain(args: &ExplainArgs) -> ExitCode {
    let build = match pipeline::build(&args.dir, &args.client.namespace) {
        Ok(build) => build,
        Err(errors) => {
            eprint!("{}", check::errors_text(&errors));
            return ExitCode::FAILURE;
        }
    };
    for error in build.errors() {
        eprintln!("{error} (left out)");
    }
    let query = explain::Query {
        to: &args.to,
        namespace: &args.client.namespace,
        method: &args.method,
        path: &args.path,
        headers: &args.headers,
        grpc: args.grpc.as_deref(),
    };
    match explain::explain(&build, &query) {
        Ok(answer) => match serde_json::to_string(&answer) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meshroute explain: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("meshroute explain: {e}");
            ExitCode::from(2)
        }
    }
}

/// The route table as the filter receives it, pretty-printed; or Envoy's RouteConfiguration.
/// What does not validate is left out, as `sync` leaves it out; exit 1 if anything was.
fn run_compile(args: &CompileArgs) -> ExitCode {
    match pipeline::build(&args.dir, &args.client.namespace) {
        Ok(build) => match render_compiled(&build, args.format) {
            Ok(json) => {
                println!("{json}");
                for d in build.diagnostics.iter().filter(|d| d.severity != diag::Severity::Note) {
                    eprintln!("{d}");
                }
                if build.is_valid() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("meshroute compile: {e}");
                ExitCode::FAILURE
            }
        },
        Err(errors) => {
            eprint!("{}", check::errors_text(&errors));
            ExitCode::FAILURE
        }
    }
}

fn render_compiled(build: &pipeline::Build, format: Format) -> Result<String, String> {
    match format {
        Format::Table => serde_json::to_string_pretty(&build.table).map_err(|e| e.to_string()),
        Format::EnvoyRds => {
            let config = envoy::native::route_configuration(&build.manifests, &build.table).map_err(|e| e.to_string())?;
            envoy::yaml::to_yaml("The manifests' routes as Envoy's own RouteConfiguration (RDS).", &config)
                .map(|text| text.trim_end().to_owned())
                .map_err(|e| e.to_string())
        }
    }
}
