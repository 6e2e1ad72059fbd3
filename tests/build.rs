//! Generates the gRPC echo service's client and server from `proto/grpcecho.proto`, with the
//! `protoc` that the `protoc-bin-vendored` crate ships, so that no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpcecho.proto";
    println!("cargo:rerun-if-changed={proto}");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Metadata maps keep their names in order, for stable output.
    config.btree_map(["."]);
    tonic_prost_build::configure().build_transport(false).compile_with_config(config, &[proto], &["proto"])?;
    Ok(())
}
