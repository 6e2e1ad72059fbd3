//! ECDS: the meshroute filter's configuration, i.e. the wasm module and the route table.

use serde_json::{json, Value};

use super::listeners::{FILTER_NAME, WASM_TYPE_URL};

/// The wasm `PluginConfig` that runs `module` (a path Envoy can read) with `table_json` as its
/// plugin configuration.
pub fn wasm_filter(module: &str, table_json: &str) -> Value {
    json!({
        "@type": WASM_TYPE_URL,
        "config": {
            "name": FILTER_NAME,
            "root_id": FILTER_NAME,
            "vm_config": {
                // The VM is shared by plugins with this id and the same code; a new table keeps
                // the VM and only configures a new plugin instance.
                "vm_id": FILTER_NAME,
                "runtime": "envoy.wasm.runtime.v8",
                "code": { "local": { "filename": module } },
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": table_json,
            },
            // A crashed VM is reloaded rather than failing or bypassing routing. Until the new
            // VM is up, requests on that worker get a local 503; the backoff starts short
            // (Envoy's default is 1 s) and grows while the VM keeps failing.
            "failure_policy": "FAIL_RELOAD",
            "reload_config": { "backoff": { "base_interval": "0.1s", "max_interval": "2s" } },
        }
    })
}

/// The ECDS document: one `TypedExtensionConfig` named like the filter that discovers it.
pub fn extension_configs(module: &str, table_json: &str) -> Value {
    json!({
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": FILTER_NAME,
            "typed_config": wasm_filter(module, table_json),
        }]
    })
}
