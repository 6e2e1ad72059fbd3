//! `meshroute-echo --name NAME --listen ADDR:PORT`: the echo backend as a process, for the demo
//! and for anyone who wants to poke at a mesh by hand. `ADDR:PORT` may have port 0; the first
//! line on stdout is `listening on ADDR:PORT` with the port actually bound.

use std::io::Write;
use std::process::ExitCode;

use meshroute_e2e::echo;
use tokio::net::TcpListener;

const USAGE: &str = "usage: meshroute-echo --name NAME --listen ADDR:PORT";

fn main() -> ExitCode {
    let (name, listen) = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("meshroute-echo: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshroute-echo: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = TcpListener::bind(&listen).await.map_err(|error| format!("cannot listen on {listen}: {error}"))?;
        let address = listener.local_addr().map_err(|error| error.to_string())?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on {address}").and_then(|()| stdout.flush()).map_err(|error| error.to_string())?;
        echo::serve(name, listener).await.map_err(|error| error.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meshroute-echo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, String), String> {
    let (mut name, mut listen) = (None, None);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--name" => &mut name,
            "--listen" => &mut listen,
            "-h" | "--help" => return Err("help requested".to_owned()),
            other => return Err(format!("unexpected argument {other:?}")),
        };
        *slot = Some(args.next().ok_or_else(|| format!("{arg} needs a value"))?);
    }
    Ok((name.ok_or("--name is required")?, listen.ok_or("--listen is required")?))
}
