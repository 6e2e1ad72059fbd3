//! The parts of a request that routing looks at, borrowed from wherever they live.

use std::borrow::Cow;

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

/// The first value of query parameter `name`, percent-decoded (`+` is a space), as Envoy's own
/// query-parameter matcher sees it. Names and values are case-sensitive. Borrowed from the
/// query unless escaped: a request allocates nothing for its plain parameters.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept as they are. Text without either
/// is returned as it is.
pub fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex)) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(byte: &u8) -> Option<u8> {
    (*byte as char).to_digit(16).map(|d| d as u8)
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
    fn query_param_is_first_and_decoded() {
        assert_eq!(query_param("animal=whale&animal=dolphin", "animal").as_deref(), Some("whale"));
        assert_eq!(query_param("a%20b=c+d%2F", "a b").as_deref(), Some("c d/"));
        assert_eq!(query_param("flag", "flag").as_deref(), Some(""));
        assert_eq!(query_param("Animal=whale", "animal"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
