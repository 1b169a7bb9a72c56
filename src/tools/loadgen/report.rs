//! The [`Report`] of a run: its numbers (serde gives the JSON form), the
//! readable text ([`Report::render`]), the chart ([`Report::svg`]), the
//! three-way [`CountCheck`] and the files `--json` and `--plot` write.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{BenchOptions, ms, procfs, svg};
use crate::tools::sim::smsc::StatsSnapshot;

// === impl Report ===

/// What a run measured; [`Report::render`] is the readable form, serde the
/// JSON form (same numbers).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `embedded` or `remote`.
    pub mode: String,
    /// Ingest address the load went to.
    pub target: String,
    /// The load asked for.
    pub load: Load,
    /// True when Ctrl-C stopped the run.
    pub interrupted: bool,
    /// Seconds from the first batch to the last ack.
    pub send_s: f64,
    /// Seconds from the first batch to the last terminal event received.
    pub elapsed_s: f64,
    /// Seconds from the first batch to the end of the drain.
    pub wall_s: f64,
    /// Messages sent.
    pub offered: u64,
    /// Offered messages per second over `send_s`.
    pub offered_per_s: f64,
    /// Messages accepted.
    pub accepted: u64,
    /// Accepted messages the gateway marked `duplicate` (client_ref seen before).
    pub duplicate_accepts: u64,
    /// Rejected messages by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Messages of batches that got no ack (lost connection, Error frame).
    pub lost: u64,
    /// Terminal events by state (first per accepted message of this run).
    pub terminal: BTreeMap<String, u64>,
    /// Sum of `terminal`.
    pub terminal_total: u64,
    /// Accepted messages without a terminal event at the end.
    pub without_terminal: u64,
    /// A few of them: gateway message id (hex), bench sequence number, kind.
    pub without_terminal_sample: Vec<String>,
    /// Terminal events matching no accepted message of this run (repeats
    /// or another client's messages of the same tenant).
    pub unmatched_events: u64,
    /// Non-terminal `submitted` events received.
    pub submitted_events: u64,
    /// Accepted messages per second over `send_s`.
    pub accepted_per_s: f64,
    /// Terminal events per second over `elapsed_s`.
    pub terminal_per_s: f64,
    /// With `--rate`: how late the latest batch went out, at most.
    pub max_schedule_lag_ms: Option<f64>,
    /// `send_batch` → BatchAck, one sample per batch.
    pub ack_latency: Latency,
    /// `send_batch` → terminal event, one sample per message.
    pub terminal_latency: Latency,
    /// `send_batch` → the message complete at the SMSC simulator (its last
    /// `submit_sm` read), one message in [`super::WIRE_SAMPLE`] (embedded only).
    pub wire_latency: Option<Latency>,
    /// Increase of `sluice_smpp_throttled_total` (all carriers), when scraped.
    pub carrier_throttles: Option<u64>,
    /// Increase of other gateway counters (`name{labels}`, non-zero only) and
    /// a few gauges as last scraped (the gateway samples some of them only
    /// once a second), when scraped.
    pub gateway_counters: BTreeMap<String, f64>,
    /// The simulator's counters over the run (embedded).
    pub simulator: Option<SimCounts>,
    /// CPU and memory of the gateway process during the run, when known.
    pub gateway_process: Option<procfs::Usage>,
    /// What `gateway_process` includes.
    pub gateway_process_note: String,
    /// CPU and memory of this (bench) process, in remote mode.
    pub bench_process: Option<procfs::Usage>,
    /// Bench vs gateway metrics vs simulator.
    pub counts: CountCheck,
    /// Errors (failed sends, failed acks, Error frames).
    pub errors: u64,
    /// The first few error texts.
    pub error_samples: Vec<String>,
    /// Things the reader should know (failed scrapes, missing events).
    pub notes: Vec<String>,
    /// One sample per second since the first batch.
    pub series: Vec<SecondSample>,
}

/// The load a run asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Messages per second target; 0 = as fast as possible.
    pub rate: u64,
    /// Connections.
    pub connections: usize,
    /// Messages per batch.
    pub batch: usize,
    /// Batches in flight per connection.
    pub pipeline: usize,
    /// Message mix.
    pub mix: String,
    /// Send phase length, if limited by time.
    pub duration_s: Option<f64>,
    /// Messages, if limited by count.
    pub messages: Option<u64>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// `per batch` or `per message`.
    pub recorded: String,
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    pub(super) fn from_histogram(recorded: &str, h: &hdrhistogram::Histogram<u64>) -> Latency {
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        Latency {
            recorded: recorded.to_owned(),
            count: h.len(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecondSample {
    /// Seconds since the first batch (start of this second).
    pub t_s: u64,
    /// Messages accepted (acks received) in this second.
    pub accepted: u64,
    /// Terminal events received in this second.
    pub terminal: u64,
    /// p99 of the acks received in this second.
    pub ack_p99_ms: Option<f64>,
    /// p99 submit-to-terminal of the events received in this second.
    pub terminal_p99_ms: Option<f64>,
}

/// The simulator's counters over a run.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SimCounts {
    /// submit_sm received.
    pub submits: u64,
    /// submit_sm answered ESME_RTHROTTLED.
    pub throttled: u64,
    /// submit_sm accepted.
    pub accepted_parts: u64,
    /// submit_sm refused (text does not decode).
    pub rejected: u64,
    /// Complete messages received.
    pub messages: u64,
    /// Complete messages received more than once.
    pub duplicates: u64,
    /// Receipts written (re-sends included).
    pub receipts_sent: u64,
    /// Receipts answered by the gateway.
    pub receipts_acked: u64,
    /// Connections the simulator cut (`--disconnect-every`).
    pub disconnects: u64,
}

impl SimCounts {
    pub(super) fn between(b: &StatsSnapshot, a: &StatsSnapshot) -> SimCounts {
        SimCounts {
            submits: a.submits.saturating_sub(b.submits),
            throttled: a.throttled.saturating_sub(b.throttled),
            accepted_parts: a.accepted_parts.saturating_sub(b.accepted_parts),
            rejected: a.rejected.saturating_sub(b.rejected),
            messages: a.messages.saturating_sub(b.messages),
            duplicates: a.duplicates.saturating_sub(b.duplicates),
            receipts_sent: a.receipts_sent.saturating_sub(b.receipts_sent),
            receipts_acked: a.receipts_acked.saturating_sub(b.receipts_acked),
            disconnects: a.disconnects.saturating_sub(b.disconnects),
        }
    }
}

/// The three-way count check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountCheck {
    /// Accepted, per the bench's acks.
    pub bench_accepted: u64,
    /// Increase of `sluice_messages_accepted_total{tenant}`.
    pub gateway_accepted: Option<u64>,
    /// Terminal events per state, per the bench.
    pub bench_terminal: BTreeMap<String, u64>,
    /// Increase of `sluice_messages_final_total{tenant}` per state.
    pub gateway_final: Option<BTreeMap<String, u64>>,
    /// Complete messages the simulator received (embedded).
    pub simulator_messages: Option<u64>,
    /// What the simulator should have received: accepted minus those the
    /// carrier refused at submission (state `rejected`).
    pub simulator_expected: Option<u64>,
    /// Messages the simulator received more than once (embedded).
    pub simulator_duplicates: Option<u64>,
    /// True when every source that was read agrees.
    pub agree: bool,
    /// True when every accepted message got exactly one terminal event.
    pub all_terminal: bool,
    /// Sources not read, and each disagreement.
    pub notes: Vec<String>,
}

impl CountCheck {
    /// Compares the bench's counts with the gateway's (deltas of its
    /// metrics) and the simulator's (`(messages, duplicates)` deltas).
    pub(super) fn new(
        bench_accepted: u64,
        bench_terminal: &BTreeMap<String, u64>,
        gateway_accepted: Option<u64>,
        gateway_final: Option<BTreeMap<String, u64>>,
        sim: Option<(u64, u64)>,
        had_metrics_url: bool,
    ) -> CountCheck {
        let mut disagree = Vec::new();
        let mut unchecked = Vec::new();
        let bench_total: u64 = bench_terminal.values().sum();
        match gateway_accepted {
            Some(g) if g != bench_accepted => {
                disagree.push(format!("accepted: bench {bench_accepted}, gateway {g}"));
            }
            Some(_) => {}
            None if had_metrics_url => unchecked.push("gateway metrics not read".to_owned()),
            None => unchecked.push("gateway metrics not checked (give --metrics-url)".to_owned()),
        }
        if let Some(g) = &gateway_final {
            let nonzero = |m: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
                m.iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| (k.clone(), *n))
                    .collect()
            };
            if nonzero(bench_terminal) != nonzero(g) {
                disagree.push(format!(
                    "terminal: bench {bench_total} {bench_terminal:?}, gateway {} {g:?}",
                    g.values().sum::<u64>()
                ));
            }
        }
        let expected =
            bench_accepted.saturating_sub(bench_terminal.get("rejected").copied().unwrap_or(0));
        if let Some((messages, duplicates)) = sim {
            if messages != expected {
                disagree.push(format!(
                    "simulator received {messages} messages, expected {expected} (accepted minus refused at submission)"
                ));
            }
            if duplicates > 0 {
                disagree.push(format!(
                    "simulator received {duplicates} messages more than once"
                ));
            }
        }
        let agree = disagree.is_empty();
        let all_terminal = bench_total == bench_accepted;
        disagree.extend(unchecked);
        CountCheck {
            bench_accepted,
            gateway_accepted,
            bench_terminal: bench_terminal.clone(),
            gateway_final,
            simulator_messages: sim.map(|s| s.0),
            simulator_expected: sim.map(|_| expected),
            simulator_duplicates: sim.map(|s| s.1),
            agree,
            all_terminal,
            notes: disagree,
        }
    }
}

impl Report {
    /// Writes the JSON report to `--json` and the chart to `--plot`, when
    /// given.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write_files(&self, opts: &BenchOptions) -> anyhow::Result<()> {
        if let Some(path) = &opts.json {
            std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        if let Some(path) = &opts.plot {
            std::fs::write(path, self.svg())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The chart of the per-second series.
    pub fn svg(&self) -> String {
        let rate = if self.load.rate == 0 {
            "max rate".to_owned()
        } else {
            format!("{}/s", thousands(self.load.rate))
        };
        svg::render(
            &self.series,
            &format!(
                "sluice bench ({}, {rate}, {} conn × {} × {}): {} accepted/s, ack p99 {:.1} ms",
                self.mode,
                self.load.connections,
                self.load.pipeline,
                self.load.batch,
                thousands(self.accepted_per_s as u64),
                self.ack_latency.p99_ms
            ),
        )
    }

    /// The readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let l = &self.load;
        let _ = writeln!(
            s,
            "sluice bench: {} ({}){}",
            self.mode,
            self.target,
            if self.interrupted {
                ", INTERRUPTED"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "  load: rate {} | {} connections × pipeline {} × batch {} | mix {} | {}",
            if l.rate == 0 {
                "as fast as possible".to_owned()
            } else {
                format!("{}/s", thousands(l.rate))
            },
            l.connections,
            l.pipeline,
            l.batch,
            l.mix,
            match (l.duration_s, l.messages) {
                (Some(d), Some(m)) => format!("{d} s or {m} messages"),
                (Some(d), None) => format!("{d} s"),
                (None, Some(m)) => format!("{m} messages"),
                (None, None) => String::new(),
            }
        );
        let _ = writeln!(
            s,
            "  sent for {:.2} s (first batch to last ack); {:.2} s to the last terminal event",
            self.send_s, self.elapsed_s
        );
        let _ = writeln!(s, "\nmessages");
        let _ = writeln!(
            s,
            "  offered          {:>12}   {:>9}/s",
            thousands(self.offered),
            thousands(self.offered_per_s as u64)
        );
        let _ = writeln!(
            s,
            "  accepted         {:>12}   {:>9}/s over the send window{}",
            thousands(self.accepted),
            thousands(self.accepted_per_s as u64),
            if self.duplicate_accepts > 0 {
                format!("  ({} marked duplicate)", self.duplicate_accepts)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "  rejected         {:>12}   {}",
            thousands(self.rejected.values().sum()),
            by_key(&self.rejected)
        );
        if self.lost > 0 {
            let _ = writeln!(s, "  lost (no ack)    {:>12}", thousands(self.lost));
        }
        let _ = writeln!(
            s,
            "  terminal         {:>12}   {:>9}/s over the run   {}",
            thousands(self.terminal_total),
            thousands(self.terminal_per_s as u64),
            by_key(&self.terminal)
        );
        let _ = writeln!(
            s,
            "  no terminal event{:>12}   unmatched events {}   submitted events {}",
            thousands(self.without_terminal),
            thousands(self.unmatched_events),
            thousands(self.submitted_events)
        );
        if let Some(lag) = self.max_schedule_lag_ms {
            let _ = writeln!(
                s,
                "  schedule: target {}/s, offered {}/s, largest lag behind schedule {lag:.1} ms",
                thousands(l.rate),
                thousands(self.offered_per_s as u64)
            );
        }
        let _ = writeln!(
            s,
            "\nlatency (ms)                     {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "p50", "p90", "p99", "p99.9", "max", "samples"
        );
        for (name, lat) in [
            ("  ack (send_batch → BatchAck)", Some(&self.ack_latency)),
            ("  submit → at the SMSC (wire)", self.wire_latency.as_ref()),
            ("  submit → terminal event", Some(&self.terminal_latency)),
        ] {
            let Some(lat) = lat else { continue };
            let _ = writeln!(
                s,
                "{name:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10} {}",
                lat.p50_ms,
                lat.p90_ms,
                lat.p99_ms,
                lat.p999_ms,
                lat.max_ms,
                thousands(lat.count),
                lat.recorded
            );
        }
        let _ = writeln!(s, "\ngateway");
        let _ = writeln!(
            s,
            "  carrier throttles (sluice_smpp_throttled_total): {}",
            self.carrier_throttles
                .map_or_else(|| "not read".to_owned(), thousands)
        );
        if !self.gateway_counters.is_empty() {
            let _ = writeln!(
                s,
                "  other counters (increase over the run) and gauges (last sampled by the gateway):"
            );
            for (k, v) in &self.gateway_counters {
                let _ = writeln!(
                    s,
                    "    {k:<56} {:>12}",
                    thousands(v.max(0.0).round() as u64)
                );
            }
        }
        if let Some(m) = &self.simulator {
            let _ = writeln!(
                s,
                "  simulator: submits {} (throttled {}, accepted parts {}, refused {}), messages {}, receipts sent {} / acked {}, disconnects {}",
                thousands(m.submits),
                thousands(m.throttled),
                thousands(m.accepted_parts),
                thousands(m.rejected),
                thousands(m.messages),
                thousands(m.receipts_sent),
                thousands(m.receipts_acked),
                thousands(m.disconnects)
            );
        }
        match &self.gateway_process {
            Some(u) => {
                let _ = writeln!(
                    s,
                    "  CPU {:.2} s (user {:.2} + sys {:.2}) = {:.2} cores over {:.1} s{}; peak RSS {} MiB (now {} MiB) — {}",
                    u.cpu_s,
                    u.user_s,
                    u.sys_s,
                    u.cores,
                    self.wall_s,
                    u.cores_while_sending
                        .map(|c| format!(", {c:.2} cores while sending"))
                        .unwrap_or_default(),
                    u.peak_rss_bytes >> 20,
                    u.rss_bytes >> 20,
                    u.process
                );
                let _ = writeln!(s, "  note: {}", self.gateway_process_note);
            }
            None => {
                let _ = writeln!(s, "  CPU and RSS: {}", self.gateway_process_note);
            }
        }
        if let Some(u) = &self.bench_process {
            let _ = writeln!(
                s,
                "  bench client: CPU {:.2} s = {:.2} cores; peak RSS {} MiB",
                u.cpu_s,
                u.cores,
                u.peak_rss_bytes >> 20
            );
        }
        let c = &self.counts;
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), thousands);
        let _ = writeln!(
            s,
            "\ncount check                  {:>12} {:>12} {:>12}",
            "bench", "gateway", "simulator"
        );
        let _ = writeln!(
            s,
            "  accepted                   {:>12} {:>12} {:>12}",
            thousands(c.bench_accepted),
            opt(c.gateway_accepted),
            c.simulator_expected.map_or_else(
                || "-".to_owned(),
                |e| format!("{}/{}", opt(c.simulator_messages), thousands(e))
            ),
        );
        let mut states: Vec<&String> = c.bench_terminal.keys().collect();
        if let Some(g) = &c.gateway_final {
            states.extend(g.keys());
        }
        states.sort();
        states.dedup();
        let _ = writeln!(
            s,
            "  terminal                   {:>12} {:>12}",
            thousands(c.bench_terminal.values().sum()),
            opt(c.gateway_final.as_ref().map(|g| g.values().sum()))
        );
        for st in states {
            let _ = writeln!(
                s,
                "    {st:<24} {:>12} {:>12}",
                thousands(c.bench_terminal.get(st).copied().unwrap_or(0)),
                opt(c
                    .gateway_final
                    .as_ref()
                    .map(|g| g.get(st).copied().unwrap_or(0)))
            );
        }
        if let Some(d) = c.simulator_duplicates {
            let _ = writeln!(
                s,
                "  duplicates at the SMSC                               {:>12}",
                thousands(d)
            );
        }
        if c.simulator_expected.is_some() {
            let _ = writeln!(
                s,
                "  (simulator column: complete messages received / expected = accepted − refused at submission)"
            );
        }
        let _ = writeln!(
            s,
            "  => counts {}",
            if c.agree {
                let sources = match (c.gateway_accepted.is_some(), c.simulator_messages.is_some()) {
                    (true, true) => "bench = gateway metrics = simulator",
                    (true, false) => "bench = gateway metrics (no simulator)",
                    (false, true) => "bench = simulator (gateway metrics not read)",
                    (false, false) => "(nothing to compare with)",
                };
                format!("AGREE: {sources}")
            } else {
                "DISAGREE".to_owned()
            }
        );
        for n in &c.notes {
            let _ = writeln!(s, "     {n}");
        }
        if c.all_terminal {
            let _ = writeln!(s, "  => every accepted message reached a terminal state");
        } else {
            let _ = writeln!(
                s,
                "  => {} accepted messages have no terminal event: {}",
                thousands(
                    c.bench_accepted
                        .saturating_sub(c.bench_terminal.values().sum())
                ),
                self.without_terminal_sample.join(", ")
            );
        }
        if self.errors > 0 {
            let _ = writeln!(s, "\nerrors: {}", self.errors);
            for e in &self.error_samples {
                let _ = writeln!(s, "  {e}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s.lines().map(|l| l.trim_end().to_owned() + "\n").collect()
    }
}

// === helpers ===

fn by_key(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {}", thousands(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
