//! Generates the gRPC and protobuf code with `protox`, a pure-Rust protobuf compiler, so
//! building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "sightline/v1/observations.proto",
        "sightline/v1/envelope.proto",
        "sightline/v1/enrollment.proto",
        "sightline/v1/telemetry.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    // The encoded descriptors, for the collector's optional gRPC server reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("sightline_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
