//! Programs from outside Rust that some tests need, and the one rule for
//! when one is missing: the test says, on the terminal, that it was skipped
//! and why, and passes — unless `SLUICE_REQUIRE_EXTERNAL=1` (set by
//! `.ci/run`, which installs them), where it fails. So `cargo test
//! --release` works on a fresh machine, and CI still runs everything.
//!
//! | program | unlocks |
//! | --- | --- |
//! | `xmllint` (`libxml2-utils`) | MM7 output validated against the official 3GPP schemas (`mm7::tests`) |
//! | `node` and `npm` (`nodejs`, `npm`) | SMPP interop against node-smpp (`tests/interop.rs`) |
//! | Python 3 with venv (`python3`, `python3-venv`), as the venv `clients/python/.venv` that `.ci/run` makes | the Python client against a real gateway: stub staleness, its example and its pytest suite (`tests/python_client.rs`) |
//! | `redis-server` (`redis-server`) | cluster mode against a real Redis, several gateways on loopback (`tests/cluster.rs`) |
//! | `promtool` (`prometheus`) | the alert rules and the Prometheus configuration checked by Prometheus's own tool (`tests/deploy_files.rs`) |
//! | `chromium` (`chromium`), with Node.js and `tests/interop`'s npm packages | an SMS fallback's landing page rendered in a real headless browser at a phone's viewport (`tests/mms.rs`) |
//!
//! This is library code only so that unit tests (`src/**/tests.rs`) and
//! integration tests (`tests/`) share it; the gateway never calls it.

use std::io::Write;
use std::process::{Command, Stdio};

/// Environment variable that turns a missing program into a failure.
pub const REQUIRE_ENV: &str = "SLUICE_REQUIRE_EXTERNAL";

/// A program some tests need.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// Name on `PATH`.
    pub name: &'static str,
    /// How to get it (Debian).
    pub install: &'static str,
    /// What it unlocks.
    pub unlocks: &'static str,
}

/// `xmllint`, for the MM7 schema tests.
pub const XMLLINT: Program = Program {
    name: "xmllint",
    install: "apt-get install libxml2-utils",
    unlocks: "MM7 schema validation",
};

/// Node.js, for the SMPP interop peer.
pub const NODE: Program = Program {
    name: "node",
    install: "apt-get install nodejs npm",
    unlocks: "SMPP interop with node-smpp",
};

/// npm, to install the SMPP interop peer.
pub const NPM: Program = Program {
    name: "npm",
    install: "apt-get install nodejs npm",
    unlocks: "SMPP interop with node-smpp",
};

/// Python 3, for the Python client's tests (`tests/python_client.rs`, which
/// runs the venv's Python, `clients/python/.venv/bin/python`).
pub const PYTHON3: Program = Program {
    name: "python3",
    install: "apt-get install python3 python3-venv, then .ci/run's Python step (venv at clients/python/.venv with pip install -e 'clients/python[dev]')",
    unlocks: "the Python client's tests against a real gateway",
};

/// `promtool`, Prometheus's checker, for `deploy/prometheus/`.
pub const PROMTOOL: Program = Program {
    name: "promtool",
    install: "apt-get install --no-install-recommends prometheus",
    unlocks: "promtool check rules/config of deploy/prometheus",
};

/// Chromium, Debian's, for the landing page in a real browser.
pub const CHROMIUM: Program = Program {
    name: "chromium",
    install: "apt-get install --no-install-recommends chromium",
    unlocks: "the landing page rendered in headless Chromium",
};

/// `redis-server`.
pub const REDIS_SERVER: Program = Program {
    name: "redis-server",
    install: "apt-get install redis-server",
    unlocks: "cluster mode against a real Redis (tests/cluster.rs)",
};

/// True when `program --version` runs and succeeds.
pub fn have(program: &Program) -> bool {
    Command::new(program.name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when missing programs fail tests (`SLUICE_REQUIRE_EXTERNAL` set to
/// anything but `0` or empty).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// True when every program is available. When one is missing, prints
/// `SKIPPED <test>: needs <program> …` on the real stderr (past the test
/// harness's capture, so it shows in `cargo test` output) and returns
/// false, for the test to return early.
///
/// # Panics
/// When a program is missing and [`required`] is true.
pub fn require(programs: &[&Program]) -> bool {
    let missing: Vec<&Program> = programs.iter().copied().filter(|p| !have(p)).collect();
    let Some(first) = missing.first() else {
        return true;
    };
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let why = format!(
        "needs {} ({}; install: {}), not found on PATH",
        names.join(" and "),
        first.unlocks,
        first.install
    );
    assert!(!required(), "{test} {why}, and {REQUIRE_ENV} is set");
    // Straight to the process's stderr: libtest captures only the print
    // macros, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    false
}

#[cfg(test)]
mod tests;
