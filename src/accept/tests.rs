use std::io;
use std::time::Duration;

use super::AcceptBackoff;
use crate::model::logsafe::capture::capture;

fn emfile() -> io::Error {
    io::Error::from_raw_os_error(24)
}

#[tokio::test(start_paused = true)]
async fn resource_errors_back_off_exponentially_and_a_success_resets() {
    let mut b = AcceptBackoff::new("test");
    let waits: Vec<u64> = (0..10)
        .map(|_| b.record(&emfile()).as_millis() as u64)
        .collect();
    assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    b.succeeded();
    assert_eq!(b.record(&emfile()), Duration::from_millis(10));
    // ENFILE and ENOBUFS too.
    assert_eq!(
        b.record(&io::Error::from_raw_os_error(23)),
        Duration::from_millis(20)
    );
    assert_eq!(
        b.record(&io::Error::from_raw_os_error(105)),
        Duration::from_millis(40)
    );
}

#[tokio::test(start_paused = true)]
async fn errors_of_one_connection_are_retried_at_once() {
    let mut b = AcceptBackoff::new("test");
    for kind in [
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::Interrupted,
    ] {
        assert_eq!(b.record(&io::Error::from(kind)), Duration::ZERO);
    }
    assert_eq!(
        b.record(&io::Error::from_raw_os_error(71)), // EPROTO
        Duration::ZERO
    );
    // They do not lengthen the resource back-off either.
    assert_eq!(b.record(&emfile()), Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn a_failing_accept_loop_sleeps_and_logs_at_a_bounded_rate() {
    let (logs, _guard) = capture("sluice::accept=warn");
    let mut b = AcceptBackoff::new("test");
    let start = tokio::time::Instant::now();
    let mut failures = 0u64;
    // A minute of EMFILE, with an accept getting through now and then (a
    // descriptor freed), as at the limit under load.
    while start.elapsed() < Duration::from_secs(60) {
        b.failed(&emfile()).await;
        failures += 1;
        if failures.is_multiple_of(3) {
            b.succeeded();
        }
    }
    // Sleeping, not spinning: each failure costs at least 10 ms.
    assert!(failures <= 60_000 / 10, "{failures} failures in a minute");
    let lines = logs.lines();
    // The first at once, then one per 10 s.
    assert!(
        (6..=7).contains(&lines.len()),
        "{} lines: {lines:#?}",
        lines.len()
    );
    assert!(lines[0].contains("accept failed"), "{}", lines[0]);
    assert!(lines[1].contains("failures="), "{}", lines[1]);
}
