//! The protobuf code in `src/ingest/gen/` is generated from `proto/` and
//! committed, so the crate builds without `protoc`. This test regenerates it
//! (with `protox`, a pure-Rust protobuf compiler) and fails when the committed
//! copy is stale. Run with `SLUICE_BLESS=1` to rewrite it.

use std::path::Path;

#[test]
fn generated_protobuf_code_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(
        [root.join("proto/sluice/v1/ingest.proto")],
        [root.join("proto")],
    )
    .expect("proto compiles");
    let out = tempfile::tempdir().unwrap();
    prost_build::Config::new()
        // `bytes` fields as `bytes::Bytes`: media uploads are sliced, not copied.
        .bytes(["."])
        .out_dir(out.path())
        .compile_fds(fds)
        .expect("prost generates");
    let fresh = std::fs::read_to_string(out.path().join("sluice.v1.rs")).unwrap();
    let committed_path = root.join("src/ingest/gen/sluice.v1.rs");
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&committed_path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "src/ingest/gen/sluice.v1.rs is stale: run `SLUICE_BLESS=1 cargo test --test bootstrap`"
    );
}
