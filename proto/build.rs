//! Compiles the .proto files with protox (a pure-Rust protobuf compiler), so no system
//! `protoc` is needed, and writes the encoded descriptor set for gRPC server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "sae/v1/management.proto",
        "sae/v1/cluster.proto",
        "sae/v1/nic.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("sae_descriptor.bin"), fds.encode_to_vec())?;
    // With the `serde` feature every message and oneof derives `serde::Serialize` (snake_case field
    // names as in the .proto, 64-bit integers as JSON numbers), for the JSON output of `saectl`.
    tonic_prost_build::configure()
        .type_attribute(
            ".sae.v1",
            r#"#[cfg_attr(feature = "serde", derive(serde::Serialize))]"#,
        )
        .type_attribute(
            ".sae.v1.SubscriberRef.key",
            r#"#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]"#,
        )
        .compile_fds(fds)?;
    Ok(())
}
