//! Which of a frontend's matches can take a request, found by its path without trying them all:
//! Exact paths in a map, PathPrefixes (and regexes, by their literal start) in a trie of path
//! segments, the rest (gRPC method-only matches, regexes that may match anything) always tried.
//! Entries keep their precedence order as indexes; the first one that really matches wins,
//! exactly as a scan in precedence order would decide.
//!
//! Why not a router such as `matchit`: a match is more than its path (method, headers, query
//! parameters), so a request needs every candidate its path allows, in precedence order, to try
//! the next when one fails. A router returns the one best route for a path, holds one value per
//! route (inserting the same path again is a conflict) and has no regexes.

use std::collections::HashMap;

/// The hasher of the index and the frontend map: rustc's FxHash, a few cycles per word. Keys
/// come from the route table, not from requests, so a fast non-keyed hash is safe here
/// (requests only look keys up; they cannot fill a bucket).
pub type FastHash = rustc_hash::FxBuildHasher;

type FastMap<V> = HashMap<String, V, FastHash>;

/// Where an entry is filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKey {
    /// Can only match this exact path.
    Exact(String),
    /// Can only match paths under this segment prefix (stored without a trailing `/`; "" for
    /// the root).
    Prefix(String),
    /// May match any path.
    Any,
}

#[derive(Debug, Default)]
pub struct EntryIndex {
    exact: FastMap<Vec<u32>>,
    prefixes: PrefixNode,
    /// The first entry filed in the trie: once a better one matched, the walk is skipped.
    prefixes_first: Option<u32>,
    any: Vec<u32>,
}

#[derive(Debug, Default)]
struct PrefixNode {
    entries: Vec<u32>,
    children: FastMap<PrefixNode>,
}

impl EntryIndex {
    /// Files entries given in precedence order.
    pub fn new(keys: impl IntoIterator<Item = IndexKey>) -> Self {
        let mut index = EntryIndex::default();
        for (i, key) in keys.into_iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match key {
                IndexKey::Exact(path) => index.exact.entry(path).or_default().push(i),
                IndexKey::Prefix(prefix) => {
                    let mut node = &mut index.prefixes;
                    for segment in segments(&prefix) {
                        node = node.children.entry(segment.to_owned()).or_default();
                    }
                    node.entries.push(i);
                    index.prefixes_first = index.prefixes_first.or(Some(i));
                }
                IndexKey::Any => index.any.push(i),
            }
        }
        index
    }

    /// The first entry, in precedence order, for which `matches` holds, among those the path
    /// allows.
    pub fn first_match(&self, path: &str, mut matches: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut best: Option<u32> = None;
        if let Some(candidates) = self.exact.get(path) {
            consider(candidates, &mut best, &mut matches);
        }
        // Entries are numbered in precedence order: the trie is worth walking only if it holds
        // an entry ahead of the best match so far.
        if self.prefixes_first.is_some_and(|first| best.is_none_or(|best| first < best)) {
            let mut node = &self.prefixes;
            consider(&node.entries, &mut best, &mut matches);
            for segment in path.strip_prefix('/').into_iter().flat_map(|rest| rest.split('/')) {
                let Some(child) = node.children.get(segment) else { break };
                node = child;
                consider(&node.entries, &mut best, &mut matches);
            }
        }
        consider(&self.any, &mut best, &mut matches);
        best.map(|i| i as usize)
    }
}

/// Tries `candidates` (ascending) ahead of `best`; the first that matches becomes `best`.
fn consider(candidates: &[u32], best: &mut Option<u32>, matches: &mut impl FnMut(usize) -> bool) {
    for &i in candidates {
        if best.is_some_and(|b| i >= b) {
            return;
        }
        if matches(i as usize) {
            *best = Some(i);
            return;
        }
    }
}

/// Where a path regex can be filed: under the whole segments its literal start spells out.
/// `/api/v[0-9]+/.*` can only match paths under `/api`; a regex with an alternation, a group or
/// class at its start, or no `/`-terminated literal start may match anything.
pub fn regex_key(source: &str) -> IndexKey {
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
        Some(end) if literal.starts_with('/') => IndexKey::Prefix(literal[..end].to_owned()),
        _ => IndexKey::Any,
    }
}

/// `/a/b` → `a`, `b`; the root prefix "" has none.
fn segments(prefix: &str) -> impl Iterator<Item = &str> {
    prefix.strip_prefix('/').into_iter().flat_map(|rest| rest.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn index() -> EntryIndex {
        EntryIndex::new([
            IndexKey::Exact("/a/b".into()),  // 0
            IndexKey::Prefix("/a/b".into()), // 1
            IndexKey::Any,                   // 2
            IndexKey::Prefix("/a".into()),   // 3
            IndexKey::Prefix(String::new()), // 4
            IndexKey::Exact("/a/b".into()),  // 5
        ])
    }

    fn candidates(index: &EntryIndex, path: &str) -> Vec<usize> {
        let mut seen = Vec::new();
        index.first_match(path, |i| {
            seen.push(i);
            false
        });
        seen.sort_unstable();
        seen
    }

    #[test]
    fn a_path_meets_its_exact_entries_its_prefixes_and_the_rest() {
        let index = index();
        assert_eq!(candidates(&index, "/a/b"), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(candidates(&index, "/a/b/c"), vec![1, 2, 3, 4]);
        assert_eq!(candidates(&index, "/a/bc"), vec![2, 3, 4]);
        assert_eq!(candidates(&index, "/ab"), vec![2, 4]);
        assert_eq!(candidates(&index, "*"), vec![2, 4]);
    }

    #[test]
    fn regexes_are_filed_under_their_literal_segments() {
        assert_eq!(regex_key("/api/v[0-9]+/.*"), IndexKey::Prefix("/api".into()));
        assert_eq!(regex_key("/r49/[0-9]+"), IndexKey::Prefix("/r49".into()));
        assert_eq!(regex_key("/a/b/c"), IndexKey::Prefix("/a/b".into()));
        // `/a/` followed by `*`: the second `/` is optional, and `/a` alone could go on as
        // `/ab`, so no segment is sure.
        assert_eq!(regex_key("/a/*"), IndexKey::Prefix(String::new()));
        assert_eq!(regex_key("/a/b?"), IndexKey::Prefix("/a".into()));
        assert_eq!(regex_key("/ab{0,1}/x"), IndexKey::Prefix(String::new()));
        for any in ["/a|/b/c", "(?i)/a/b", "[/]a/b", ".*/a/", "a/b/"] {
            assert_eq!(regex_key(any), IndexKey::Any, "{any}");
        }
        assert_eq!(regex_key("/x[0-9]"), IndexKey::Prefix(String::new()));
    }

    #[test]
    fn the_first_entry_in_precedence_order_wins() {
        let index = index();
        assert_eq!(index.first_match("/a/b", |i| i == 3 || i == 5), Some(3));
        assert_eq!(index.first_match("/a/b/c", |i| i != 1), Some(2));
        assert_eq!(index.first_match("/x", |_| false), None);
    }

    #[test]
    fn later_candidates_are_not_tried_once_an_earlier_one_matched() {
        let index = index();
        let mut tried = Vec::new();
        index.first_match("/a/b", |i| {
            tried.push(i);
            true
        });
        assert_eq!(tried, vec![0]);
    }
}
