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
    let b = value.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = value.get(from..from + len)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && (at(10, b'T') || at(10, b't')) && at(13, b':') && at(16, b':')) {
        return Err(bad());
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2))
    else {
        return Err(bad());
    };
    let mut rest = value.get(19..).ok_or_else(bad)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = fraction.get(digits..).ok_or_else(bad)?;
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            let (Some(h), Some(m)) =
                (rest.get(1..3).and_then(|s| s.parse::<i64>().ok()), rest.get(4..6).and_then(|s| s.parse::<i64>().ok()))
            else {
                return Err(bad());
            };
            if rest.len() != 6 || rest.as_bytes().get(3) != Some(&b':') || h > 23 || m > 59 {
                return Err(bad());
            }
            sign * (h * 60 + m)
        }
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    Ok(format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60))
}

/// Days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
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
        for bad in ["2024-05-01", "2024-02-30T10:00:00Z", "2024-05-01T10:00:00", "yesterday", "2024-05-01T25:00:00Z"] {
            assert!(rfc3339_utc(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn near_misses() {
        assert_eq!(nearest("backendRef", &["matches", "backendRefs", "filters"]), Some("backendRefs"));
        assert_eq!(nearest("Matches", &["matches", "backendRefs"]), Some("matches"));
        assert_eq!(nearest("zzz", &["matches", "backendRefs"]), None);
    }
}
