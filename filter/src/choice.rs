//! Weighted choice of a backendRef.

use std::sync::Arc;

use crate::document::{BackendDoc, BackendTargetDoc};
use crate::filters::RouteFilters;

/// Gateway API upper bound for a backendRef weight.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// A backendRef of a rule: what it points at, its weight and its own filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Compiled once per target of the table and shared by every backendRef naming it.
    pub target: Arc<BackendTarget>,
    pub weight: u32,
    /// The backendRef's own filters: applied to requests sent to it, after the rule's.
    pub filters: RouteFilters,
    /// The table's [`crate::mirror::MirrorSet`] of the rule's and this backendRef's mirrors,
    /// when they have any.
    pub mirror_set: Option<usize>,
}

/// What a backendRef points at: a Service port, and what serves it.
#[derive(Debug, PartialEq)]
pub struct BackendTarget {
    pub name: String,
    pub namespace: String,
    pub port: Option<u16>,
    pub resolution: Resolution,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The Envoy cluster that serves the Service port.
    Cluster(String),
    /// The reference does not resolve; the reason is the Gateway API's (`BackendNotFound`, ...).
    Unresolved(String),
}

impl BackendTarget {
    pub(crate) fn compile(doc: &BackendTargetDoc) -> Result<Self, String> {
        let resolution = match (&doc.cluster, &doc.unresolved) {
            (Some(cluster), None) if !cluster.is_empty() => Resolution::Cluster(cluster.clone()),
            (None, Some(reason)) => Resolution::Unresolved(reason.clone()),
            _ => return Err("must have exactly one of a non-empty cluster or an unresolved reason".to_owned()),
        };
        Ok(BackendTarget { name: doc.name.clone(), namespace: doc.namespace.clone(), port: doc.port, resolution })
    }
}

impl Backend {
    /// `targets`: the table's, compiled; `prefix`: the rule's PathPrefix, as for
    /// [`RouteFilters::compile`].
    pub(crate) fn compile(doc: &BackendDoc, targets: &[Arc<BackendTarget>], prefix: Option<&str>) -> Result<Self, String> {
        let target = targets
            .get(doc.target)
            .ok_or_else(|| format!("target {} is out of range (the table has {})", doc.target, targets.len()))?;
        let (namespace, name) = (&target.namespace, &target.name);
        if doc.weight > MAX_WEIGHT {
            return Err(format!("backend {namespace}/{name} weight {} is above {MAX_WEIGHT}", doc.weight));
        }
        let filters = RouteFilters::compile(&doc.filters, prefix).map_err(|e| format!("backend {namespace}/{name}: {e}"))?;
        Ok(Backend { target: Arc::clone(target), weight: doc.weight, filters, mirror_set: None })
    }
}

/// A rule's backends and their total weight. A choice walks the backends, at most 16 (the
/// Gateway API's limit per rule): no table of cumulative weights to allocate per rule.
#[derive(Debug, Clone, Default)]
pub struct BackendSet {
    backends: Vec<Backend>,
    total: u64,
}

impl BackendSet {
    pub fn new(backends: Vec<Backend>) -> Self {
        let total = backends.iter().map(|b| u64::from(b.weight)).sum();
        BackendSet { backends, total }
    }

    pub fn all(&self) -> &[Backend] {
        &self.backends
    }

    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// Every backend with a weight above 0, in order, with a draw that [`BackendSet::pick`]
    /// maps to it (the first point of its share).
    pub fn shares(&self) -> impl Iterator<Item = (&Backend, u64)> + '_ {
        self.backends
            .iter()
            .scan(0u64, |from, backend| {
                let first = *from;
                *from += u64::from(backend.weight);
                Some((backend, first))
            })
            .filter(|(backend, _)| backend.weight > 0)
    }

    /// Picks a backend in proportion to its weight from a uniformly random `draw`. `None` when
    /// there is nothing to pick: no backends, or every weight is 0. A weight-0 backend is never
    /// picked.
    pub fn pick(&self, draw: u64) -> Option<&Backend> {
        if self.total == 0 {
            return None;
        }
        let mut point = draw % self.total;
        for backend in &self.backends {
            let weight = u64::from(backend.weight);
            if point < weight {
                return Some(backend);
            }
            point -= weight;
        }
        None
    }
}

/// A small, fast generator (wyrand). Seeded once per VM from the host's entropy; the quality
/// is ample for spreading requests, and it costs a few nanoseconds per draw.
#[derive(Debug, Clone, Copy)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn backend(name: &str, weight: u32) -> Backend {
        let target = BackendTarget {
            name: name.into(),
            namespace: "default".into(),
            port: Some(80),
            resolution: Resolution::Cluster(name.into()),
        };
        Backend { target: Arc::new(target), weight, filters: RouteFilters::default(), mirror_set: None }
    }

    #[test]
    fn weight_zero_is_never_picked() {
        let set = BackendSet::new(vec![backend("a", 0), backend("b", 3), backend("c", 0), backend("d", 1), backend("e", 0)]);
        for draw in 0..1000 {
            let name = &set.pick(draw).unwrap().target.name;
            assert!(name == "b" || name == "d", "{name}");
        }
    }

    #[test]
    fn picks_in_exact_proportion_over_one_cycle() {
        let set = BackendSet::new(vec![backend("v1", 9), backend("v2", 1)]);
        let v1 = (0..10).filter(|&d| set.pick(d).unwrap().target.name == "v1").count();
        assert_eq!(v1, 9);
    }

    #[test]
    fn each_share_draw_picks_its_backend() {
        let set = BackendSet::new(vec![backend("a", 0), backend("b", 3), backend("c", 0), backend("d", 1), backend("e", 0)]);
        let shares: Vec<(&str, u64)> = set.shares().map(|(b, draw)| (b.target.name.as_str(), draw)).collect();
        assert_eq!(shares, vec![("b", 0), ("d", 3)]);
        for (name, draw) in shares {
            assert_eq!(set.pick(draw).unwrap().target.name, name);
        }
        assert_eq!(BackendSet::new(vec![backend("a", 0)]).shares().count(), 0);
    }

    #[test]
    fn nothing_to_pick_without_weight() {
        assert!(BackendSet::new(vec![]).pick(7).is_none());
        assert!(BackendSet::new(vec![backend("a", 0)]).pick(7).is_none());
    }

    #[test]
    fn large_weights_do_not_overflow() {
        let set = BackendSet::new(vec![backend("a", MAX_WEIGHT); 4]);
        assert_eq!(set.total_weight(), 4 * u64::from(MAX_WEIGHT));
        assert_eq!(set.pick(u64::MAX).unwrap().target.name, "a");
    }

    #[test]
    fn rng_spreads_evenly() {
        let mut rng = Rng::new(42);
        let set = BackendSet::new(vec![backend("v1", 9), backend("v2", 1)]);
        let n = 100_000;
        let v2 = (0..n).filter(|_| set.pick(rng.next_u64()).unwrap().target.name == "v2").count();
        // Expected 10,000, standard deviation ~95: six sigma either side.
        assert!((9_430..=10_570).contains(&v2), "{v2}");
    }
}
