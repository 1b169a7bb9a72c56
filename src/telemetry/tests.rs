use super::*;

use std::io::Write;

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<parking_lot::Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'w self) -> Buffer {
        self.clone()
    }
}

/// What `format` writes for one event carrying a forged peer string.
fn log_one(format: LogFormat) -> String {
    let buf = Buffer::default();
    let sub = subscriber(
        format,
        tracing_subscriber::EnvFilter::new("info"),
        buf.clone(),
    );
    tracing::subscriber::with_default(sub, || {
        let span = tracing::info_span!("session", conn = 7);
        let _g = span.enter();
        let forged = "evil\n2025-01-01T00:00:00Z  INFO sluice::gateway: fake";
        tracing::info!(target: "sluice::test", peer = %crate::model::LogSafe::new(forged), n = 3, "bind refused");
        tracing::debug!(target: "sluice::test", "filtered out");
    });
    String::from_utf8(buf.0.lock().clone()).unwrap()
}

#[test]
fn json_logs_are_one_object_per_line_with_fields_at_the_top() {
    let out = log_one(LogFormat::Json);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["target"], "sluice::test");
    assert_eq!(v["message"], "bind refused");
    assert_eq!(v["n"], 3);
    assert_eq!(v["span"]["name"], "session");
    assert!(v["timestamp"].is_string());
    // The peer's string arrives as LogSafe made it: quoted, its newline
    // escaped, inside one JSON string.
    assert_eq!(
        v["peer"],
        r#""evil\n2025-01-01T00:00:00Z  INFO sluice::gateway: fake""#
    );
}

#[test]
fn text_logs_stay_one_line_per_event() {
    let out = log_one(LogFormat::Text);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("bind refused"), "{out}");
    assert!(out.contains(r#""evil\n2025"#), "{out}");
}

#[test]
fn metrics_carry_build_info_process_figures_and_the_journal_disk() {
    let handle = metrics_handle();
    let dir = tempfile::tempdir().unwrap();
    watch_journal_disk(dir.path());
    collect_on_scrape();
    let text = handle.render();
    assert!(
        text.contains(&format!("sluice_build_info{{version=\"{VERSION}\"}} 1")),
        "{text}"
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "sluice_journal_disk_available_bytes",
        "sluice_journal_disk_size_bytes",
    ] {
        let value = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing in {text}"));
        assert!(
            value > 0.0 || name == "process_cpu_seconds_total",
            "{name} = {value}"
        );
    }
    let (available, size) = disk_space(dir.path()).unwrap();
    assert!(0 < available && available <= size);
}
