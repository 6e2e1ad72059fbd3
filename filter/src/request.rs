//! The parts of a request that routing looks at, borrowed from wherever they live.

/// A request as the matcher sees it. Header names are compared case-insensitively; Envoy hands
/// them over in lower case already.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// `:path` as received: the path and, after `?`, the query string.
    pub path_and_query: &'a str,
    pub headers: &'a [(String, String)],
}

impl<'a> Request<'a> {
    /// Splits `:path` into the path proper and the raw query string (without `?`; the fragment
    /// never reaches a server).
    pub fn path_and_query(&self) -> (&'a str, &'a str) {
        let raw = self.path_and_query;
        let raw = raw.split_once('#').map_or(raw, |(before, _)| before);
        raw.split_once('?').unwrap_or((raw, ""))
    }

    /// The values of every header called `name` (given in lower case), in the order received.
    pub fn header_values(&self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The first value of query parameter `name`, as sent: names and values are compared as they
/// appear in the query, not percent-decoded, as Envoy's router compares them
/// (`query_parameters`), so that a route means the same with the filter, in native mode and in
/// Istio. Case-sensitive; a parameter without `=` has the empty value.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn splits_path_query_and_fragment() {
        let req = Request { method: "GET", path_and_query: "/a/b?x=1&y#frag", headers: &[] };
        assert_eq!(req.path_and_query(), ("/a/b", "x=1&y"));
        let req = Request { method: "GET", path_and_query: "/a", headers: &[] };
        assert_eq!(req.path_and_query(), ("/a", ""));
    }

    #[test]
    fn query_param_is_the_first_value_as_sent() {
        assert_eq!(query_param("animal=whale&animal=dolphin", "animal"), Some("whale"));
        assert_eq!(query_param("a%20b=c+d%2F&a b=x", "a b"), Some("x"));
        assert_eq!(query_param("q=%31", "q"), Some("%31"));
        assert_eq!(query_param("flag", "flag"), Some(""));
        assert_eq!(query_param("k=a=b", "k"), Some("a=b"));
        assert_eq!(query_param("Animal=whale", "animal"), None);
    }
}
