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
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
