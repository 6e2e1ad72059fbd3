//! `meshroute-grpc-echo`: the gRPC echo backend (`echo_basic.grpcecho.GrpcEcho`) and a gRPC
//! client for it, for the demo and for anyone who wants to call a mesh by hand.
//!
//! `serve --name NAME --listen ADDR:PORT` serves cleartext HTTP/2 as backend NAME; `ADDR:PORT`
//! may have port 0, and the first line on stdout is `listening on ADDR:PORT` with the port
//! actually bound.
//!
//! `call --to HOST:PORT [--metadata NAME=VALUE]... METHOD [MESSAGE]...` makes one call over
//! cleartext HTTP/2 and prints each answer as one line of JSON,
//! `{"backend":..,"method":..,"message":..}`. METHOD is `Echo`, `EchoTwo`, `EchoThree` or
//! `EchoStream` of the service, or a full `/SERVICE/METHOD`. A unary call sends one MESSAGE
//! (default `hello`); `EchoStream` sends each MESSAGE in turn and prints an answer per message.
//! A gRPC error is printed on stderr as its code and message, and the exit status is 1.

use std::io::Write;
use std::process::ExitCode;

use meshroute_e2e::echo::BACKEND_HEADER;
use meshroute_e2e::grpc::{self, EchoResponse};
use serde::Serialize;
use tokio::net::TcpListener;
use tonic::Status;

const USAGE: &str = "usage: meshroute-grpc-echo serve --name NAME --listen ADDR:PORT
       meshroute-grpc-echo call --to HOST:PORT [--metadata NAME=VALUE]... METHOD [MESSAGE]...
         METHOD: Echo, EchoTwo, EchoThree, EchoStream (of echo_basic.grpcecho.GrpcEcho) or /SERVICE/METHOD
         example: meshroute-grpc-echo call --to 127.0.10.1:8080 Echo hello";

enum Command {
    Serve { name: String, listen: String },
    Call(Call),
}

struct Call {
    to: String,
    metadata: Vec<(String, String)>,
    method: String,
    messages: Vec<String>,
}

impl Call {
    fn is_stream(&self) -> bool {
        self.method.rsplit('/').next() == Some("EchoStream")
    }
}

fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("meshroute-grpc-echo: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshroute-grpc-echo: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Serve { name, listen } => runtime.block_on(serve(name, listen)),
        Command::Call(call) => runtime.block_on(make_call(call)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meshroute-grpc-echo: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(name: String, listen: String) -> Result<(), String> {
    let listener = TcpListener::bind(&listen).await.map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {address}").and_then(|()| stdout.flush()).map_err(|error| error.to_string())?;
    grpc::serve(name, listener).await.map_err(|error| error.to_string())
}

/// One answer as printed.
#[derive(Serialize)]
struct Printed<'a> {
    backend: &'a str,
    method: &'a str,
    message: &'a str,
}

async fn make_call(call: Call) -> Result<(), String> {
    let channel = grpc::channel(&call.to)?;
    let answers = if call.is_stream() {
        let messages: Vec<&str> = call.messages.iter().map(String::as_str).collect();
        grpc::ping_pong(channel, &call.method, &messages, &call.metadata).await.map(|reply| reply.answers)
    } else {
        let message = call.messages.first().map_or("hello", String::as_str);
        grpc::unary(channel, &call.method, message, &call.metadata).await.map(|response| vec![response.into_inner()])
    };
    let answers = answers.map_err(|status| describe_status(&call, &status))?;
    let mut stdout = std::io::stdout();
    for EchoResponse { backend, method, message, .. } in &answers {
        let line = serde_json::to_string(&Printed { backend, method, message }).map_err(|error| error.to_string())?;
        writeln!(stdout, "{line}").map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// `EchoThree to 127.0.10.1:8080: grpc-status 12 (Unimplemented): ...`, and which backend gave
/// the status if one did (otherwise the proxy did).
fn describe_status(call: &Call, status: &Status) -> String {
    let mut text =
        format!("{} to {}: grpc-status {} ({:?})", grpc::method_path(&call.method), call.to, status.code() as i32, status.code());
    if !status.message().is_empty() {
        text.push_str(&format!(": {}", status.message()));
    }
    if let Some(backend) = grpc::header_text(status.metadata().as_ref(), BACKEND_HEADER) {
        text.push_str(&format!(" (from backend {backend})"));
    }
    text
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    match args.next().as_deref() {
        Some("serve") => {
            let (mut name, mut listen) = (None, None);
            while let Some(arg) = args.next() {
                let slot = match arg.as_str() {
                    "--name" => &mut name,
                    "--listen" => &mut listen,
                    "-h" | "--help" => return Err("help requested".to_owned()),
                    other => return Err(format!("serve: unexpected argument {other:?}")),
                };
                *slot = Some(args.next().ok_or_else(|| format!("{arg} needs a value"))?);
            }
            Ok(Command::Serve {
                name: name.ok_or("serve: --name is required")?,
                listen: listen.ok_or("serve: --listen is required")?,
            })
        }
        Some("call") => {
            let (mut to, mut metadata, mut positional) = (None, Vec::new(), Vec::new());
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--to" => to = Some(args.next().ok_or("--to needs HOST:PORT")?),
                    "--metadata" => {
                        let pair = args.next().ok_or("--metadata needs NAME=VALUE")?;
                        let (name, value) =
                            pair.split_once('=').ok_or_else(|| format!("--metadata {pair:?}: expected NAME=VALUE"))?;
                        metadata.push((name.to_owned(), value.to_owned()));
                    }
                    "-h" | "--help" => return Err("help requested".to_owned()),
                    other if other.starts_with("--") => return Err(format!("call: unknown option {other:?}")),
                    _ => positional.push(arg),
                }
            }
            let mut positional = positional.into_iter();
            let method = positional.next().ok_or("call: METHOD is required")?;
            let call =
                Call { to: to.ok_or("call: --to HOST:PORT is required")?, metadata, method, messages: positional.collect() };
            if !call.is_stream() && call.messages.len() > 1 {
                return Err(format!("call: {} is unary and takes one MESSAGE", call.method));
            }
            Ok(Command::Call(call))
        }
        Some("-h" | "--help") => Err("help requested".to_owned()),
        Some(other) => Err(format!("unknown command {other:?}; expected serve or call")),
        None => Err("a command is required".to_owned()),
    }
}
