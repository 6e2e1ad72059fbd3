//! The string formats the Kubernetes API server and the Gateway API CRDs enforce, as pure
//! functions returning the message a user sees. Each mirrors one pattern or CEL rule.

use std::net::IpAddr;

/// RFC 1123 label (namespaces, Service port names): lower-case alphanumerics and `-`,
/// starting and ending alphanumeric, at most 63 characters.
pub fn dns_label(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 63 {
        return Err(format!("{value:?} must be 1 to 63 characters"));
    }
    let ok = value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid name: lower-case letters, digits and '-', starting and ending with a letter or digit (RFC 1123)"
        ))
    }
}

/// RFC 1035 label (Service names): an RFC 1123 label that starts with a letter.
pub fn dns1035_label(value: &str) -> Result<(), String> {
    dns_label(value)?;
    if value.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid Service name: it must start with a lower-case letter (RFC 1035)"))
    }
}

/// RFC 1123 subdomain (most object names): dot-separated labels, at most 253 characters.
pub fn dns_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err(format!("{value:?} must be 1 to 253 characters"));
    }
    if value.split('.').all(|label| dns_label(label).is_ok()) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (RFC 1123)"
        ))
    }
}

/// An API group: empty (core) or a DNS subdomain.
pub fn group(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    dns_subdomain(value).map_err(|_| format!("{value:?} is not a valid API group"))
}

/// A kind: `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`, at most 63 characters.
pub fn kind(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && !value.ends_with('-')
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid kind"))
    }
}

/// An IANA service name (a named `targetPort`): at most 15 lower-case alphanumerics and `-`,
/// at least one letter, no leading, trailing or doubled `-`.
pub fn iana_service_name(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 15
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && value.bytes().any(|b| b.is_ascii_lowercase())
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid port name: at most 15 lower-case letters, digits and '-', with at least one letter"
        ))
    }
}

/// An HTTP header name (and, in the Gateway API, a query parameter name): an RFC 7230 token of
/// at most 256 characters.
pub fn header_name(value: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if value.is_empty() || value.len() > 256 {
        Err(format!("{value:?} must be 1 to 256 characters"))
    } else if value.bytes().all(token) {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid header name (an RFC 7230 token: letters, digits and !#$%&'*+-.^_`|~)"))
    }
}

/// The HTTPRoute path-value rules of the CRD for `Exact` and `PathPrefix`.
pub fn http_path(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err("must be an absolute path (start with '/')".to_owned());
    }
    if value.contains("//") {
        return Err("must not contain '//'".to_owned());
    }
    if value.contains("/./") || value.ends_with("/.") {
        return Err("must not contain '/./' or end with '/.'".to_owned());
    }
    if value.contains("/../") || value.ends_with("/..") {
        return Err("must not contain '/../' or end with '/..'".to_owned());
    }
    if value.contains("%2f") || value.contains("%2F") {
        return Err("must not contain '%2f' or '%2F'".to_owned());
    }
    if value.contains('#') {
        return Err("must not contain '#'".to_owned());
    }
    if value.contains('?') {
        return Err("must not contain '?' (match query parameters with queryParams)".to_owned());
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err("has a '%' that does not start a %XX escape".to_owned());
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&b)) {
            return Err(format!(
                "must only contain letters, digits, %XX escapes and -/._~!$&'()*+,;=:@ (found {:?})",
                char::from(b)
            ));
        }
        i += 1;
    }
    Ok(())
}

/// GRPCRoute `Exact` service: `^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`.
pub fn grpc_service(value: &str) -> Result<(), String> {
    let body = value.strip_prefix('.').unwrap_or(value);
    let ident = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if body.split('.').all(ident) {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid gRPC service name (a dotted name like echo_basic.grpcecho.GrpcEcho)"))
    }
}

/// GRPCRoute `Exact` method: `^[A-Za-z_][A-Za-z_0-9]*$`.
pub fn grpc_method(value: &str) -> Result<(), String> {
    let ok = value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid gRPC method name"))
    }
}

pub fn ip(value: &str) -> Result<IpAddr, String> {
    value.parse().map_err(|_| format!("{value:?} is not an IP address"))
}

/// An RFC 3339 timestamp, returned in UTC without fractional seconds
/// (`2024-05-01T10:00:00Z`), so that timestamps compare correctly as strings, as the filter
/// compares them.
pub fn rfc3339_utc(value: &str) -> Result<String, String> {
    let bad = || format!("{value:?} is not an RFC 3339 timestamp (like 2024-05-01T10:00:00Z)");
    let whole = whole_seconds(value).ok_or_else(bad)?;
    let timestamp: jiff::Timestamp = whole.parse().map_err(|_| bad())?;
    let t = jiff::tz::Offset::UTC.to_datetime(timestamp);
    Ok(format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second()))
}

/// `value` without its fractional seconds, if it is laid out as RFC 3339 asks:
/// `YYYY-MM-DDTHH:MM:SS`, optional fractional seconds, then `Z` or `+HH:MM`/`-HH:MM` (`T` and
/// `Z` in either case). jiff reads the Temporal format, a superset (minutes without seconds,
/// `+0200`, bracketed time zones...), and checks the values. The fraction is dropped here
/// (RFC 3339 allows any number of digits, jiff nine): offsets being whole minutes, dropping it
/// from the local time truncates the UTC time the same way.
fn whole_seconds(value: &str) -> Option<String> {
    let fits = |text: &str, layout: &[u8]| {
        text.len() == layout.len()
            && text.bytes().zip(layout).all(|(c, &l)| match l {
                b'0' => c.is_ascii_digit(),
                b'+' => c == b'+' || c == b'-',
                _ => c.eq_ignore_ascii_case(&l),
            })
    };
    let (date_time, rest) = (value.get(..19)?, value.get(19..)?);
    let offset = match rest.strip_prefix('.') {
        Some(fraction) => Some(fraction.trim_start_matches(|c: char| c.is_ascii_digit())).filter(|o| o.len() < fraction.len())?,
        None => rest,
    };
    // An offset's hours are 00 to 23 in RFC 3339 (jiff allows up to 25).
    let offset_ok = fits(offset, b"Z") || (fits(offset, b"+00:00") && offset.get(1..3).is_some_and(|hours| hours < "24"));
    (fits(date_time, b"0000-00-00T00:00:00") && offset_ok).then(|| format!("{date_time}{offset}"))
}

/// The closest of `candidates` to a misspelt `word` (case-insensitive equal, or at most two
/// edits away), for "did you mean" hints.
pub fn nearest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|&c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| d <= 2.min(c.len() / 3 + 1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// A Gateway API `Duration` (GEP-2257): one to four `<number><unit>` parts, numbers of at most
/// five digits, units `h`, `m`, `s`, `ms` (`1h30m`, `500ms`, `0s`); in milliseconds.
pub fn gateway_duration(value: &str) -> Result<u64, String> {
    let bad = || format!("{value:?} is not a duration like 500ms, 10s or 1h30m (GEP-2257)");
    let mut rest = value;
    let (mut total, mut parts) = (0u64, 0);
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += number * unit_ms;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(dns_label("echo-v1").is_ok());
        assert!(dns_label("Echo").is_err());
        assert!(dns_label("-echo").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(dns1035_label("1echo").is_err());
        assert!(dns_subdomain("echo.route-1").is_ok());
        assert!(dns_subdomain("echo..route").is_err());
        assert!(group("").is_ok());
        assert!(group("gateway.networking.k8s.io").is_ok());
        assert!(kind("Service").is_ok());
        assert!(kind("Ser vice").is_err());
    }

    #[test]
    fn port_names() {
        assert!(iana_service_name("http").is_ok());
        assert!(iana_service_name("8080").is_err());
        assert!(iana_service_name("http--alt").is_err());
        assert!(iana_service_name("a-very-long-port-name").is_err());
    }

    #[test]
    fn header_names_are_rfc7230_tokens() {
        assert!(header_name("X-Version").is_ok());
        assert!(header_name("x_v~1").is_ok());
        assert_eq!(
            header_name("x version").unwrap_err(),
            "\"x version\" is not a valid header name (an RFC 7230 token: letters, digits and !#$%&'*+-.^_`|~)"
        );
        assert!(header_name("x:y").is_err());
        assert!(header_name("").is_err());
    }

    #[test]
    fn path_values_follow_the_crd_rules() {
        for ok in ["/", "/v2/", "/a-b_c.d~e/%20x", "/foo:bar@baz"] {
            assert!(http_path(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("v2", "must be an absolute path (start with '/')"),
            ("/a//b", "must not contain '//'"),
            ("/a/./b", "must not contain '/./' or end with '/.'"),
            ("/a/.", "must not contain '/./' or end with '/.'"),
            ("/a/../b", "must not contain '/../' or end with '/..'"),
            ("/a%2Fb", "must not contain '%2f' or '%2F'"),
            ("/a#b", "must not contain '#'"),
            ("/a?b=1", "must not contain '?' (match query parameters with queryParams)"),
            ("/a b", "must only contain letters, digits, %XX escapes and -/._~!$&'()*+,;=:@ (found ' ')"),
            ("/a%zz", "has a '%' that does not start a %XX escape"),
        ] {
            assert_eq!(http_path(bad).unwrap_err(), why, "{bad}");
        }
    }

    #[test]
    fn grpc_names() {
        assert!(grpc_service("echo_basic.grpcecho.GrpcEcho").is_ok());
        assert!(grpc_service(".grpc.health.v1.Health").is_ok());
        assert!(grpc_service("echo/Echo").is_err());
        assert!(grpc_method("EchoTwo").is_ok());
        assert!(grpc_method("Echo.Two").is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_and_normalised_to_utc() {
        assert_eq!(rfc3339_utc("2024-05-01T10:00:00Z").unwrap(), "2024-05-01T10:00:00Z");
        assert_eq!(rfc3339_utc("2024-05-01T10:00:00.123Z").unwrap(), "2024-05-01T10:00:00Z");
        assert_eq!(rfc3339_utc("2024-05-01T01:30:00+02:00").unwrap(), "2024-04-30T23:30:00Z");
        assert_eq!(rfc3339_utc("2024-12-31T23:00:00-01:00").unwrap(), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc("2024-02-29t23:59:59.999999999z").unwrap(), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc("2016-12-31T23:59:60Z").unwrap(), "2016-12-31T23:59:59Z");
        assert_eq!(rfc3339_utc("1969-12-31T23:59:59.5Z").unwrap(), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_utc("2024-05-01T10:00:00.1234567891+01:00").unwrap(), "2024-05-01T09:00:00Z");
        for bad in [
            "2024-05-01",
            "2024-02-30T10:00:00Z",
            "2023-02-29T10:00:00Z",
            "2024-05-01T10:00:00",
            "yesterday",
            "2024-05-01T25:00:00Z",
            "2024-05-01T10:00Z",
            "2024-05-01 10:00:00Z",
            "20240501T100000Z",
            "2024-05-01T10:00:00.Z",
            "2024-05-01T10:00:00+0200",
            "2024-05-01T10:00:00+02",
            "2024-05-01T10:00:00+24:00",
            "2024-05-01T10:00:00+01:60",
            "2024-05-01T10:00:00Z[UTC]",
            "2024-05-01T10:00:00,5Z",
        ] {
            assert!(rfc3339_utc(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn near_misses() {
        assert_eq!(nearest("backendRef", &["matches", "backendRefs", "filters"]), Some("backendRefs"));
        assert_eq!(nearest("Matches", &["matches", "backendRefs"]), Some("matches"));
        assert_eq!(nearest("zzz", &["matches", "backendRefs"]), None);
    }

    #[test]
    fn durations_follow_gep_2257() {
        for (text, ms) in [("500ms", 500), ("10s", 10_000), ("1h30m", 5_400_000), ("0s", 0), ("1m1s1ms", 61_001)] {
            assert_eq!(gateway_duration(text), Ok(ms), "{text}");
        }
        for bad in ["", "1", "1.5s", "123456s", "1d", "-1s", "1s1s1s1s1s", "s"] {
            assert!(gateway_duration(bad).is_err(), "{bad}");
        }
    }
}
