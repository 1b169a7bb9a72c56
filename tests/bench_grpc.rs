//! `sluice bench --grpc`: the same load through the gRPC door (batches by
//! `SubmitBatch`, events over the `Events` stream), its counts checked
//! against the simulator's (a binary of its own: the metrics recorder is
//! process-wide).

use std::collections::BTreeMap;

use sluice::loadgen::{self, BenchOptions, Embedded};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_through_the_grpc_door_agrees_with_the_simulator() {
    let opts = BenchOptions {
        embedded: true,
        grpc: true,
        messages: 3000,
        connections: 1,
        pipeline: 2,
        batch: 100,
        mix: "gsm7=70,unicode=10,multipart=10,invalid=10"
            .parse()
            .unwrap(),
        quiet: true,
        drain_timeout: std::time::Duration::from_secs(20),
        ..BenchOptions::default()
    };
    let env = Embedded::start(&opts).await.unwrap();
    let report = loadgen::run_against(&opts, &env.target(), CancellationToken::new())
        .await
        .unwrap();
    let sim = env.smsc().stats();
    env.shutdown().await;
    let text = report.render();
    assert!(text.contains("through the gRPC door"), "{text}");
    assert_eq!(report.offered, 3000, "{text}");
    assert_eq!(report.accepted, 2700, "{text}");
    assert_eq!(
        report.rejected,
        BTreeMap::from([("invalid_number".to_owned(), 300)]),
        "{text}"
    );
    assert_eq!(report.lost, 0, "{text}");
    assert_eq!(report.errors, 0, "{text}");
    assert_eq!(report.duplicate_accepts, 0, "{text}");
    assert_eq!(report.ack_latency.count, 30, "one sample per batch: {text}");
    assert_eq!(report.terminal_total, report.accepted, "{text}");
    assert_eq!(report.without_terminal, 0, "{text}");
    assert_eq!(report.unmatched_events, 0, "each event once: {text}");
    assert_eq!(sim.messages, report.accepted, "{text}");
    assert_eq!(sim.duplicates, 0, "{text}");
    assert!(report.counts.agree, "{text}");
}
