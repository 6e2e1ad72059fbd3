//! Which of a frontend's matches can take a request, found by its path without trying them all.
//! One hash map serves every frontend of the table: a key is the frontend, Exact or PathPrefix,
//! and the path or prefix; its value is a run of slots, the matches filed there in precedence
//! order. A request's path looks up its Exact key, then each of its segment prefixes (`/a`,
//! `/a/b`, …) until one is absent; the root prefix and the matches that may take any path
//! (gRPC method-only matches, regexes without a literal start) are runs of their own, tried
//! without a lookup. The first match, by precedence, that really matches wins, exactly as a scan
//! in precedence order would decide.
//!
//! The layout is flat for speed at scale: slots sit in one array, keys in one string, and the
//! map holds 64-bit hashes, so a request touches a few cache lines wherever its match is, and
//! building or dropping the index allocates a handful of times, not once per match. A hash that
//! two keys share would merge their slots, so building tries another seed until none do; a
//! lookup still compares the key it found.
//!
//! Why not a router such as `matchit`: a match is more than its path (method, headers, query
//! parameters), so a request needs every candidate its path allows, in precedence order, to try
//! the next when one fails. A router returns the one best route for a path, holds one value per
//! route (inserting the same path again is a conflict) and has no regexes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hasher;

/// The hasher of the index and the frontend map: rustc's FxHash, a few cycles per word. Keys
/// come from the route table, not from requests, so a fast non-keyed hash is safe here
/// (requests only look keys up; they cannot fill a bucket).
pub type FastHash = rustc_hash::FxBuildHasher;

/// Where a match is filed. A key that is a path or a prefix can only take paths starting with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKey<'m> {
    /// Can only match this exact path.
    Exact(Cow<'m, str>),
    /// Can only match paths under this segment prefix (stored without a trailing `/`; "" for
    /// the root).
    Prefix(Cow<'m, str>),
    /// May match any path.
    Any,
}

/// `start..end` of [`PathIndex`]'s slots or key bytes (or of another flat array of the table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One frontend's part of a [`PathIndex`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FrontendIndex {
    id: u32,
    /// Matches under the root prefix: every path.
    root: Span,
    /// Matches that may take any path.
    any: Span,
    /// The first match (in precedence order) filed under a prefix, root included: once a better
    /// one matched, the prefixes are not looked up.
    first_prefixed: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Slot<T> {
    /// The match's place in its frontend's precedence order.
    rank: u32,
    value: T,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    key: Span,
    slots: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact = 1,
    Prefix = 2,
}

/// The index of every frontend's matches; `T` is what a slot carries for the caller.
#[derive(Debug)]
pub struct PathIndex<T> {
    buckets: HashMap<u64, Bucket, FastHash>,
    seed: u64,
    keys: String,
    slots: Vec<Slot<T>>,
}

/// Files the matches of one frontend after another, then builds the [`PathIndex`].
#[derive(Debug)]
pub struct IndexBuilder<T> {
    frontends: u32,
    keys: String,
    slots: Vec<Slot<T>>,
    /// `(frontend, kind, key, slots)` of every bucket.
    buckets: Vec<(u32, Kind, Span, Span)>,
}

impl<T> Default for IndexBuilder<T> {
    fn default() -> Self {
        IndexBuilder { frontends: 0, keys: String::new(), slots: Vec::new(), buckets: Vec::new() }
    }
}

impl<T> IndexBuilder<T> {
    /// Files one frontend's matches, given in precedence order with what their slots carry.
    pub fn file<'m>(&mut self, matches: impl IntoIterator<Item = (IndexKey<'m>, T)>) -> FrontendIndex {
        let id = self.frontends;
        self.frontends += 1;
        let mut root = Vec::new();
        let mut any = Vec::new();
        let mut keyed: Vec<(Kind, Cow<'m, str>, Slot<T>)> = Vec::new();
        for (rank, (key, value)) in matches.into_iter().enumerate() {
            let slot = Slot { rank: index_u32(rank), value };
            match key {
                IndexKey::Prefix(prefix) if prefix.is_empty() => root.push(slot),
                IndexKey::Any => any.push(slot),
                IndexKey::Exact(path) => keyed.push((Kind::Exact, path, slot)),
                IndexKey::Prefix(prefix) => keyed.push((Kind::Prefix, prefix, slot)),
            }
        }
        let first_prefixed = root
            .first()
            .map(|slot| slot.rank)
            .into_iter()
            .chain(keyed.iter().filter(|(kind, _, _)| *kind == Kind::Prefix).map(|(_, _, slot)| slot.rank))
            .min();
        let root = self.push_slots(root);
        let any = self.push_slots(any);
        // Each bucket's slots together, in precedence order (a stable sort keeps it).
        keyed.sort_by(|(a_kind, a, _), (b_kind, b, _)| (*a_kind as u8, a).cmp(&(*b_kind as u8, b)));
        let mut prefixes: Vec<Cow<'m, str>> = Vec::new();
        let mut keyed = keyed.into_iter().peekable();
        while let Some((kind, key, slot)) = keyed.next() {
            let start = index_u32(self.slots.len());
            self.slots.push(slot);
            while let Some((_, _, slot)) = keyed.next_if(|(k, next, _)| *k == kind && *next == key) {
                self.slots.push(slot);
            }
            let slots = Span { start, end: index_u32(self.slots.len()) };
            self.push_bucket(id, kind, &key, slots);
            if kind == Kind::Prefix {
                prefixes.push(key);
            }
        }
        // A lookup stops at the first prefix that is absent: every prefix's ancestors are
        // present, as buckets without slots where nothing is filed there.
        let filed: std::collections::HashSet<&str> = prefixes.iter().map(|prefix| prefix.as_ref()).collect();
        let mut added: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut ancestors = Vec::new();
        for prefix in &prefixes {
            for end in segment_ends(prefix).filter(|&end| end < prefix.len()) {
                let ancestor = prefix.get(..end).unwrap_or_default();
                if !filed.contains(ancestor) && added.insert(ancestor) {
                    ancestors.push(ancestor);
                }
            }
        }
        let empty = Span { start: 0, end: 0 };
        for ancestor in ancestors {
            self.push_bucket(id, Kind::Prefix, ancestor, empty);
        }
        FrontendIndex { id, root, any, first_prefixed }
    }

    fn push_slots(&mut self, slots: Vec<Slot<T>>) -> Span {
        let start = index_u32(self.slots.len());
        self.slots.extend(slots);
        Span { start, end: index_u32(self.slots.len()) }
    }

    fn push_bucket(&mut self, frontend: u32, kind: Kind, key: &str, slots: Span) {
        let start = index_u32(self.keys.len());
        self.keys.push_str(key);
        self.buckets.push((frontend, kind, Span { start, end: index_u32(self.keys.len()) }, slots));
    }

    /// The index; the first seed under which no two keys share a hash.
    pub fn build(self) -> PathIndex<T> {
        let IndexBuilder { keys, slots, buckets: pending, .. } = self;
        let mut seed = 0u64;
        loop {
            let mut buckets: HashMap<u64, Bucket, FastHash> =
                HashMap::with_capacity_and_hasher(pending.len(), FastHash::default());
            let unique = pending.iter().all(|&(frontend, kind, key, slots)| {
                let bytes = keys.get(key.range()).unwrap_or_default().as_bytes();
                buckets.insert(key_hash(seed, frontend, kind, bytes), Bucket { key, slots }).is_none()
            });
            if unique {
                return PathIndex { buckets, seed, keys, slots };
            }
            seed += 1;
        }
    }
}

/// Offsets and positions are `u32` in the index: a table past 4 GiB is refused long before.
pub fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn key_hash(seed: u64, frontend: u32, kind: Kind, key: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write_u64(seed ^ (u64::from(frontend) << 8) ^ kind as u64);
    hasher.write(key);
    hasher.finish()
}

/// The ends of a path's segment prefixes: `/a/b` → 2 (`/a`), 4 (`/a/b`). None for a path
/// that does not start with `/` (`*`), which only the root and any-path matches can take.
fn segment_ends(path: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = path.as_bytes();
    let rooted = bytes.first() == Some(&b'/');
    (1..=bytes.len()).filter(move |&end| rooted && (end == bytes.len() || bytes.get(end) == Some(&b'/')))
}

impl<T> PathIndex<T> {
    /// The first match of `frontend`, in precedence order, for which `matches` holds, among
    /// those the path (without its query) allows: its place in the frontend's precedence order
    /// (what `matches` is given too) and what its slot carries.
    pub fn first_match(
        &self,
        frontend: &FrontendIndex,
        path: &str,
        mut matches: impl FnMut(usize, &T) -> bool,
    ) -> Option<(usize, &T)> {
        let mut best: Option<&Slot<T>> = None;
        if let Some(bucket) = self.bucket(frontend.id, Kind::Exact, path) {
            self.consider(bucket.slots, &mut best, &mut matches);
        }
        // The prefixes are worth looking up only if they hold a match ahead of the best so far,
        // and only for a path a prefix can take: one that starts with `/` (not `*`).
        let rooted = path.is_empty() || path.starts_with('/');
        if rooted && frontend.first_prefixed.is_some_and(|first| best.is_none_or(|best| first < best.rank)) {
            self.consider(frontend.root, &mut best, &mut matches);
            for end in segment_ends(path) {
                let Some(bucket) = self.bucket(frontend.id, Kind::Prefix, path.get(..end).unwrap_or_default()) else { break };
                self.consider(bucket.slots, &mut best, &mut matches);
            }
        }
        self.consider(frontend.any, &mut best, &mut matches);
        best.map(|slot| (slot.rank as usize, &slot.value))
    }

    fn bucket(&self, frontend: u32, kind: Kind, key: &str) -> Option<Bucket> {
        let bucket = *self.buckets.get(&key_hash(self.seed, frontend, kind, key.as_bytes()))?;
        (self.keys.get(bucket.key.range()) == Some(key)).then_some(bucket)
    }

    /// Tries the slots of `span` (in precedence order) ahead of `best`; the first that matches
    /// becomes `best`.
    fn consider<'s>(&'s self, span: Span, best: &mut Option<&'s Slot<T>>, matches: &mut impl FnMut(usize, &T) -> bool) {
        for slot in self.slots.get(span.range()).unwrap_or_default() {
            if best.is_some_and(|best| slot.rank >= best.rank) {
                return;
            }
            if matches(slot.rank as usize, &slot.value) {
                *best = Some(slot);
                return;
            }
        }
    }

    /// The number of matches filed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Where a path regex can be filed: under the whole segments its literal start spells out.
/// `/api/v[0-9]+/.*` can only match paths under `/api`; a regex with an alternation, a group or
/// class at its start, or no `/`-terminated literal start may match anything.
pub fn regex_key(source: &str) -> IndexKey<'_> {
    if source.contains('|') {
        return IndexKey::Any;
    }
    let meta = |c: char| "\\.+*?()[]{}^$".contains(c);
    let literal_end = source.find(meta).unwrap_or(source.len());
    let mut literal = &source[..literal_end];
    // A quantifier makes the character before it optional.
    if source[literal_end..].starts_with(['*', '?', '{']) {
        literal = literal.get(..literal.len().saturating_sub(1)).unwrap_or("");
    }
    match literal.rfind('/') {
        Some(end) if literal.starts_with('/') => IndexKey::Prefix(Cow::Borrowed(&literal[..end])),
        _ => IndexKey::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Two frontends: the first with matches 0 to 5, the second with one, filed where the first
    /// has none, so that a lookup cannot meet the other frontend's keys.
    fn index() -> (PathIndex<usize>, FrontendIndex, FrontendIndex) {
        let mut builder = IndexBuilder::default();
        let first = builder.file(
            [
                IndexKey::Exact("/a/b".into()),  // 0
                IndexKey::Prefix("/a/b".into()), // 1
                IndexKey::Any,                   // 2
                IndexKey::Prefix("/a".into()),   // 3
                IndexKey::Prefix("".into()),     // 4
                IndexKey::Exact("/a/b".into()),  // 5
            ]
            .into_iter()
            .zip(0..),
        );
        let second = builder.file([(IndexKey::Prefix("/c/d/e".into()), 0)]);
        (builder.build(), first, second)
    }

    fn candidates(index: &PathIndex<usize>, frontend: &FrontendIndex, path: &str) -> Vec<usize> {
        let mut seen = Vec::new();
        index.first_match(frontend, path, |rank, &i| {
            assert_eq!(rank, i, "the slot's rank is its place in precedence order");
            seen.push(i);
            false
        });
        seen.sort_unstable();
        seen
    }

    #[test]
    fn a_path_meets_its_exact_entries_its_prefixes_and_the_rest() {
        let (index, first, _) = index();
        assert_eq!(candidates(&index, &first, "/a/b"), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(candidates(&index, &first, "/a/b/c"), vec![1, 2, 3, 4]);
        assert_eq!(candidates(&index, &first, "/a/b/"), vec![1, 2, 3, 4]);
        assert_eq!(candidates(&index, &first, "/a/bc"), vec![2, 3, 4]);
        assert_eq!(candidates(&index, &first, "/ab"), vec![2, 4]);
        assert_eq!(candidates(&index, &first, "*"), vec![2]);
        assert_eq!(candidates(&index, &first, "/c/d/e"), vec![2, 4]);
    }

    #[test]
    fn a_prefix_is_found_below_ancestors_that_hold_nothing() {
        let (index, _, second) = index();
        assert_eq!(candidates(&index, &second, "/c/d/e/f"), vec![0]);
        assert_eq!(candidates(&index, &second, "/c/d/e"), vec![0]);
        assert_eq!(candidates(&index, &second, "/c/d"), Vec::<usize>::new());
        assert_eq!(candidates(&index, &second, "/a/b"), Vec::<usize>::new());
    }

    #[test]
    fn many_keys_each_find_their_own_slots() {
        let mut builder = IndexBuilder::default();
        let frontends: Vec<FrontendIndex> =
            (0..50).map(|f| builder.file((0..200).map(|i| (IndexKey::Exact(format!("/f{f}/p{i}").into()), (f, i))))).collect();
        let index = builder.build();
        for (f, frontend) in frontends.iter().enumerate() {
            for i in [0, 57, 199] {
                let found = index.first_match(frontend, &format!("/f{f}/p{i}"), |_, _| true);
                assert_eq!(found, Some((i, &(f, i))));
            }
            assert_eq!(index.first_match(frontend, &format!("/f{}/p0", f + 1), |_, _| true), None);
        }
    }

    #[test]
    fn regexes_are_filed_under_their_literal_segments() {
        assert_eq!(regex_key("/api/v[0-9]+/.*"), IndexKey::Prefix("/api".into()));
        assert_eq!(regex_key("/r49/[0-9]+"), IndexKey::Prefix("/r49".into()));
        assert_eq!(regex_key("/a/b/c"), IndexKey::Prefix("/a/b".into()));
        // `/a/` followed by `*`: the second `/` is optional, and `/a` alone could go on as
        // `/ab`, so no segment is sure.
        assert_eq!(regex_key("/a/*"), IndexKey::Prefix("".into()));
        assert_eq!(regex_key("/a/b?"), IndexKey::Prefix("/a".into()));
        assert_eq!(regex_key("/ab{0,1}/x"), IndexKey::Prefix("".into()));
        for any in ["/a|/b/c", "(?i)/a/b", "[/]a/b", ".*/a/", "a/b/"] {
            assert_eq!(regex_key(any), IndexKey::Any, "{any}");
        }
        assert_eq!(regex_key("/x[0-9]"), IndexKey::Prefix("".into()));
    }

    #[test]
    fn the_first_entry_in_precedence_order_wins() {
        let (index, first, _) = index();
        assert_eq!(index.first_match(&first, "/a/b", |rank, _| rank == 3 || rank == 5), Some((3, &3)));
        assert_eq!(index.first_match(&first, "/a/b/c", |rank, _| rank != 1), Some((2, &2)));
        assert_eq!(index.first_match(&first, "/x", |_, _| false), None);
    }

    #[test]
    fn later_candidates_are_not_tried_once_an_earlier_one_matched() {
        let (index, first, _) = index();
        let mut tried = Vec::new();
        index.first_match(&first, "/a/b", |rank, _| {
            tried.push(rank);
            true
        });
        assert_eq!(tried, vec![0]);
    }
}
