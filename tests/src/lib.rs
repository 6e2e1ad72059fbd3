//! End-to-end tests of meshroute: stock Envoy, the real filter module, real echo backends and a
//! real HTTP client. [`mesh::Mesh`] sets up one small mesh per test; [`client`] talks to it.

pub mod client;
pub mod echo;
pub mod mesh;
pub mod tools;
