//! Weighted choice of a backendRef.

use crate::document::BackendDoc;
use crate::filters::RouteFilters;

/// Gateway API upper bound for a backendRef weight.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// A backendRef of a rule, with what serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    pub namespace: String,
    pub port: Option<u16>,
    pub weight: u32,
    pub target: BackendTarget,
    /// The backendRef's own filters: applied to requests sent to it, after the rule's.
    pub filters: RouteFilters,
    /// The table's [`crate::mirror::MirrorSet`] of the rule's and this backendRef's mirrors,
    /// when they have any.
    pub mirror_set: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendTarget {
    /// The Envoy cluster that serves the Service port.
    Cluster(String),
    /// The reference does not resolve; the reason is the Gateway API's (`BackendNotFound`, ...).
    Unresolved(String),
}

impl Backend {
    /// `prefix`: the rule's PathPrefix, as for [`RouteFilters::compile`].
    pub(crate) fn compile(doc: &BackendDoc, prefix: Option<&str>) -> Result<Self, String> {
        if doc.weight > MAX_WEIGHT {
            return Err(format!("backend {}/{} weight {} is above {MAX_WEIGHT}", doc.namespace, doc.name, doc.weight));
        }
        let target = match (&doc.cluster, &doc.unresolved) {
            (Some(cluster), None) if !cluster.is_empty() => BackendTarget::Cluster(cluster.clone()),
            (None, Some(reason)) => BackendTarget::Unresolved(reason.clone()),
            _ => {
                return Err(format!(
                    "backend {}/{} must have exactly one of a non-empty cluster or an unresolved reason",
                    doc.namespace, doc.name
                ))
            }
        };
        let filters =
            RouteFilters::compile(&doc.filters, prefix).map_err(|e| format!("backend {}/{}: {e}", doc.namespace, doc.name))?;
        Ok(Backend {
            name: doc.name.clone(),
            namespace: doc.namespace.clone(),
            port: doc.port,
            weight: doc.weight,
            target,
            filters,
            mirror_set: None,
        })
    }
}

/// A rule's backends with their cumulative weights, so a choice is one binary search.
#[derive(Debug, Clone, Default)]
pub struct BackendSet {
    backends: Vec<Backend>,
    /// `cumulative[i]` is the sum of the weights of backends `0..=i`.
    cumulative: Vec<u64>,
}

impl BackendSet {
    pub fn new(backends: Vec<Backend>) -> Self {
        let cumulative = backends
            .iter()
            .scan(0u64, |sum, b| {
                *sum += u64::from(b.weight);
                Some(*sum)
            })
            .collect();
        BackendSet { backends, cumulative }
    }

    pub fn all(&self) -> &[Backend] {
        &self.backends
    }

    pub fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Every backend with a weight above 0, in order, with a draw that [`BackendSet::pick`]
    /// maps to it (the first point of its share).
    pub fn shares(&self) -> impl Iterator<Item = (&Backend, u64)> + '_ {
        self.backends
            .iter()
            .zip(&self.cumulative)
            .filter(|(backend, _)| backend.weight > 0)
            .map(|(backend, &upto)| (backend, upto.saturating_sub(u64::from(backend.weight))))
    }

    /// Picks a backend in proportion to its weight from a uniformly random `draw`. `None` when
    /// there is nothing to pick: no backends, or every weight is 0. A weight-0 backend is never
    /// picked.
    pub fn pick(&self, draw: u64) -> Option<&Backend> {
        let total = self.total_weight();
        if total == 0 {
            return None;
        }
        let point = draw % total;
        let index = self.cumulative.partition_point(|&upto| upto <= point);
        self.backends.get(index)
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
        Backend {
            name: name.into(),
            namespace: "default".into(),
            port: Some(80),
            weight,
            target: BackendTarget::Cluster(name.into()),
            filters: RouteFilters::default(),
            mirror_set: None,
        }
    }

    #[test]
    fn weight_zero_is_never_picked() {
        let set = BackendSet::new(vec![backend("a", 0), backend("b", 3), backend("c", 0), backend("d", 1), backend("e", 0)]);
        for draw in 0..1000 {
            let name = &set.pick(draw).unwrap().name;
            assert!(name == "b" || name == "d", "{name}");
        }
    }

    #[test]
    fn picks_in_exact_proportion_over_one_cycle() {
        let set = BackendSet::new(vec![backend("v1", 9), backend("v2", 1)]);
        let v1 = (0..10).filter(|&d| set.pick(d).unwrap().name == "v1").count();
        assert_eq!(v1, 9);
    }

    #[test]
    fn each_share_draw_picks_its_backend() {
        let set = BackendSet::new(vec![backend("a", 0), backend("b", 3), backend("c", 0), backend("d", 1), backend("e", 0)]);
        let shares: Vec<(&str, u64)> = set.shares().map(|(b, draw)| (b.name.as_str(), draw)).collect();
        assert_eq!(shares, vec![("b", 0), ("d", 3)]);
        for (name, draw) in shares {
            assert_eq!(set.pick(draw).unwrap().name, name);
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
        assert_eq!(set.pick(u64::MAX).unwrap().name, "a");
    }

    #[test]
    fn rng_spreads_evenly() {
        let mut rng = Rng::new(42);
        let set = BackendSet::new(vec![backend("v1", 9), backend("v2", 1)]);
        let n = 100_000;
        let v2 = (0..n).filter(|_| set.pick(rng.next_u64()).unwrap().name == "v2").count();
        // Expected 10,000, standard deviation ~95: six sigma either side.
        assert!((9_430..=10_570).contains(&v2), "{v2}");
    }
}
