//! The table a VM holds for filter instances that hold none of their own
//! ([`crate::document::SHARED_TABLE_CONFIG`]), kept in Envoy's shared data too.
//!
//! Every VM (the main thread's and each worker's) routes the shared instances' requests by the
//! table it compiled last, which the holder's configuration brings. Envoy re-creates a crashed
//! VM with the shared instances' configurations only (not the holder's), so the table's bytes
//! are also in shared data (one store per `vm_id`, which outlives VMs): a VM that has no table
//! compiles them from there.

use log::error;
use proxy_wasm::hostcalls;

/// Shared-data keys: the table document's bytes, and its version (so that a VM that compiled
/// the table already published writes nothing).
const TABLE: &str = "meshroute.table";
const VERSION: &str = "meshroute.table.version";

/// Publishes a table document this VM has just accepted, unless it is already there.
pub fn publish(config: &[u8], version: u32) {
    let version = version.to_le_bytes();
    if matches!(hostcalls::get_shared_data(VERSION), Ok((Some(known), _)) if known == version) {
        return;
    }
    for (key, value) in [(TABLE, config), (VERSION, version.as_slice())] {
        if let Err(status) = hostcalls::set_shared_data(key, Some(value), None) {
            error!("shared route table not published ({key}): {status:?}");
        }
    }
}

/// The table document last published by any VM of this `vm_id`, if any.
pub fn published() -> Option<Vec<u8>> {
    match hostcalls::get_shared_data(TABLE) {
        Ok((Some(bytes), _)) if !bytes.is_empty() => Some(bytes),
        _ => None,
    }
}
