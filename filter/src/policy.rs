//! A rule's `timeouts` (GEP-1742) and `retry` (GEP-1731), as Envoy's router takes them per
//! request: the `x-envoy-*` control headers it reads when an earlier filter sets them (measured
//! on Envoy 1.40.0: honoured from a filter whatever the connection manager thinks of the client,
//! removed by the router before the request leaves).

use serde::Serialize;

use crate::document::{RetryDoc, TimeoutsDoc};

/// Every router control header a client could send to change timeouts or retries: a rule with a
/// policy removes them all before it sets its own, so a client never widens or narrows it.
pub const ROUTER_CONTROL_HEADERS: &[&str] = &[
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-header-names",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-rq-timeout-alt-response",
];

/// How long a request may take and what is retried; milliseconds, 0 for "no timeout".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestPolicy {
    /// `timeouts.request`: the whole request, retries included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_ms: Option<u64>,
    /// `timeouts.backendRequest`: each attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_request_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retry {
    /// HTTP status codes worth another attempt, 400–599.
    pub codes: Vec<u16>,
    /// Retries after the first attempt: a backend sees at most `1 + attempts` tries.
    pub attempts: u32,
}

impl RequestPolicy {
    pub fn compile(timeouts: Option<&TimeoutsDoc>, retry: Option<&RetryDoc>) -> Result<Self, String> {
        let (request_ms, backend_request_ms) = timeouts.map_or((None, None), |t| (t.request_ms, t.backend_request_ms));
        if let (Some(request), Some(backend)) = (request_ms, backend_request_ms) {
            if request != 0 && backend > request {
                return Err(format!("backendRequest timeout {backend} ms is longer than the request timeout {request} ms"));
            }
        }
        let retry = retry
            .map(|r| {
                if let Some(code) = r.codes.iter().find(|c| !(400..=599).contains(*c)) {
                    return Err(format!("retry code {code} is not between 400 and 599"));
                }
                Ok(Retry { codes: r.codes.clone(), attempts: r.attempts })
            })
            .transpose()?;
        Ok(RequestPolicy { request_ms, backend_request_ms, retry })
    }

    pub fn is_empty(&self) -> bool {
        *self == RequestPolicy::default()
    }

    /// The router control headers that give a request this policy, to set after removing every
    /// [`ROUTER_CONTROL_HEADERS`] the client sent. Retries go on listed status codes only;
    /// `x-envoy-max-retries` is always written, since Envoy retries once when it is missing.
    pub fn router_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(ms) = self.request_ms {
            headers.push(("x-envoy-upstream-rq-timeout-ms", ms.to_string()));
        }
        if let Some(ms) = self.backend_request_ms.filter(|&ms| ms > 0) {
            headers.push(("x-envoy-upstream-rq-per-try-timeout-ms", ms.to_string()));
        }
        if let Some(retry) = &self.retry {
            headers.push(("x-envoy-max-retries", retry.attempts.to_string()));
            if !retry.codes.is_empty() {
                headers.push(("x-envoy-retry-on", "retriable-status-codes".to_owned()));
                let codes: Vec<String> = retry.codes.iter().map(u16::to_string).collect();
                headers.push(("x-envoy-retriable-status-codes", codes.join(",")));
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn policy(request: Option<u64>, backend: Option<u64>, retry: Option<(&[u16], u32)>) -> Result<RequestPolicy, String> {
        let timeouts = TimeoutsDoc { request_ms: request, backend_request_ms: backend };
        let retry = retry.map(|(codes, attempts)| RetryDoc { codes: codes.to_vec(), attempts, backoff_ms: None });
        RequestPolicy::compile(Some(&timeouts), retry.as_ref())
    }

    #[test]
    fn timeouts_and_retries_become_router_headers() {
        let p = policy(Some(1000), Some(300), Some((&[503, 500], 2))).unwrap();
        assert_eq!(
            p.router_headers(),
            [
                ("x-envoy-upstream-rq-timeout-ms", "1000".to_owned()),
                ("x-envoy-upstream-rq-per-try-timeout-ms", "300".to_owned()),
                ("x-envoy-max-retries", "2".to_owned()),
                ("x-envoy-retry-on", "retriable-status-codes".to_owned()),
                ("x-envoy-retriable-status-codes", "503,500".to_owned()),
            ]
        );
    }

    #[test]
    fn zero_means_no_timeout_and_no_retries_is_written() {
        let p = policy(Some(0), None, Some((&[], 0))).unwrap();
        assert_eq!(
            p.router_headers(),
            [("x-envoy-upstream-rq-timeout-ms", "0".to_owned()), ("x-envoy-max-retries", "0".to_owned())]
        );
    }

    #[test]
    fn a_backend_request_longer_than_the_request_is_refused_unless_the_request_has_none() {
        assert!(policy(Some(300), Some(500), None).is_err());
        assert!(policy(Some(0), Some(500), None).is_ok());
        assert!(policy(None, None, Some((&[200], 1))).is_err());
    }
}
