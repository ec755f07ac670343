//! Compiles `proto/strata/v1/*.proto` with protox (a pure-Rust protobuf
//! compiler, so no `protoc` is needed) and generates the tonic client and
//! server code from the resulting descriptor set, which is also saved for
//! gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/strata/v1/strata.proto",
        "proto/strata/v1/security.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("strata_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Batches and record payloads decode as `bytes::Bytes`, slices of
        // the request buffer: no copy per batch or per record.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
