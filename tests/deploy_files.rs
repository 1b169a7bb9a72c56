//! Keeps the deployment files honest (`deploy/`): the Grafana dashboard
//! parses and, like the Prometheus alert rules, names only metrics the
//! gateway exports; `promtool` accepts the rules and the scrape
//! configuration (when installed: `src/external.rs`); the compose and
//! Kubernetes gateway configurations load, every secret they reference is
//! provided by their compose file or Secret, and their node ids differ.
//!
//! Exported metrics are read two ways: every `counter!`/`gauge!`/
//! `histogram!` name in `src/` (a metric that only a rare event registers
//! is still found), and the `/metrics` of a gateway that has carried some
//! traffic (the `process_*` figures of `metrics-process`, and a check that
//! the source scan sees every `sluice_*` name really served).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use sluice::config::Config;
use sluice::config::secrets::SecretSource;
use sluice::external;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every identifier in `text` that starts with one of `prefixes`.
fn metric_names(text: &str, prefixes: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &text[start..i];
            if prefixes
                .iter()
                .any(|p| word.len() > p.len() && word.starts_with(p))
            {
                out.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Names in `counter!("…")`, `gauge!("…")` and `histogram!("…")` calls
/// under `src/`, with a histogram's `_bucket`, `_sum` and `_count`.
fn names_in_source() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for kind in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(kind) {
                // describe_counter!( is a description, not an export.
                if text[..at].ends_with("describe_") {
                    continue;
                }
                let rest = text[at + kind.len()..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else {
                    continue;
                };
                let name = &rest[..rest.find('"').unwrap()];
                out.insert(name.to_owned());
                if kind == "histogram!(" {
                    for s in ["_bucket", "_sum", "_count"] {
                        out.insert(format!("{name}{s}"));
                    }
                }
            }
        }
    }
    out
}

/// Metric names a gateway serves after a little traffic.
async fn names_served() -> BTreeSet<String> {
    let smsc = smsc(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = sluice::gateway::start(config(dir.path(), &smsc))
        .await
        .unwrap();
    let (client, got) = subscriber(&gw.ingest_addr.to_string()).await;
    let batch: Vec<_> = (0..20)
        .map(|i| msg(&format!("m-{i}"), &format!("+1415555{i:04}"), "hi"))
        .collect();
    let ids = accepted_ids(&client.submit(batch).await.unwrap());
    assert_eq!(ids.len(), 20);
    eventually("20 final events", Duration::from_secs(20), || {
        got.terminal_count() == 20
    })
    .await;
    let text = metrics_text(gw.http_addr.unwrap()).await;
    gw.shutdown().await;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every expression of the dashboard's panels and template variables.
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_name_only_exported_metrics() {
    let source = names_in_source();
    let served = names_served().await;
    // The scan sees every sluice_* name a gateway really serves.
    let unseen: Vec<_> = served
        .iter()
        .filter(|n| n.starts_with("sluice_") && !source.contains(*n))
        .collect();
    assert!(
        unseen.is_empty(),
        "served but not found by the source scan: {unseen:?}"
    );
    for n in [
        "sluice_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(served.contains(n), "{n} not served: {served:?}");
    }
    let exported: BTreeSet<String> = source.union(&served).cloned().collect();

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/sluice.json")).expect("dashboard is JSON");
    assert_eq!(dashboard["uid"], "sluice");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() > 10);
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    let in_dashboard = metric_names(&exprs.join("\n"), &["sluice_", "process_"]);
    let in_alerts = metric_names(
        &read("deploy/prometheus/alerts.yml"),
        &["sluice_", "process_"],
    );
    for (file, names) in [
        ("deploy/grafana/sluice.json", &in_dashboard),
        ("deploy/prometheus/alerts.yml", &in_alerts),
    ] {
        let unknown: Vec<_> = names.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics nothing exports: {unknown:?}"
        );
    }
    // What the issue asks the dashboard and the alerts to cover.
    for n in [
        "sluice_smpp_submits_total",
        "sluice_smpp_response_seconds_bucket",
        "sluice_queue_depth",
        "sluice_smpp_throttled_total",
        "sluice_receipts_total",
        "sluice_optouts_total",
        "sluice_spilled_messages",
        "sluice_history_dropped_total",
    ] {
        assert!(in_dashboard.contains(n), "the dashboard lacks {n}");
    }
    for n in [
        "sluice_smpp_bind_up",
        "sluice_smpp_throttled_total",
        "sluice_queue_depth",
        "sluice_receipts_total",
        "sluice_journal_disk_available_bytes",
        "sluice_journal_failed",
        "sluice_cluster_redis_up",
    ] {
        assert!(in_alerts.contains(n), "the alert rules lack {n}");
    }
}

#[test]
fn promtool_accepts_the_rules_and_the_scrape_config() {
    if !external::require(&[&external::PROMTOOL]) {
        return;
    }
    let rules = root().join("deploy/prometheus/alerts.yml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The scrape configuration names the rules where the compose file
    // mounts them; checked with that path pointing at the file here.
    let dir = tempfile::tempdir().unwrap();
    let config = read("deploy/prometheus/prometheus.yml")
        .replace("/etc/prometheus/alerts.yml", rules.to_str().unwrap());
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Answers every `env:`/`file:` reference with a value that fits its key
/// (SMPP passwords at most 8 characters, admin tokens at least 16), and
/// records what was asked.
#[derive(Default)]
struct Provided {
    asked: parking_lot::Mutex<Vec<String>>,
}

impl Provided {
    fn value(&self, name: &str) -> String {
        self.asked.lock().push(name.to_owned());
        if name.to_ascii_lowercase().contains("smsc") {
            "pw345678".into()
        } else {
            format!("value-of-{name}-0123456789")
        }
    }
}

impl SecretSource for Provided {
    fn var(&self, name: &str) -> Option<std::ffi::OsString> {
        Some(self.value(name).into())
    }
    fn read(&self, path: &Path, _limit: u64) -> std::io::Result<Vec<u8>> {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            path.starts_with("/run/secrets/sluice"),
            "{path:?} is not in the mounted Secret"
        );
        Ok(format!("{}\n", self.value(name)).into_bytes())
    }
}

#[test]
fn compose_node_configs_load_and_their_secrets_are_set() {
    let compose = read("deploy/compose/docker-compose.yml");
    let mut ids = BTreeSet::new();
    let mut texts = Vec::new();
    for n in 1..=3 {
        let rel = format!("deploy/compose/gateway-{n}.toml");
        let text = read(&rel);
        let provided = Provided::default();
        let c =
            Config::parse_with(&text, Path::new(&rel), &provided).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node_id, format!("gateway-{n}"));
        assert!(ids.insert(c.node_id.clone()));
        // What `sluice run` checks before it binds (doors beyond loopback
        // need authentication).
        assert_eq!(c.door_problems(), Vec::<String>::new(), "{rel}");
        // Each variable the node reads is set by the compose file.
        for name in provided.asked.lock().iter() {
            assert!(
                compose.contains(&format!("  {name}: ${{{name}:-")),
                "{rel} reads {name}, which docker-compose.yml does not set"
            );
        }
        assert!(
            compose.contains(&format!("./gateway-{n}.toml:/etc/sluice/sluice.toml:ro")),
            "docker-compose.yml does not mount {rel}"
        );
        // Cluster mode is on, through the compose file's Redis.
        assert_eq!(
            c.cluster.redis_url.as_ref().map(|u| u.expose()),
            Some("redis://redis:6379"),
            "{rel}"
        );
        texts.push(text);
    }
    // The nodes differ only in their ids and public URL ports.
    let normalise = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                !l.contains("gateway-") && !l.contains("public_url") && !l.starts_with("# Node ")
            })
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(normalise(&texts[0]), normalise(&texts[1]));
    assert_eq!(normalise(&texts[0]), normalise(&texts[2]));
}

#[test]
fn kubernetes_config_loads_and_its_secrets_are_in_the_secret() {
    let text = read("deploy/k8s/sluice.toml").replace("@POD_NAME@", "sluice-0");
    let provided = Provided::default();
    let c = Config::parse_with(&text, Path::new("deploy/k8s/sluice.toml"), &provided)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node_id, "sluice-0");
    assert_eq!(c.door_problems(), Vec::<String>::new());
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/sluice"));
    let secret = read("deploy/k8s/secret.yaml");
    let asked = provided.asked.lock().clone();
    assert!(asked.len() >= 5, "{asked:?}");
    for name in asked {
        assert!(
            secret.contains(&format!("\n  {name}: ")),
            "deploy/k8s/sluice.toml reads {name}, which secret.yaml does not hold"
        );
    }
    // The probes and the ports the manifests name are the configuration's.
    let sts = read("deploy/k8s/statefulset.yaml");
    for needle in [
        "path: /healthz",
        "path: /readyz",
        "containerPort: 9700",
        "containerPort: 7700",
        "fieldPath: metadata.name",
        "terminationGracePeriodSeconds: 30",
        "mountPath: /var/lib/sluice",
        "volumeClaimTemplates:",
    ] {
        assert!(sts.contains(needle), "statefulset.yaml lacks {needle:?}");
    }
    assert_eq!(c.http.listen.unwrap().port(), 9700);
    assert_eq!(c.ingest.listen.port(), 7700);
}

#[test]
fn the_image_runs_as_sluice_with_its_volume() {
    let docker = read("deploy/Dockerfile");
    for needle in [
        "FROM rust:",
        "FROM debian:${DEBIAN_RELEASE}-slim",
        "USER sluice:sluice",
        "VOLUME /var/lib/sluice",
        "STOPSIGNAL SIGTERM",
        "ca-certificates",
        "EXPOSE 7700 9701 9700 9702 9703 9704 2775",
    ] {
        assert!(
            docker.contains(needle),
            "deploy/Dockerfile lacks {needle:?}"
        );
    }
    let ignore = read(".dockerignore");
    for needle in [
        "target/",
        "fuzz/artifacts/",
        "clients/python/.venv/",
        "node_modules/",
    ] {
        assert!(ignore.contains(needle), ".dockerignore lacks {needle:?}");
    }
}
