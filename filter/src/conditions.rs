//! What each match of a table asks of a request beyond its index key (a path regex, the method,
//! headers, query parameters, a gRPC call's service and method), stored flat for the whole
//! table: its names and literal values in one string, its regexes in one array, and each
//! match's first condition inline where the index's slot carries it ([`MatchConditions`]), the
//! others in one array. Most matches that ask anything ask one thing, so trying a candidate
//! reads its slot and the text it names, where the compiled matches
//! ([`crate::matching::HttpMatch`], [`crate::grpc::GrpcMatch`]) would chase a Vec and a String
//! per condition. A match's conditions all hold or the match does not take the request; a
//! match without any is decided by its index key alone.

use crate::grpc::grpc_call;
use crate::index::{index_u32, Span};
use crate::matching::{FullRegex, ValueMatch};
use crate::request::{query_param, Request};

/// One condition of a compiled match, as it hands it over to [`ConditionsBuilder::file`].
#[derive(Debug, Clone, Copy)]
pub enum Ask<'m> {
    /// The whole path (without the query) matches the regex.
    PathRegex(&'m FullRegex),
    /// `:method` equals this (upper case, as the CRD has it).
    Method(&'m str),
    /// Some value of the header (its name in lower case) matches.
    Header(&'m str, &'m ValueMatch),
    /// The first value of the query parameter, as sent, matches.
    QueryParam(&'m str, &'m ValueMatch),
    /// The path is a gRPC call `/SERVICE/METHOD` whose service matches.
    GrpcService(&'m ValueMatch),
    /// The path is a gRPC call `/SERVICE/METHOD` whose method matches.
    GrpcMethod(&'m ValueMatch),
}

/// A value as stored: a span of [`Conditions::text`] or an index into its regexes.
#[derive(Debug, Clone, Copy)]
enum Value {
    Exact(Span),
    Regex(u32),
}

/// [`Ask`] as stored, 24 bytes: names and values are spans of the table's text.
#[derive(Debug, Clone, Copy)]
enum Condition {
    PathRegex(u32),
    Method(Span),
    Header(Span, Value),
    QueryParam(Span, Value),
    GrpcService(Value),
    GrpcMethod(Value),
}

/// A match's conditions as its candidate carries them: the first inline, the others (rare) in
/// [`Conditions`]. 32 bytes.
#[derive(Debug, Clone, Copy)]
pub struct MatchConditions {
    first: Option<Condition>,
    rest: Span,
}

/// The text, regexes and further conditions of one table's [`MatchConditions`].
#[derive(Debug, Default)]
pub struct Conditions {
    /// Second and later conditions of every match.
    rest: Vec<Condition>,
    text: String,
    regexes: Vec<FullRegex>,
}

/// Files the conditions of one match after another, then is the [`Conditions`].
#[derive(Debug, Default)]
pub struct ConditionsBuilder {
    conditions: Conditions,
}

impl ConditionsBuilder {
    /// Files one match's conditions, to be read with the finished [`Conditions`].
    pub fn file<'m>(&mut self, asks: impl IntoIterator<Item = Ask<'m>>) -> MatchConditions {
        let mut first = None;
        let start = index_u32(self.conditions.rest.len());
        for ask in asks {
            let condition = match ask {
                Ask::PathRegex(regex) => Condition::PathRegex(self.regex(regex)),
                Ask::Method(method) => Condition::Method(self.text(method)),
                Ask::Header(name, value) => Condition::Header(self.text(name), self.value(value)),
                Ask::QueryParam(name, value) => Condition::QueryParam(self.text(name), self.value(value)),
                Ask::GrpcService(value) => Condition::GrpcService(self.value(value)),
                Ask::GrpcMethod(value) => Condition::GrpcMethod(self.value(value)),
            };
            if first.is_none() {
                first = Some(condition);
            } else {
                self.conditions.rest.push(condition);
            }
        }
        MatchConditions { first, rest: Span { start, end: index_u32(self.conditions.rest.len()) } }
    }

    pub fn build(self) -> Conditions {
        self.conditions
    }

    fn text(&mut self, text: &str) -> Span {
        let start = index_u32(self.conditions.text.len());
        self.conditions.text.push_str(text);
        Span { start, end: index_u32(self.conditions.text.len()) }
    }

    fn regex(&mut self, regex: &FullRegex) -> u32 {
        self.conditions.regexes.push(regex.clone());
        index_u32(self.conditions.regexes.len() - 1)
    }

    fn value(&mut self, value: &ValueMatch) -> Value {
        match value {
            ValueMatch::Exact(exact) => Value::Exact(self.text(exact)),
            ValueMatch::Regex(regex) => Value::Regex(self.regex(regex)),
        }
    }
}

impl Conditions {
    /// Whether every condition of a match holds for `request`, whose `:path` is already split
    /// into `path` and `query` ([`Request::path_and_query`]).
    pub fn hold(&self, conditions: &MatchConditions, request: &Request<'_>, path: &str, query: &str) -> bool {
        let Some(first) = conditions.first else { return true };
        let rest = self.rest.get(conditions.rest.range()).unwrap_or_default();
        std::iter::once(&first).chain(rest).all(|&condition| match condition {
            Condition::PathRegex(regex) => self.regex_matches(regex, path),
            Condition::Method(method) => self.text_at(method) == request.method,
            Condition::Header(name, value) => request.header_values(self.text_at(name)).any(|v| self.value_matches(value, v)),
            Condition::QueryParam(name, value) => {
                query_param(query, self.text_at(name)).is_some_and(|v| self.value_matches(value, v))
            }
            Condition::GrpcService(value) => grpc_call(path).is_some_and(|(service, _)| self.value_matches(value, service)),
            Condition::GrpcMethod(value) => grpc_call(path).is_some_and(|(_, method)| self.value_matches(value, method)),
        })
    }

    fn text_at(&self, span: Span) -> &str {
        self.text.get(span.range()).unwrap_or_default()
    }

    fn regex_matches(&self, regex: u32, value: &str) -> bool {
        self.regexes.get(regex as usize).is_some_and(|regex| regex.matches(value))
    }

    fn value_matches(&self, expected: Value, value: &str) -> bool {
        match expected {
            Value::Exact(exact) => self.text_at(exact) == value,
            Value::Regex(regex) => self.regex_matches(regex, value),
        }
    }
}

/// One match compiled on its own, for the tests of a single match: whether every condition it
/// asks holds, by [`Conditions::hold`] as a table does.
#[cfg(test)]
pub(crate) fn hold_alone<'m>(asks: impl IntoIterator<Item = Ask<'m>>, request: &Request<'_>) -> bool {
    let mut builder = ConditionsBuilder::default();
    let conditions = builder.file(asks);
    let (path, query) = request.path_and_query();
    builder.build().hold(&conditions, request, path, query)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_condition_is_small() {
        assert!(std::mem::size_of::<Condition>() <= 24);
        assert!(std::mem::size_of::<MatchConditions>() <= 32);
    }

    #[test]
    fn every_condition_of_a_match_must_hold_and_none_is_no_condition() {
        let tenant = ValueMatch::Exact("t1".into());
        let id = ValueMatch::Regex(FullRegex::new("[0-9]+").unwrap());
        let service = ValueMatch::Exact("pkg.Svc".into());
        let mut builder = ConditionsBuilder::default();
        let http = builder.file([Ask::Method("POST"), Ask::Header("x-tenant", &tenant), Ask::QueryParam("id", &id)]);
        let grpc = builder.file([Ask::GrpcService(&service)]);
        let none = builder.file([]);
        let conditions = builder.build();
        let headers = [("x-tenant".to_owned(), "t1".to_owned())];
        let hold = |span, method, path_and_query| {
            let request = Request { method, path_and_query, headers: &headers };
            let (path, query) = request.path_and_query();
            conditions.hold(&span, &request, path, query)
        };
        assert!(hold(http, "POST", "/a?id=12"));
        assert!(!hold(http, "GET", "/a?id=12"));
        assert!(!hold(http, "POST", "/a?id=x12"));
        assert!(hold(grpc, "POST", "/pkg.Svc/Get"));
        assert!(!hold(grpc, "POST", "/pkg.Svc"));
        assert!(hold(none, "GET", "*"));
    }
}
