//! Compiles the kubelet API definitions in `proto/` with the pure-Rust `protox` compiler, so the
//! build needs no `protoc`, and generates the tonic clients and servers from the descriptor set.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "deviceplugin/v1beta1/api.proto",
        "podresources/v1/api.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
