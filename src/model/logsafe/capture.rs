//! Test helper: captures what the `fmt` subscriber writes, as the log lines
//! an operator would read.

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

/// Formatted log output shared with the subscriber.
#[derive(Clone, Default, Debug)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }

    /// The lines written so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A subscriber writing lines as `sluice run` does (without colours), at
/// `filter` (an `EnvFilter` directive), into the returned buffer, for this
/// thread until the guard drops.
pub(crate) fn capture(filter: &str) -> (Captured, tracing::subscriber::DefaultGuard) {
    // With a single registered dispatcher, tracing-core computes a
    // callsite's interest from the default of whichever thread hits it first:
    // another test's thread would cache "never" for the callsites this test
    // watches. A registered global default (that records nothing) makes it
    // ask every live dispatcher instead.
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let _ =
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    });
    let out = Captured::default();
    let w = out.clone();
    let sub = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    (out, tracing::subscriber::set_default(sub))
}
