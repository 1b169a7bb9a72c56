//! libFuzzer entry for `sluice::fuzzing::link_store` (the body, its input layout
//! and its invariants are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::link_store(data));
