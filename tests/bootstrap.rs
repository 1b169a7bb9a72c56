//! The protobuf code in `src/ingest/gen/` is generated from `proto/` and
//! committed, so the crate builds without `protoc`. This test regenerates it
//! (with `protox`, a pure-Rust protobuf compiler) and fails when the committed
//! copy is stale. Run with `SLUICE_BLESS=1` to rewrite it.
//!
//! Three files: the messages of both `.proto` files (prost,
//! `sluice.v1.rs`), the gRPC service `sluice.v1.Gateway` (tonic's prost
//! codegen, `sluice.v1.gateway.rs`, naming the messages of `ingest::pb`),
//! and the encoded file descriptor set the gRPC door's reflection serves
//! (`sluice.v1.fds.bin`).

use std::path::Path;

#[test]
fn generated_protobuf_code_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(
        [
            root.join("proto/sluice/v1/ingest.proto"),
            root.join("proto/sluice/v1/gateway.proto"),
        ],
        [root.join("proto")],
    )
    .expect("proto compiles");
    let out = tempfile::tempdir().unwrap();
    prost_build::Config::new()
        // `bytes` fields as `bytes::Bytes`: media uploads are sliced, not copied.
        .bytes(["."])
        .out_dir(out.path())
        .compile_fds(fds.clone())
        .expect("prost generates");
    let messages = std::fs::read(out.path().join("sluice.v1.rs")).unwrap();
    check(root, "src/ingest/gen/sluice.v1.rs", &messages);

    // The service only: its messages are `ingest::pb`'s.
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .build_transport(false)
        .extern_path(".sluice.v1", "crate::ingest::pb")
        .out_dir(out.path())
        .compile_fds(fds.clone())
        .expect("tonic generates");
    let service = std::fs::read(out.path().join("sluice.v1.rs")).unwrap();
    check(root, "src/ingest/gen/sluice.v1.gateway.rs", &service);

    check(
        root,
        "src/ingest/gen/sluice.v1.fds.bin",
        &prost::Message::encode_to_vec(&fds),
    );
}

/// Fails when the committed `path` differs from `fresh` (rewrites it first
/// under `SLUICE_BLESS`).
fn check(root: &Path, path: &str, fresh: &[u8]) {
    let committed_path = root.join(path);
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&committed_path, fresh).unwrap();
    }
    let committed = std::fs::read(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{path} is stale: run `SLUICE_BLESS=1 cargo test --release --test bootstrap`"
    );
}
