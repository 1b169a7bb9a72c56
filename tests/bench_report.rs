//! The load tool end to end: a short embedded bench through the library
//! API, its report checked against the gateway's `/metrics` (read here with
//! a Prometheus text-format checker of our own) and the simulator's counts,
//! and its JSON and SVG outputs parsed back.
//!
//! One test function on purpose: the metrics recorder is process-wide, so
//! two benches running at once in this binary would count into each other.

use std::collections::{BTreeMap, HashMap, HashSet};

use sluice::loadgen::{self, BenchOptions, Embedded};
use tokio_util::sync::CancellationToken;

/// Metrics the gateway must export.
const REQUIRED: [&str; 11] = [
    "sluice_permit_waits_total",
    "sluice_messages_accepted_total",
    "sluice_messages_final_total",
    "sluice_smpp_submits_total",
    "sluice_smpp_responses_total",
    "sluice_smpp_response_seconds",
    "sluice_journal_sync_seconds",
    "sluice_queue_depth",
    "sluice_events_pending",
    "sluice_smpp_bind_up",
    "sluice_smpp_window_in_use",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bench_agrees_with_the_gateway_and_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BenchOptions {
        embedded: true,
        messages: 5000,
        connections: 2,
        batch: 200,
        mix: "gsm7=60,unicode=20,multipart=10,invalid=10"
            .parse()
            .unwrap(),
        quiet: true,
        // Everything is final well within a second; fail sooner than the 60 s default.
        drain_timeout: std::time::Duration::from_secs(20),
        json: Some(dir.path().join("bench.json")),
        plot: Some(dir.path().join("bench.svg")),
        ..BenchOptions::default()
    };
    let env = Embedded::start(&opts).await.unwrap();
    let report = loadgen::run_against(&opts, &env.target(), CancellationToken::new())
        .await
        .unwrap();
    let metrics = loadgen::prom::fetch(&env.metrics_url()).await.unwrap();
    let sim = env.smsc().stats();
    env.shutdown().await;
    let text = report.render();

    // The bench's own counts.
    assert_eq!(report.offered, 5000, "{text}");
    assert_eq!(report.accepted, 4500, "{text}");
    assert_eq!(
        report.rejected,
        BTreeMap::from([("invalid_number".to_owned(), 500)]),
        "{text}"
    );
    assert_eq!(report.lost, 0, "{text}");
    assert_eq!(report.errors, 0, "{text}");
    assert_eq!(report.duplicate_accepts, 0, "{text}");
    assert_eq!(report.terminal_total, report.accepted, "{text}");
    assert_eq!(report.without_terminal, 0, "{text}");
    assert_eq!(report.unmatched_events, 0, "{text}");
    assert_eq!(report.ack_latency.count, 25, "one sample per batch: {text}");
    assert_eq!(report.terminal_latency.count, report.terminal_total);
    assert!(
        report.ack_latency.p50_ms > 0.0 && report.ack_latency.p99_ms <= report.ack_latency.max_ms
    );
    assert!(
        report.terminal_latency.p50_ms >= 20.0,
        "receipt delay is 20 ms: {text}"
    );
    // One accepted message in 16 timed to the simulator (at most 313 of the
    // 5,000 sequence numbers; the invalid ones never get there), each
    // before its receipt could end it.
    let wire = report
        .wire_latency
        .as_ref()
        .expect("embedded: wire latency");
    assert!(
        wire.count >= 250 && wire.count <= 313,
        "{} stamped: {text}",
        wire.count
    );
    assert!(
        wire.p50_ms > 0.0 && wire.p50_ms < report.terminal_latency.p50_ms,
        "{text}"
    );
    assert!(text.contains("submit → at the SMSC (wire)"), "{text}");
    assert!(!report.series.is_empty());
    assert_eq!(
        report.series.iter().map(|s| s.accepted).sum::<u64>(),
        report.accepted
    );
    assert_eq!(
        report.series.iter().map(|s| s.terminal).sum::<u64>(),
        report.terminal_total
    );
    let usage = report
        .gateway_process
        .as_ref()
        .expect("embedded: /proc/self");
    assert!(usage.cpu_s > 0.0 && usage.peak_rss_bytes > 0, "{usage:?}");
    assert!(
        usage.cores_while_sending.is_some_and(|c| c > 0.0),
        "{usage:?}"
    );
    assert!(text.contains("simulator and the bench client run in the same process"));
    let sim_counts = report.simulator.expect("embedded: simulator counts");
    assert_eq!(sim_counts.messages, report.accepted);
    // At least one receipt per message; a multi-part message settled by one
    // part may see its other receipts after the run ends.
    let receipts = report.gateway_counters["sluice_receipts_total{carrier=sim}"];
    assert!(
        receipts >= report.accepted as f64 && receipts <= sim_counts.receipts_sent as f64,
        "{text}"
    );

    // Three-way check, as the report saw it.
    let c = &report.counts;
    assert!(c.agree, "{text}");
    assert!(
        text.contains("counts AGREE: bench = gateway metrics = simulator"),
        "{text}"
    );
    assert_eq!(c.gateway_accepted, Some(report.accepted));
    assert_eq!(c.gateway_final.as_ref(), Some(&report.terminal));
    assert_eq!(c.simulator_messages, Some(report.accepted));
    assert_eq!(c.simulator_duplicates, Some(0));
    assert_eq!(report.carrier_throttles, Some(0));

    // ... and checked again here, from the raw sources. This is the only
    // gateway in the process, so its counters are this run's counts.
    let families = check_prometheus_text(&metrics);
    for name in REQUIRED {
        assert!(
            families.contains_key(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    let accepted = sum(
        &families,
        "sluice_messages_accepted_total",
        &[("tenant", "demo")],
    );
    assert_eq!(accepted, report.accepted as f64);
    let mut finals = BTreeMap::new();
    for s in families["sluice_messages_final_total"].iter() {
        let state = label(s, "state").unwrap().to_owned();
        *finals.entry(state).or_insert(0u64) += s.value as u64;
    }
    assert_eq!(finals, report.terminal);
    assert_eq!(sim.messages, report.accepted);
    assert_eq!(sim.duplicates, 0);
    assert_eq!(sim.throttled, 0);

    // Outputs.
    report.write_files(&opts).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(opts.json.as_ref().unwrap()).unwrap())
            .unwrap();
    assert_eq!(json["accepted"], 4500);
    assert_eq!(json["offered"], 5000);
    assert_eq!(json["rejected"]["invalid_number"], 500);
    assert_eq!(json["terminal_total"], report.terminal_total);
    assert_eq!(json["counts"]["agree"], true);
    assert_eq!(json["ack_latency"]["recorded"], "per batch");
    assert_eq!(json["terminal_latency"]["recorded"], "per message");
    assert_eq!(json["ack_latency"]["p99_ms"], report.ack_latency.p99_ms);
    assert_eq!(
        json["series"].as_array().unwrap().len(),
        report.series.len()
    );
    let svg = std::fs::read_to_string(opts.plot.as_ref().unwrap()).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert_well_formed_xml(&svg);
    assert!(svg.matches("<polyline").count() >= 4, "{svg}");

    // `run` (simulator and gateway started and stopped for us) on a process
    // whose counters already hold the first run: the report's gateway
    // counts are deltas, so they still agree.
    let second = loadgen::run(&BenchOptions {
        embedded: true,
        messages: 1000,
        quiet: true,
        ..BenchOptions::default()
    })
    .await
    .unwrap();
    let text = second.render();
    assert_eq!(second.accepted, 1000, "{text}");
    assert_eq!(second.terminal_total, 1000, "{text}");
    assert!(second.counts.agree, "{text}");
    assert_eq!(second.counts.gateway_accepted, Some(1000), "{text}");
}

/// One sample line.
#[derive(Debug)]
struct Sample {
    labels: Vec<(String, String)>,
    value: f64,
}

fn label<'a>(s: &'a Sample, key: &str) -> Option<&'a str> {
    s.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn sum(families: &HashMap<String, Vec<Sample>>, name: &str, filter: &[(&str, &str)]) -> f64 {
    families[name]
        .iter()
        .filter(|s| filter.iter().all(|(k, v)| label(s, k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// Checks the Prometheus text exposition format strictly enough for our
/// purposes and returns the samples by family (a histogram by its `_count`
/// samples); panics listing every problem found:
/// - every non-comment line is `name{label="value",...} value [timestamp]`;
/// - every family has `# HELP` and `# TYPE`, both before its first sample;
/// - `_bucket`/`_sum`/`_count` samples belong to a histogram or summary,
///   and a histogram has a `+Inf` bucket for each label set.
fn check_prometheus_text(text: &str) -> HashMap<String, Vec<Sample>> {
    let mut help = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut families: HashMap<String, Vec<Sample>> = HashMap::new();
    let mut inf_buckets: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) => {
                    if !valid_name(name) {
                        problems.push(format!("line {n}: bad name in {line:?}"));
                    }
                    if !help.insert(name.to_owned()) {
                        problems.push(format!("line {n}: second HELP for {name}"));
                    }
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        problems.push(format!("line {n}: unknown type {kind:?}"));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        problems.push(format!("line {n}: second TYPE for {name}"));
                    }
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        let Some((name, labels, value)) = parse_line(line) else {
            problems.push(format!("line {n} is not `name{{labels}} value`: {line:?}"));
            continue;
        };
        let family = if types.contains_key(&name) {
            name.clone()
        } else {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| {
                    types
                        .get(*base)
                        .is_some_and(|k| k == "histogram" || k == "summary")
                });
            match base {
                Some(base) => base.to_owned(),
                None => {
                    if !problems
                        .iter()
                        .any(|p: &String| p.contains(&format!(" {name} has no # TYPE")))
                    {
                        problems.push(format!("line {n}: {name} has no # TYPE before it"));
                    }
                    name.clone()
                }
            }
        };
        if !help.contains(&family)
            && !problems
                .iter()
                .any(|p| p.contains(&format!(" {family} has no # HELP")))
        {
            problems.push(format!("line {n}: {family} has no # HELP before it"));
        }
        if name.ends_with("_bucket") && name != family {
            match labels.iter().find(|(k, _)| k == "le") {
                Some((_, le)) if le == "+Inf" => {
                    *inf_buckets.entry(family.clone()).or_default() += 1;
                }
                Some(_) => {}
                None => problems.push(format!("line {n}: bucket without le")),
            }
            continue;
        }
        if name == family || name == format!("{family}_count") {
            families
                .entry(family)
                .or_default()
                .push(Sample { labels, value });
        }
    }
    for (family, kind) in &types {
        if kind == "histogram" {
            let counts = families.get(family).map_or(0, Vec::len);
            let inf = inf_buckets.get(family).copied().unwrap_or(0);
            if inf != counts {
                problems.push(format!("{family}: {inf} +Inf buckets for {counts} series"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "/metrics is not clean Prometheus text:\n  {}\n\n{text}",
        problems.join("\n  ")
    );
    families
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[allow(clippy::type_complexity)]
fn parse_line(line: &str) -> Option<(String, Vec<(String, String)>, f64)> {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..end];
    if !valid_name(name) {
        return None;
    }
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = r.find('=')?;
            let key = &r[..eq];
            let label_ok = !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !label_ok {
                return None;
            }
            r = r[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut it = r.char_indices();
            let close = loop {
                let (i, c) = it.next()?;
                match c {
                    '"' => break i,
                    '\\' => match it.next()?.1 {
                        'n' => value.push('\n'),
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        _ => return None,
                    },
                    c => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            r = &r[close + 1..];
            if let Some(after) = r.strip_prefix(',') {
                r = after;
            } else if !r.starts_with('}') {
                return None;
            }
        }
    }
    let mut fields = rest.strip_prefix(' ')?.split(' ');
    let value = match fields.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some((name.to_owned(), labels, value))
}

/// Walks the document with quick-xml: every tag closes, attributes parse.
fn assert_well_formed_xml(doc: &str) {
    let mut reader = quick_xml::Reader::from_str(doc);
    reader.config_mut().check_end_names = true;
    let mut depth = 0i32;
    let mut root = None;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                root.get_or_insert_with(|| e.name().into_inner().to_owned());
                for a in e.attributes() {
                    a.expect("attribute parses");
                }
                depth += 1;
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Empty(e)) => {
                for a in e.attributes() {
                    a.expect("attribute parses");
                }
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "SVG is not well-formed at {}: {e}",
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    assert_eq!(root.as_deref(), Some("svg"));
}
