//! `RequestMirror` (Gateway API `HTTPRequestMirrorFilter`): a copy of a request to another
//! Service, whose answer nobody waits for.
//!
//! Envoy's router sends the copies, in filter mode as in native mode: a route's
//! `request_mirror_policies` (streamed with the request, sampled by `runtime_fraction`, never
//! delaying nor changing the primary's answer). A mirror policy cannot name its cluster by a
//! header the route strips (the router reads that header after the strip), so the table gathers
//! the distinct lists of mirrors its rules and backendRefs need into [`MirrorSet`]s, and the
//! route configuration gets one route per set, selected by [`MIRROR_HEADER`]: the filter names
//! the set a forwarded request needs, the route takes it and strips the header.
//!
//! A set is named by a digest of what it holds, not by a position: the table (ECDS) and the
//! routes (LDS) are separate files Envoy reads one after the other, and while one is newer than
//! the other a name either selects the same mirrors in both or matches no route (the request is
//! then forwarded without copies), never another set's mirrors.

use std::collections::HashMap;

use crate::document::{FractionDoc, MirrorDoc};

/// The request header by which the filter selects the route of a [`MirrorSet`]; its value is
/// [`MirrorSet::header_value`]. Like the selection header, it never leaves Envoy, and a client's
/// copy is removed whenever the table has mirrors.
pub const MIRROR_HEADER: &str = "x-meshroute-mirror";

/// One mirror: the Service port that receives the copies, and how many of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mirror {
    pub name: String,
    pub namespace: String,
    pub port: Option<u16>,
    /// The Envoy cluster of the Service port.
    pub cluster: String,
    /// The share of requests copied: `percent` as `percent/100`, `fraction` as written.
    pub fraction: Fraction,
}

/// `numerator/denominator`, with `numerator <= denominator` and `denominator > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
    /// Every request: a mirror without `percent` or `fraction`.
    pub const ALL: Fraction = Fraction { numerator: 1, denominator: 1 };

    /// In millionths, Envoy's finest `FractionalPercent` (rounded to the nearest: 1/3 is
    /// 333,333 per million).
    pub fn per_million(self) -> u32 {
        let scaled = (u64::from(self.numerator) * 1_000_000 + u64::from(self.denominator) / 2) / u64::from(self.denominator);
        u32::try_from(scaled).unwrap_or(1_000_000)
    }

    /// In percent, for people.
    pub fn percent(self) -> f64 {
        f64::from(self.numerator) * 100.0 / f64::from(self.denominator)
    }

    pub fn is_all(self) -> bool {
        self.numerator == self.denominator
    }
}

impl Mirror {
    pub fn compile(doc: &MirrorDoc) -> Result<Self, String> {
        let place = || format!("mirror {}/{}", doc.namespace, doc.name);
        if doc.cluster.is_empty() {
            return Err(format!("{}: the cluster is empty", place()));
        }
        let fraction = match doc.fraction {
            None => Fraction::ALL,
            Some(FractionDoc { numerator, denominator }) if denominator > 0 && numerator <= denominator => {
                Fraction { numerator, denominator }
            }
            Some(FractionDoc { numerator, denominator }) => {
                return Err(format!(
                    "{}: fraction {numerator}/{denominator} needs 0 <= numerator <= denominator and denominator > 0",
                    place()
                ))
            }
        };
        Ok(Mirror {
            name: doc.name.clone(),
            namespace: doc.namespace.clone(),
            port: doc.port,
            cluster: doc.cluster.clone(),
            fraction,
        })
    }
}

/// The mirrors of one forwarded request: its rule's, then its backendRef's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSet {
    pub mirrors: Vec<Mirror>,
    header_value: String,
}

impl MirrorSet {
    /// What the filter sets [`MIRROR_HEADER`] to, and what the set's route matches exactly.
    pub fn header_value(&self) -> &str {
        &self.header_value
    }
}

/// What a forwarded request does with [`MIRROR_HEADER`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MirrorChoice<'t> {
    /// The table has no mirrors, so no route reads the header: nothing to do.
    #[default]
    None,
    /// The table has mirrors, this request none: a client's copy of the header is removed.
    Clear,
    /// Copies go to this set's mirrors.
    Set(&'t MirrorSet),
}

/// A table's distinct mirror sets, numbered in the order they first appear.
#[derive(Debug, Default)]
pub(crate) struct MirrorSets {
    sets: Vec<MirrorSet>,
    index: HashMap<Vec<Mirror>, usize>,
}

impl MirrorSets {
    /// The number of the set holding `mirrors`, added when new.
    pub(crate) fn intern(&mut self, mirrors: Vec<Mirror>) -> usize {
        if let Some(&i) = self.index.get(&mirrors) {
            return i;
        }
        let i = self.sets.len();
        self.sets.push(MirrorSet { header_value: digest(&mirrors), mirrors: mirrors.clone() });
        self.index.insert(mirrors, i);
        i
    }

    pub(crate) fn into_sets(self) -> Vec<MirrorSet> {
        self.sets
    }
}

/// 16 hex digits of FNV-1a over each mirror's cluster and share, in order: the same in every
/// build, which Rust's own hasher does not promise.
fn digest(mirrors: &[Mirror]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for mirror in mirrors {
        let share = format!("{}/{}", mirror.fraction.numerator, mirror.fraction.denominator);
        for byte in mirror.cluster.bytes().chain([0]).chain(share.bytes()).chain([0]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn mirror(name: &str, fraction: Option<(u32, u32)>) -> MirrorDoc {
        MirrorDoc {
            name: name.into(),
            namespace: "default".into(),
            port: Some(80),
            cluster: format!("c-{name}"),
            fraction: fraction.map(|(numerator, denominator)| FractionDoc { numerator, denominator }),
        }
    }

    #[test]
    fn fractions_become_millionths_and_percent() {
        let of = |n, d| Fraction { numerator: n, denominator: d };
        assert_eq!([of(1, 1).per_million(), of(50, 100).per_million(), of(1, 3).per_million()], [1_000_000, 500_000, 333_333]);
        assert_eq!(
            [of(0, 100).per_million(), of(2, 3).per_million(), of(u32::MAX, u32::MAX).per_million()],
            [0, 666_667, 1_000_000]
        );
        assert_eq!((of(1, 4).percent(), Fraction::ALL.percent()), (25.0, 100.0));
        assert!(of(7, 7).is_all() && !of(6, 7).is_all());
    }

    #[test]
    fn a_mirror_without_share_takes_every_request_and_a_bad_fraction_is_refused() {
        assert_eq!(Mirror::compile(&mirror("m", None)).unwrap().fraction, Fraction::ALL);
        assert_eq!(Mirror::compile(&mirror("m", Some((1, 4)))).unwrap().fraction, Fraction { numerator: 1, denominator: 4 });
        for bad in [(5, 4), (0, 0)] {
            let e = Mirror::compile(&mirror("m", Some(bad))).unwrap_err();
            assert!(e.contains("mirror default/m: fraction"), "{e}");
        }
        let e = Mirror::compile(&MirrorDoc { cluster: String::new(), ..mirror("m", None) }).unwrap_err();
        assert!(e.contains("cluster is empty"), "{e}");
    }

    #[test]
    fn equal_lists_share_a_set_and_order_matters() {
        let m = |name| Mirror::compile(&mirror(name, None)).unwrap();
        let mut sets = MirrorSets::default();
        assert_eq!(sets.intern(vec![m("a")]), 0);
        assert_eq!(sets.intern(vec![m("a"), m("b")]), 1);
        assert_eq!(sets.intern(vec![m("a")]), 0);
        assert_eq!(sets.intern(vec![m("b"), m("a")]), 2);
        let sets = sets.into_sets();
        assert_eq!(sets[1].mirrors, [m("a"), m("b")]);
        let names: std::collections::HashSet<&str> = sets.iter().map(MirrorSet::header_value).collect();
        assert_eq!(names.len(), 3);
        // Named by content: the same list has the same name in any table.
        assert_eq!(sets[0].header_value(), "2a898a4fe9d81931");
        let mut other = MirrorSets::default();
        other.intern(vec![m("b")]);
        let again = other.intern(vec![m("a")]);
        assert_eq!(other.into_sets()[again].header_value(), sets[0].header_value());
    }
}
