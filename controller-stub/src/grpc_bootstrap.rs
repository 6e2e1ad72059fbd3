//! `meshroute grpc-bootstrap`: the file a proxyless gRPC client reads from `GRPC_XDS_BOOTSTRAP`
//! to find its control plane (gRFC A27; grpc/grpc `doc/grpc_xds_bootstrap_format.md`).

use std::process::ExitCode;

use serde_json::{json, Value};

use crate::xds::ads::{DEFAULT_NAMESPACE, NAMESPACE_KEY};
use crate::GrpcBootstrapArgs;

/// The bootstrap: one xDS server, plaintext (`insecure` channel creds), xDS v3; the node's id
/// and, in its metadata, the namespace that selects the client's routes (as Istio's proxyless
/// bootstrap names it).
pub fn bootstrap(server_uri: &str, namespace: &str, node_id: &str) -> Value {
    json!({
        "xds_servers": [{
            "server_uri": server_uri,
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": node_id,
            "metadata": {NAMESPACE_KEY: namespace},
        },
    })
}

/// The namespace and node id: the ones given, else the namespace from `POD_NAMESPACE` (the
/// downward API's usual name) or [`DEFAULT_NAMESPACE`], and an id naming the namespace and the
/// host, unique per pod as the xDS server's logs need.
pub fn identity(
    namespace: Option<&str>,
    node_id: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    hostname: Option<String>,
) -> (String, String) {
    let namespace = namespace
        .map(str::to_owned)
        .or_else(|| env("POD_NAMESPACE"))
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let node_id = match node_id {
        Some(id) => id.to_owned(),
        None => format!("meshroute-grpc~{namespace}~{}", hostname.as_deref().unwrap_or("unknown-host")),
    };
    (namespace, node_id)
}

/// The kernel's host name (a pod's name in Kubernetes), else `$HOSTNAME`.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

pub fn run(args: &GrpcBootstrapArgs) -> ExitCode {
    if args.xds.trim().is_empty() {
        eprintln!("meshroute grpc-bootstrap: --xds is empty: give the address of `meshroute serve`, e.g. 127.0.0.1:15010");
        return ExitCode::FAILURE;
    }
    let env = |name: &str| std::env::var(name).ok();
    let (namespace, node_id) = identity(args.namespace.as_deref(), args.node_id.as_deref(), env, hostname());
    match serde_json::to_string_pretty(&bootstrap(&args.xds, &namespace, &node_id)) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshroute grpc-bootstrap: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_names_the_server_and_the_namespace() {
        let expected = json!({
            "xds_servers": [{
                "server_uri": "127.0.0.1:15010",
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"]
            }],
            "node": {"id": "client-1", "metadata": {"NAMESPACE": "team-a"}}
        });
        assert_eq!(bootstrap("127.0.0.1:15010", "team-a", "client-1"), expected);
    }

    #[test]
    fn the_namespace_comes_from_the_flag_then_pod_namespace_then_default() {
        let no_env = |_: &str| None;
        let pod_env = |name: &str| (name == "POD_NAMESPACE").then(|| "from-pod".to_owned());
        let host = || Some("echo-client-7f9".to_owned());
        assert_eq!(identity(Some("team-a"), None, pod_env, host()).0, "team-a");
        assert_eq!(identity(None, None, pod_env, host()).0, "from-pod");
        assert_eq!(identity(None, None, no_env, host()).0, "default");
        assert_eq!(identity(None, None, |_: &str| Some(String::new()), host()).0, "default");
    }

    #[test]
    fn the_node_id_defaults_to_namespace_and_host() {
        let no_env = |_: &str| None;
        assert_eq!(identity(Some("team-a"), None, no_env, Some("pod-1".into())).1, "meshroute-grpc~team-a~pod-1");
        assert_eq!(identity(None, None, no_env, None).1, "meshroute-grpc~default~unknown-host");
        assert_eq!(identity(None, Some("mine"), no_env, None).1, "mine");
    }
}
