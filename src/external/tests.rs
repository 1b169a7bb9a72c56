use super::*;

const MISSING: Program = Program {
    name: "sluice-test-no-such-program",
    install: "nothing",
    unlocks: "nothing",
};

#[test]
fn a_missing_program_skips_unless_required() {
    if required() {
        // Under .ci/run the skip path is a failure by design.
        let r = std::panic::catch_unwind(|| require(&[&MISSING]));
        assert!(r.is_err(), "a missing program fails when required");
        return;
    }
    assert!(!have(&MISSING));
    assert!(!require(&[&MISSING]));
}

#[test]
fn present_programs_pass() {
    // `cargo` runs this test, so it is on PATH.
    let cargo = Program {
        name: "cargo",
        install: "rustup",
        unlocks: "this test",
    };
    assert!(have(&cargo));
    assert!(require(&[&cargo]));
    assert!(require(&[]));
}
