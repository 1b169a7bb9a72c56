//! libFuzzer entry for `sluice::fuzzing::history_segment` (the body, its input layout
//! and its invariants are documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::history_segment(data));
