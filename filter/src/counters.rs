//! The filter's counters in Envoy: [`crate::metrics`]' series as proxy-wasm metrics, each
//! defined when a request first counts under it, and kept alive across VMs.
//!
//! Envoy keeps a proxy-wasm metric while a VM that defined it lives, and counts under one stat
//! per name across VMs. A table swap usually keeps the VM, but not always: Envoy fed over ADS
//! (remote code) starts new VMs for each new filter configuration (measured on 1.40.0), and a
//! new module always does. A series the new VM had not defined would vanish with the old VM
//! and come back from 0, which Prometheus reads as a restart. So every series defined is also
//! written to Envoy's shared data (one registry per `vm_id`, which outlives VMs), and a new VM
//! defines every registered series before it serves: while the old VM still holds them, so
//! each counter goes on from where it was.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use log::error;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::index::FastHash;
use crate::metrics::{Series, SeriesKey, TABLE_VERSION};

/// Shared-data keys: how many series are registered (`u32`, little-endian), the name of each by
/// its index, and a marker per name so that no VM registers one twice.
const REGISTERED: &str = "meshroute.series.count";
const NAME_AT: &str = "meshroute.series.at.";
const KNOWN: &str = "meshroute.series.known.";

thread_local! {
    /// Every metric this VM has defined, by name: Envoy hands out a new id for each definition,
    /// so a table swap looks its series up here and the VM's ids do not grow with each swap.
    static DEFINED: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// Whether this VM has defined the registered series.
    static ADOPTED: Cell<bool> = const { Cell::new(false) };
}

/// The counter ids of one table's series. Only series that requests reach are defined: a table
/// with 10,000 rules costs nothing until traffic reaches them.
#[derive(Default)]
pub struct Counters {
    ids: RefCell<HashMap<SeriesKey, u32, FastHash>>,
}

impl Counters {
    /// One host call for a series counted before in this table; a few more, once, for a new one.
    pub fn count(&self, series: &Series<'_>) {
        let key = series.key();
        let known = self.ids.borrow().get(&key).copied();
        let Some(id) = known.or_else(|| {
            let id = counter(&series.stat_name())?;
            self.ids.borrow_mut().insert(key, id);
            Some(id)
        }) else {
            return;
        };
        if let Err(status) = hostcalls::increment_metric(id, 1) {
            error!("counter {id} not incremented: {status:?}");
        }
    }
}

/// Sets the table-version gauge ([`TABLE_VERSION`]) of a table this VM has just loaded, after
/// defining every registered series, as a new VM must before it serves.
pub fn record_table_version(version: u32) {
    adopt_registered();
    if let Some(id) = metric_id(MetricType::Gauge, TABLE_VERSION) {
        if let Err(status) = hostcalls::record_metric(id, u64::from(version)) {
            error!("table version gauge not set: {status:?}");
        }
    }
}

/// The id of counter `name`, defining and registering it if this VM has not defined it yet.
fn counter(name: &str) -> Option<u32> {
    if let Some(id) = DEFINED.with(|defined| defined.borrow().get(name).copied()) {
        return Some(id);
    }
    let id = metric_id(MetricType::Counter, name)?;
    register(name);
    Some(id)
}

/// The id of the metric `name`, defining it if this VM has not. The SDK panics if Envoy
/// refuses a definition, which Envoy does only for an unknown metric type.
fn metric_id(kind: MetricType, name: &str) -> Option<u32> {
    if let Some(id) = DEFINED.with(|defined| defined.borrow().get(name).copied()) {
        return Some(id);
    }
    match hostcalls::define_metric(kind, name) {
        Ok(id) => {
            DEFINED.with(|defined| defined.borrow_mut().insert(name.to_owned(), id));
            Some(id)
        }
        Err(status) => {
            error!("metric {name} not defined: {status:?}");
            None
        }
    }
}

/// Adds `name` to the registry unless a VM has already.
fn register(name: &str) {
    let marker = format!("{KNOWN}{name}");
    if matches!(hostcalls::get_shared_data(&marker), Ok((Some(_), _))) {
        return;
    }
    if let Err(status) = hostcalls::set_shared_data(&marker, Some(b"1".as_slice()), None) {
        error!("series {name} not registered: {status:?}");
        return;
    }
    // Take the next index; retried when another VM took it first.
    for _ in 0..64 {
        let (count, cas) = registered();
        let next = count.saturating_add(1);
        match hostcalls::set_shared_data(REGISTERED, Some(&next.to_le_bytes()), cas) {
            Ok(()) => {
                if let Err(status) = hostcalls::set_shared_data(&format!("{NAME_AT}{count}"), Some(name.as_bytes()), None) {
                    error!("series {name} not registered: {status:?}");
                }
                return;
            }
            Err(Status::CasMismatch) => continue,
            Err(status) => {
                error!("series {name} not registered: {status:?}");
                return;
            }
        }
    }
    error!("series {name} not registered: the registry stayed contended");
}

/// How many series are registered, and the CAS to update that number with.
fn registered() -> (u32, Option<u32>) {
    match hostcalls::get_shared_data(REGISTERED) {
        Ok((Some(bytes), cas)) => (bytes.try_into().map(u32::from_le_bytes).unwrap_or(0), cas),
        Ok((None, cas)) => (0, cas),
        Err(_) => (0, None),
    }
}

/// Defines every registered series, once per VM.
fn adopt_registered() {
    if ADOPTED.with(|adopted| adopted.replace(true)) {
        return;
    }
    let (count, _) = registered();
    for index in 0..count {
        let Ok((Some(name), _)) = hostcalls::get_shared_data(&format!("{NAME_AT}{index}")) else { continue };
        if let Ok(name) = String::from_utf8(name) {
            metric_id(MetricType::Counter, &name);
        }
    }
}
