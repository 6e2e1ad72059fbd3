//! meshroute: Gateway API mesh routing (GAMMA) for stock Envoy.
//!
//! The core — [`document`] (the published route table), [`table`] (its compiled, indexed form),
//! [`index`] (its matches by path), [`conditions`] (what they ask beyond the path, as the index
//! carries it), [`matching`] (HTTPRoute matches), [`grpc`] (GRPCRoute matches), [`precedence`] (the order
//! between them), [`choice`] (weighted backend choice), [`decision`] (what happens to a request)
//! and [`reply`] (the filter's own answers) — is plain Rust, shared with the `meshroute` command
//! so that a dry run executes exactly what Envoy executes. The proxy-wasm glue in `plugin`
//! exists only in the wasm module: it reads the request, asks [`decision::decide`], applies the
//! answer.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod choice;
pub mod conditions;
pub mod decision;
pub mod document;
pub mod filters;
pub mod grpc;
pub mod header_modifier;
pub mod index;
pub mod matching;
pub mod metrics;
pub mod mirror;
pub mod policy;
pub mod precedence;
pub mod reply;
pub mod request;
pub mod table;
pub mod url;

#[cfg(test)]
mod precedence_tests;

#[cfg(target_os = "wasi")]
mod counters;
#[cfg(target_os = "wasi")]
mod plugin;
#[cfg(target_os = "wasi")]
mod shared_table;

/// The request header through which the filter tells Envoy's router which cluster to use. A
/// client's copy is always overwritten or removed, and the route strips it before forwarding.
pub const SELECTION_HEADER: &str = "x-meshroute-cluster";

/// The request header in which the listener names the connection's destination (its local
/// address: a Service ClusterIP and port) when the table says so
/// ([`document::TableDocument::destination_header`]). Envoy overwrites a client's copy before
/// any filter runs (the connection manager's early header mutation), and the route strips it
/// before forwarding.
pub const DESTINATION_HEADER: &str = "x-meshroute-destination";
