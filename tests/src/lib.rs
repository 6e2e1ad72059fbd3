//! End-to-end tests of meshroute: stock Envoy, the real filter module, real HTTP and gRPC echo
//! backends and real clients. [`mesh::Mesh`] sets up one small mesh per test; [`client`] and
//! [`grpc`] talk to it, and [`proxyless`] runs proxyless gRPC clients routed by `meshroute serve`.

pub mod client;
pub mod echo;
pub mod grpc;
pub mod live;
pub mod load;
pub mod mesh;
pub mod proxyless;
mod serve;
pub mod tools;
