//! Telemetry: the process-wide `metrics` recorder rendered in Prometheus text
//! format, metric descriptions, logging set-up (text or JSON lines), and the
//! routes of the internal door serving `/metrics`, `/healthz` and `/readyz`
//! ([`router`], served by [`crate::httpd`] beside the admin API; never on the
//! public door).
//!
//! Besides the gateway's own metrics, every scrape of `/metrics` reads the
//! process's figures (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`,
//! `process_threads`; the `metrics-process` crate, from `/proc/self`) and,
//! once [`watch_journal_disk`] named it, the free and total bytes of the
//! journal's file system. `sluice_build_info{version}` is 1 from the start.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::StatusCode;
use hyper::header::CONTENT_TYPE;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::settings::LogFormat;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The `process_*` collector, read at every scrape.
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// The journal directory whose file system `/metrics` reports.
static JOURNAL_DISK: OnceLock<PathBuf> = OnceLock::new();

/// The version `sluice_build_info` carries (the crate's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            metrics::gauge!("sluice_build_info", "version" => VERSION).set(1.0);
            PROCESS
                .get_or_init(metrics_process::Collector::default)
                .describe();
            handle
        })
        .clone()
}

/// Registers a description for every metric sluice emits.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sluice_messages_accepted_total",
        "Messages accepted (durable) per tenant."
    );
    describe_counter!(
        "sluice_messages_rejected_total",
        "Messages rejected at admission, per tenant and reason."
    );
    describe_counter!(
        "sluice_messages_final_total",
        "Messages that reached a terminal state, per tenant and state."
    );
    describe_counter!(
        "sluice_ingest_errors_total",
        "Protocol errors sent to ingest clients, by code."
    );
    describe_gauge!("sluice_ingest_connections", "Open ingest connections.");
    describe_gauge!(
        "sluice_dispatch_stalled",
        "1 while a carrier's messages wait, its binds are up and idle, no limit holds them, and nothing was dispatched for 10 s."
    );
    describe_counter!(
        "sluice_last_check_stopped_total",
        "Parts or MMS stopped at the last look before writing (recipient opted out while they waited), per carrier."
    );
    describe_counter!(
        "sluice_smpp_unanswered_receipted_total",
        "Unanswered submits (link dropped) found accepted by a receipt that came first, so not resent."
    );
    describe_counter!(
        "sluice_door_refused_total",
        "Connections closed at once because their door was at its connection cap."
    );
    describe_gauge!(
        "sluice_ingest_unauthenticated",
        "Ingest connections waiting for their Hello."
    );
    describe_counter!(
        "sluice_ingest_refused_total",
        "Ingest connections refused or closed at the door, by reason (per_ip, full, evicted, auth_locked)."
    );
    describe_counter!(
        "sluice_ingest_auth_failures_total",
        "Failed ingest Hellos (unknown tenant or wrong token)."
    );
    describe_counter!(
        "sluice_api_auth_failures_total",
        "HTTP API requests with an unknown bearer token."
    );
    describe_counter!(
        "sluice_api_auth_locked_out_total",
        "HTTP API requests refused unchecked (429) because their address sent too many unknown tokens."
    );
    describe_counter!(
        "sluice_grpc_auth_failures_total",
        "gRPC calls with an unknown bearer token (or one the client certificate does not name)."
    );
    describe_counter!(
        "sluice_grpc_auth_locked_out_total",
        "gRPC calls refused unchecked because their address sent too many unknown tokens."
    );
    describe_counter!(
        "sluice_grpc_backpressure_total",
        "gRPC SubmitBatch calls answered RESOURCE_EXHAUSTED (the gateway holds as many messages as it may)."
    );
    describe_counter!(
        "sluice_webhook_requests_total",
        "Webhook POSTs per tenant, endpoint and outcome (ok: 2xx; refused: another status; failed: no answer)."
    );
    describe_counter!(
        "sluice_webhook_events_delivered_total",
        "Events a webhook endpoint acknowledged with a 2xx."
    );
    describe_counter!(
        "sluice_history_dropped_total",
        "History steps not recorded because the writer fell behind (its buffers were full)."
    );
    describe_counter!(
        "sluice_history_segments_dropped_total",
        "History segments deleted by retention (older than history.retention, or past history.max_bytes)."
    );
    describe_counter!(
        "sluice_history_write_errors_total",
        "History writes that failed (their steps are lost)."
    );
    describe_gauge!("sluice_history_bytes", "Bytes of history segments on disk.");
    describe_counter!(
        "sluice_webhook_dead_lettered_total",
        "Webhook events given up on after dead_letter_after (kept until replayed)."
    );
    describe_gauge!(
        "sluice_webhook_dead_letters",
        "Webhook events in an endpoint's dead-letter list now."
    );
    describe_gauge!(
        "sluice_smpp_server_events_pending",
        "deliver_sm a tenant's SMPP binds have not answered yet (ready or in flight)."
    );
    describe_gauge!(
        "sluice_smpp_server_dead_letters",
        "deliver_sm set aside after repeated passing errors, kept until POST /admin/smpp/{tenant}/replay or a restart."
    );
    describe_gauge!(
        "sluice_webhook_pending",
        "Webhook events an endpoint has not acknowledged yet (ready or in flight)."
    );
    describe_counter!(
        "sluice_accept_errors_total",
        "accept() failures per listener (the loop backs off on resource errors)."
    );
    describe_counter!(
        "sluice_media_refused_total",
        "Media uploads refused, per tenant and reason (quota, too_many_uploads, type_mismatch, ...)."
    );
    describe_gauge!(
        "sluice_media_stored_bytes",
        "Bytes of media a tenant has stored (counted against its quota)."
    );
    describe_gauge!(
        "sluice_media_stored",
        "Media a tenant has stored (counted against its quota)."
    );
    describe_counter!(
        "sluice_smpp_submits_total",
        "submit_sm PDUs written, per carrier and bind."
    );
    describe_counter!(
        "sluice_smpp_responses_total",
        "submit_sm_resp received, per carrier and command status."
    );
    describe_counter!(
        "sluice_smpp_throttled_total",
        "Temporary refusals (ESME_RTHROTTLED, ESME_RMSGQFUL, ...) per carrier."
    );
    describe_counter!(
        "sluice_smpp_disconnects_total",
        "SMPP sessions that ended, per carrier."
    );
    describe_counter!(
        "sluice_smpp_bind_failures_total",
        "Binds the SMSC refused, per carrier and command status; after ESME_RINVPASWD, ESME_RINVSYSID or ESME_RBINDFAIL the bind waits auth_failure_backoff."
    );
    describe_gauge!(
        "sluice_smpp_window_in_use",
        "Outstanding submit_sm per bind."
    );
    describe_gauge!("sluice_smpp_bind_up", "1 when the bind is bound, else 0.");
    describe_gauge!(
        "sluice_smpp_binds_configured",
        "Binds the carrier's configuration asks for (a reload that replaces them leaves the retired binds' sluice_smpp_bind_up at 0)."
    );
    describe_gauge!(
        "sluice_smpp_adaptive_rate",
        "Current adaptive (AIMD) submit rate per bind after carrier throttling; 0 when not throttled."
    );
    describe_counter!(
        "sluice_failover_messages_total",
        "Messages moved off a carrier that was down, per carrier."
    );
    describe_counter!(
        "sluice_optouts_total",
        "Opt-outs and opt-ins recorded, by direction and source."
    );
    describe_counter!(
        "sluice_optouts_imported_total",
        "Numbers added by bulk opt-out imports."
    );
    describe_counter!(
        "sluice_auto_replies_total",
        "Compliance auto-replies (STOP/START/HELP) sent."
    );
    describe_gauge!(
        "sluice_held_messages",
        "Marketing messages held for the recipient's quiet hours."
    );
    describe_counter!(
        "sluice_inbound_bad_encoding_total",
        "Inbound messages whose text could not be decoded (forwarded lossily)."
    );
    describe_histogram!(
        "sluice_smpp_response_seconds",
        Unit::Seconds,
        "submit_sm to submit_sm_resp latency per carrier."
    );
    describe_counter!(
        "sluice_receipts_total",
        "Delivery receipts received per carrier."
    );
    describe_counter!(
        "sluice_receipts_early_total",
        "Receipts that arrived before their submit_sm_resp."
    );
    describe_counter!(
        "sluice_receipts_dropped_total",
        "Receipts that could not be used, by reason."
    );
    describe_counter!(
        "sluice_inbound_dropped_total",
        "Inbound messages that could not be forwarded, by reason."
    );
    describe_counter!(
        "sluice_dedupe_evicted_total",
        "Dedupe keys forgotten before their window ended (ingest.dedupe_max_keys reached)."
    );
    describe_gauge!(
        "sluice_dedupe_oldest_hold_seconds",
        "Age of the oldest submitted batch not yet durable nor refused: its dedupe keys, and every later one, stay out of the dedupe log until it ends."
    );
    describe_counter!(
        "sluice_permit_waits_total",
        "Times a limit made the queue wait, per carrier and level (carrier, tenant, sender, daily_cap)."
    );
    describe_gauge!(
        "sluice_spilled_messages",
        "Queued messages waiting on disk beyond the in-memory budget."
    );
    describe_counter!(
        "sluice_spilled_messages_total",
        "Messages written to the spill beyond the in-memory budget."
    );
    describe_counter!(
        "sluice_spill_damaged_batches_total",
        "Spilled batches that could not be read back (their messages wait in the journal for a restart)."
    );
    describe_counter!(
        "sluice_paged_in_messages_total",
        "Spilled messages paged back into memory."
    );
    describe_gauge!(
        "sluice_queue_depth",
        "Messages waiting for dispatch per carrier."
    );
    describe_gauge!(
        "sluice_live_messages",
        "Messages accepted and not yet final."
    );
    describe_gauge!(
        "sluice_events_pending",
        "Events created and not yet acknowledged by upstream."
    );
    describe_counter!(
        "sluice_events_acked_total",
        "Events acknowledged by upstream."
    );
    describe_histogram!(
        "sluice_journal_sync_seconds",
        Unit::Seconds,
        "Duration of each journal fdatasync."
    );
    describe_gauge!(
        "sluice_journal_bytes",
        Unit::Bytes,
        "Bytes in journal segments on disk."
    );
    describe_gauge!("sluice_journal_segments", "Journal segments on disk.");
    describe_gauge!(
        "sluice_journal_failed",
        "1 once a journal (journal=\"messages\" or \"optouts\") failed a write, sync or rotation: it stores nothing more until a restart, and /readyz answers 503."
    );
    describe_counter!(
        "sluice_journal_segments_total",
        "Journal segments started by a rotation; zeroed=\"true\" when it was written full of zeros ahead of time (journal.prezero_segments), so that its syncs do not also commit file growth."
    );
    describe_gauge!(
        "sluice_build_info",
        "Always 1; the label version is the running build's."
    );
    describe_gauge!(
        "sluice_journal_disk_available_bytes",
        Unit::Bytes,
        "Bytes free for the gateway on the file system holding the journal (read at each scrape)."
    );
    describe_gauge!(
        "sluice_journal_disk_size_bytes",
        Unit::Bytes,
        "Size of the file system holding the journal (read at each scrape)."
    );
}

/// Makes `/metrics` report the file system of `journal_dir`
/// (`sluice_journal_disk_available_bytes`, `sluice_journal_disk_size_bytes`);
/// the first call wins (one gateway per process).
pub fn watch_journal_disk(journal_dir: impl Into<PathBuf>) {
    let _ = JOURNAL_DISK.set(journal_dir.into());
}

/// What is read at each scrape: the process's figures and the journal's
/// disk.
fn collect_on_scrape() {
    if let Some(p) = PROCESS.get() {
        p.collect();
    }
    if let Some(dir) = JOURNAL_DISK.get()
        && let Some((available, size)) = disk_space(dir)
    {
        metrics::gauge!("sluice_journal_disk_available_bytes").set(available as f64);
        metrics::gauge!("sluice_journal_disk_size_bytes").set(size as f64);
    }
}

/// Bytes available to an unprivileged writer and total size of the file
/// system holding `path` (`statvfs`); `None` when it cannot be read.
pub fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

/// Counter handles per label value, so hot paths do not hash label sets
/// into the registry on every increment.
#[derive(Debug)]
pub struct CounterCache<K> {
    make: fn(&K) -> metrics::Counter,
    /// Keys are the gateway's own labels (tenants, carriers), not peers'.
    map: parking_lot::Mutex<crate::model::hashing::FastMap<K, metrics::Counter>>,
}

impl<K: std::hash::Hash + Eq + Clone> CounterCache<K> {
    /// A cache creating counters with `make` on first use of a key.
    pub fn new(make: fn(&K) -> metrics::Counter) -> Self {
        CounterCache {
            make,
            map: parking_lot::Mutex::default(),
        }
    }

    /// Adds `n` to the counter of `key`.
    pub fn increment(&self, key: &K, n: u64) {
        let mut map = self.map.lock();
        if let Some(c) = map.get(key) {
            c.increment(n);
            return;
        }
        let c = (self.make)(key);
        c.increment(n);
        map.insert(key.clone(), c);
    }
}

/// Sets up `tracing` output on stderr in `format`, filtered by `RUST_LOG`
/// (default `info`). A second call changes nothing.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = subscriber(format, filter, std::io::stderr).try_init();
}

/// The subscriber [`init_logging`] installs, writing to `writer` (tests
/// hand it a buffer). Text is the `fmt` layer's usual line; JSON is one
/// object per line with the event's fields flattened to the top level.
/// Peer-supplied strings reach either through [`crate::model::LogSafe`]
/// (escaped before they are recorded), and JSON escapes them once more as
/// string values, so no value can start a line of its own.
pub fn subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(fmt.finish()),
        LogFormat::Json => Box::new(
            fmt.json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Whether the gateway is ready to take traffic: start-up, drain and
/// carrier reachability, decided in [`crate::readiness`].
pub type Health = crate::readiness::Readiness;

/// The routes `/metrics`, `/healthz` and `/readyz`; any other path is a
/// plain-text 404.
pub fn router(health: Arc<Health>) -> Router {
    let handle = metrics_handle();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    collect_on_scrape();
                    handle.run_upkeep();
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { plain(StatusCode::OK, "ok\n") }))
        .route(
            "/readyz",
            get(move || {
                let (status, body) = health.readyz();
                async move { (status, [(CONTENT_TYPE, "text/plain")], body).into_response() }
            }),
        )
        .fallback(not_found)
}

/// The plain-text 404 of every door.
pub async fn not_found() -> axum::response::Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn plain(status: StatusCode, body: &'static str) -> axum::response::Response {
    (status, [(CONTENT_TYPE, "text/plain")], body).into_response()
}

#[cfg(test)]
mod tests;
