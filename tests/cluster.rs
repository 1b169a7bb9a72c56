//! Cluster mode against a real `redis-server` (started here on a free port
//! per test, with its own data directory): opt-outs reach every node,
//! receipts reach the node that sent the message, client_refs are claimed
//! across nodes, and a Redis outage loses and doubles nothing.
//!
//! Needs `redis-server` (`apt-get install redis-server`); skipped with a
//! message when it is missing, unless `SLUICE_REQUIRE_EXTERNAL=1`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use common::*;
use sluice::external;
use sluice::ingest::pb;
use sluice::journal::OptChange;
use sluice::model::Msisdn;

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Option<Redis> {
        if !external::require(&[&external::REDIS_SERVER]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = HeldPort::new().addr().port();
        let r = Redis {
            child: Redis::spawn(dir.path(), port),
            port,
            dir,
        };
        r.wait_ready().await;
        Some(r)
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn restart(&mut self) {
        self.child = Redis::spawn(self.dir.path(), self.port);
        self.wait_ready().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Receipts node `node` has passed on through the orphan stream (read from
/// this test's own Redis: the metrics registry is shared by every gateway
/// of the test process).
async fn orphans_from(redis: &Redis, node: &str) -> usize {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    type Fields = Vec<(String, Vec<u8>)>;
    let entries: Vec<(String, Fields)> = redis::cmd("XRANGE")
        .arg("t:{receipts}:orphans")
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    entries
        .iter()
        .filter(|(_, fields)| {
            fields
                .iter()
                .any(|(k, v)| k == "node" && v == node.as_bytes())
        })
        .flat_map(|(_, fields)| fields.iter().filter(|(k, _)| k == "r"))
        .map(|(_, r)| sluice::cluster::receipts::decode(r).len())
        .sum()
}

/// A node: the embedded config pointed at `smsc` and `redis`, as `node`.
fn node_config(
    dir: &std::path::Path,
    smsc: &sluice::sim::smsc::Smsc,
    redis: &Redis,
    node: &str,
) -> sluice::config::Config {
    let mut c = config(dir, smsc);
    c.node_id = node.into();
    c.cluster.redis_url = Some(sluice::model::Secret::new(redis.url()));
    c.cluster.key_prefix = "t".into();
    c.http.admin_token = Some(sluice::model::Secret::new("operator-token-0001"));
    c
}

fn stop(number: u64, scope: &str, opted_out: bool) -> OptChange {
    OptChange {
        number,
        scope: scope.into(),
        opted_out,
        source: "api".into(),
        keyword: if opted_out { "STOP" } else { "START" }.into(),
        at_ms: sluice::model::now_ms(),
        ..OptChange::default()
    }
}

/// How long until `f` holds, polling every millisecond.
async fn time_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_on_one_node_suppresses_on_the_others_and_a_start_lifts_it() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let smsc = smsc(|_| {}).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = sluice::gateway::start(node_config(da.path(), &smsc, &redis, "a"))
        .await
        .unwrap();
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    let mut took = Vec::new();
    for i in 0..20u64 {
        let n = Msisdn::parse(&format!("+1415555{:04}", 100 + i)).unwrap();
        a.gateway
            .compliance()
            .change(stop(n.as_u64(), "global", true))
            .await
            .unwrap();
        took.push(
            time_until(Duration::from_secs(5), || {
                b.gateway.compliance().check_scope("global", n)
            })
            .await,
        );
    }
    took.sort();
    eprintln!(
        "STOP on A suppresses on B after: median {:?}, max {:?} (20 STOPs)",
        took[10], took[19]
    );
    assert!(took[10] < Duration::from_millis(100), "{took:?}");
    assert!(took[19] < Duration::from_secs(1), "{took:?}");

    // B refuses a message to a number that opted out on A.
    let (client, _got) = subscriber(&b.ingest_addr.to_string()).await;
    let ack = client
        .submit(vec![msg("after-stop", "+14155550100", "hello")])
        .await
        .unwrap();
    assert_eq!(
        ack.results[0].reason,
        pb::RejectReason::Suppressed as i32,
        "{ack:?}"
    );
    // A START on B lifts it on A.
    let n = Msisdn::parse("+14155550100").unwrap();
    b.gateway
        .compliance()
        .change(stop(n.as_u64(), "global", false))
        .await
        .unwrap();
    time_until(Duration::from_secs(5), || {
        !a.gateway.compliance().check_scope("global", n)
    })
    .await;
    // The audit on A names the node the START came from.
    let audit = a.gateway.compliance().audit(n);
    assert_eq!(audit.last().unwrap().node, "b", "{audit:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_arriving_on_the_other_nodes_binds_end_each_message_once() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    // Both nodes bind the same account: the SMSC hands each receipt to
    // the account's binds in turn, so about half land on B.
    let smsc = smsc(|c| c.receipt_delay = Duration::from_millis(50)).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = sluice::gateway::start(node_config(da.path(), &smsc, &redis, "a"))
        .await
        .unwrap();
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    eventually("both nodes bound", Duration::from_secs(10), || {
        smsc.stats().binds >= 4
    })
    .await;
    let (client, got) = subscriber(&a.ingest_addr.to_string()).await;
    // The same tenant subscribed on B too: events stay with the node that
    // holds the message (sticky by node), so B's subscriber gets none.
    let (_on_b, got_on_b) = subscriber(&b.ingest_addr.to_string()).await;
    let batch: Vec<_> = (0..200)
        .map(|i| msg(&format!("r-{i}"), "+14155550123", &format!("hi {i}")))
        .collect();
    let ids = accepted_ids(&client.submit(batch).await.unwrap());
    assert_eq!(ids.len(), 200);
    eventually("every message delivered", Duration::from_secs(30), || {
        got.terminal_count() == 200
    })
    .await;
    for id in &ids {
        let states = got.states.lock()[id].clone();
        assert_eq!(
            states,
            vec![(pb::DeliveryState::StateDelivered, "DELIVRD".into())],
            "message {id}"
        );
    }
    assert_eq!(got_on_b.terminal_count(), 0, "events are sticky by node");
    let forwarded = orphans_from(&redis, "b").await;
    eprintln!("receipts B passed on to A: {forwarded} of 200");
    assert!(forwarded >= 20, "receipts did not cross nodes: {forwarded}");
    assert_eq!(smsc.stats().messages, 200);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retried_on_another_node_gets_the_original_ids_and_sends_nothing_twice() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let smsc = smsc(|_| {}).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = sluice::gateway::start(node_config(da.path(), &smsc, &redis, "a"))
        .await
        .unwrap();
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    let batch = || -> Vec<pb::SubmitMessage> {
        (0..100)
            .map(|i| msg(&format!("retry-{i}"), "+14155550124", &format!("hi {i}")))
            .collect()
    };
    let (ca, _ga) = subscriber(&a.ingest_addr.to_string()).await;
    let first = ca.submit(batch()).await.unwrap();
    let ids = accepted_ids(&first);
    assert_eq!(ids.len(), 100);
    let (cb, _gb) = subscriber(&b.ingest_addr.to_string()).await;
    let again = cb.submit(batch()).await.unwrap();
    for (r, id) in again.results.iter().zip(&ids) {
        assert!(r.duplicate, "{r:?}");
        assert_eq!(r.message_id, *id);
    }
    // Ids are unique across nodes: B's own come from another range.
    let fresh = cb
        .submit(vec![msg("b-own", "+14155550124", "x")])
        .await
        .unwrap();
    let b_id = accepted_ids(&fresh)[0];
    assert_ne!(b_id >> 48, ids[0] >> 48, "{b_id:x} {:x}", ids[0]);
    eventually("101 sent", Duration::from_secs(10), || {
        smsc.stats().messages >= 101
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smsc.stats().messages,
        101,
        "a retried message was sent twice"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_loses_no_opt_out_and_no_message() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let smsc = smsc(|_| {}).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = sluice::gateway::start(node_config(da.path(), &smsc, &redis, "a"))
        .await
        .unwrap();
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    let (client, got) = subscriber(&a.ingest_addr.to_string()).await;
    let ids = accepted_ids(
        &client
            .submit(vec![msg("before", "+14155550125", "x")])
            .await
            .unwrap(),
    );
    assert_eq!(ids.len(), 1);

    redis.kill();
    // Opt-outs on both sides while Redis is away: each node enforces its
    // own at once, and queues them.
    let numbers: Vec<Msisdn> = (0..30)
        .map(|i| Msisdn::parse(&format!("+1415666{:04}", i)).unwrap())
        .collect();
    for (i, n) in numbers.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        node.gateway
            .compliance()
            .change(stop(n.as_u64(), "global", true))
            .await
            .unwrap();
        assert!(node.gateway.compliance().check_scope("global", *n));
    }
    // A submit cannot be checked against the other nodes: refused for a
    // retry, not admitted unchecked.
    let refused = client
        .submit(vec![msg("during", "+14155550125", "y")])
        .await
        .unwrap();
    assert_eq!(
        refused.results[0].reason,
        pb::RejectReason::Unavailable as i32,
        "{refused:?}"
    );

    redis.restart().await;
    for n in &numbers {
        time_until(Duration::from_secs(15), || {
            a.gateway.compliance().check_scope("global", *n)
                && b.gateway.compliance().check_scope("global", *n)
        })
        .await;
    }
    // The retry goes through now, once.
    let retried = eventually_accepted(&client, msg("during", "+14155550125", "y")).await;
    eventually("both delivered", Duration::from_secs(20), || {
        got.terminal_count() == 2
    })
    .await;
    assert_eq!(
        got.state_of(ids[0]),
        Some(pb::DeliveryState::StateDelivered)
    );
    assert_eq!(
        got.state_of(retried),
        Some(pb::DeliveryState::StateDelivered)
    );
    assert_eq!(smsc.stats().messages, 2);
    a.shutdown().await;
    b.shutdown().await;
}

/// Submits `m` until it is accepted (Redis may take a moment to be seen
/// again); its id.
async fn eventually_accepted(client: &sluice::ingest::client::Client, m: pb::SubmitMessage) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ack = client.submit(vec![m.clone()]).await.unwrap();
        if ack.results[0].reason == pb::RejectReason::RejectNone as i32 {
            return ack.results[0].message_id;
        }
        assert!(Instant::now() < deadline, "never accepted: {ack:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_down_catches_up_and_a_new_node_loads_the_whole_state() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let smsc = smsc(|_| {}).await;
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = sluice::gateway::start(node_config(da.path(), &smsc, &redis, "a"))
        .await
        .unwrap();
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    let first = Msisdn::parse("+14155550200").unwrap();
    a.gateway
        .compliance()
        .change(stop(first.as_u64(), "global", true))
        .await
        .unwrap();
    time_until(Duration::from_secs(5), || {
        b.gateway.compliance().check_scope("global", first)
    })
    .await;
    b.shutdown().await;
    // While B is down: an opt-out and an import on A.
    let second = Msisdn::parse("+14155550201").unwrap();
    a.gateway
        .compliance()
        .change(stop(second.as_u64(), "tenant:demo", true))
        .await
        .unwrap();
    let csv = "+14155550300\n+14155550301\n+14155550302\n";
    a.gateway
        .compliance()
        .import("global", csv.as_bytes(), "test.csv", |_| {})
        .await
        .unwrap();
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    let c = sluice::gateway::start(node_config(dc.path(), &smsc, &redis, "c"))
        .await
        .unwrap();
    let imported = Msisdn::parse("+14155550302").unwrap();
    for node in [&b, &c] {
        time_until(Duration::from_secs(5), || {
            let co = node.gateway.compliance();
            co.check_scope("global", first)
                && co.check_scope("tenant:demo", second)
                && co.check_scope("global", imported)
        })
        .await;
    }
    // The cluster view lists the three nodes, alive.
    let (status, _, body) = http(
        a.http_addr.unwrap(),
        "GET",
        "/admin/cluster",
        &[("authorization", "Bearer operator-token-0001")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let nodes: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["alive"] == true)
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["a", "b", "c"], "{body}");
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_outs_a_node_held_before_cluster_mode_reach_the_cluster_when_it_joins() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let smsc = smsc(|_| {}).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let number = |s: &str| Msisdn::parse(s).unwrap();
    let (kept, imported, reopened, lost) = (
        number("+14155550400"),
        number("+14155550401"),
        number("+14155550402"),
        number("+14155550403"),
    );
    let now = sluice::model::now_ms();
    let at = |mut c: OptChange, ms_ago: u64| {
        c.at_ms = now - ms_ago;
        c
    };
    // B is in the cluster first: a STOP for `reopened`, a START for `lost`.
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    let bc = b.gateway.compliance();
    bc.change(at(stop(reopened.as_u64(), "global", true), 5_000))
        .await
        .unwrap();
    bc.change(at(stop(lost.as_u64(), "global", false), 2_000))
        .await
        .unwrap();
    // A, on its own (no cluster): a STOP, an import, a later START for
    // `reopened`, an earlier STOP for `lost`.
    let mut alone = node_config(da.path(), &smsc, &redis, "a");
    alone.cluster.redis_url = None;
    let a = sluice::gateway::start(alone.clone()).await.unwrap();
    let ac = a.gateway.compliance();
    ac.change(at(stop(kept.as_u64(), "tenant:demo", true), 9_000))
        .await
        .unwrap();
    ac.import("global", b"+14155550401\n".as_slice(), "old.csv", |_| {})
        .await
        .unwrap();
    ac.change(at(stop(reopened.as_u64(), "global", false), 1_000))
        .await
        .unwrap();
    ac.change(at(stop(lost.as_u64(), "global", true), 8_000))
        .await
        .unwrap();
    a.shutdown().await;
    // A joins: B learns what A held, the later change winning either way.
    let a = sluice::gateway::start(node_config(da.path(), &smsc, &redis, "a"))
        .await
        .unwrap();
    time_until(Duration::from_secs(10), || {
        let bc = b.gateway.compliance();
        let ac = a.gateway.compliance();
        bc.check_scope("tenant:demo", kept)
            && bc.check_scope("global", imported)
            && !bc.check_scope("global", reopened)
            && !ac.check_scope("global", lost)
    })
    .await;
    assert!(!b.gateway.compliance().check_scope("global", lost));
    assert!(!a.gateway.compliance().check_scope("global", reopened));
    a.shutdown().await;
    // A run without cluster mode, then back in: what it did alone is sent.
    let a = sluice::gateway::start(alone).await.unwrap();
    let offline = number("+14155550404");
    a.gateway
        .compliance()
        .change(stop(offline.as_u64(), "global", true))
        .await
        .unwrap();
    a.shutdown().await;
    let a = sluice::gateway::start(node_config(da.path(), &smsc, &redis, "a"))
        .await
        .unwrap();
    time_until(Duration::from_secs(10), || {
        b.gateway.compliance().check_scope("global", offline)
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// `nodes` nodes (tuned by `tune`) on one Redis and SMSC, each given
/// `per_node` messages of the demo tenant from sender 12345 at once (the
/// clients are kept, so their sessions stay open).
struct Loaded {
    _redis: Redis,
    smsc: sluice::sim::smsc::Smsc,
    _dirs: Vec<tempfile::TempDir>,
    gateways: Vec<sluice::gateway::Running>,
    _clients: Vec<sluice::ingest::client::Client>,
}

/// `nodes` nodes started with `tune`d configurations, each reloaded with
/// `reload` applied (when given), then loaded with `per_node` messages.
async fn loaded_nodes(
    nodes: usize,
    per_node: usize,
    tune: impl Fn(&mut sluice::config::Config),
    reload: Option<&dyn Fn(&mut sluice::config::Config)>,
) -> Option<Loaded> {
    let redis = Redis::start().await?;
    let smsc = smsc(|_| {}).await;
    let dirs: Vec<_> = (0..nodes).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut gateways = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let mut cfg = node_config(d.path(), &smsc, &redis, &format!("n{i}"));
        tune(&mut cfg);
        let mut gw = sluice::gateway::start(cfg.clone()).await.unwrap();
        if let Some(change) = reload {
            change(&mut cfg);
            let r = gw.reload(&cfg);
            assert!(r.at_restart.is_empty(), "{r:?}");
        }
        gateways.push(gw);
    }
    let mut clients = Vec::new();
    for (i, n) in gateways.iter().enumerate() {
        let (c, _) = subscriber(&n.ingest_addr.to_string()).await;
        let batch: Vec<_> = (0..per_node)
            .map(|k| msg(&format!("load-{i}-{k}"), "+14155550126", "x"))
            .collect();
        assert_eq!(
            accepted_ids(&c.submit(batch).await.unwrap()).len(),
            per_node
        );
        clients.push(c);
    }
    Some(Loaded {
        _redis: redis,
        smsc,
        _dirs: dirs,
        gateways,
        _clients: clients,
    })
}

/// `per_node` messages of the demo tenant submitted on each of `nodes`
/// nodes (tuned by `tune`) at once; how long the SMSC took to get them
/// all, and the most that arrived in any one-second window.
async fn shared_rate_run(
    nodes: usize,
    per_node: usize,
    tune: impl Fn(&mut sluice::config::Config),
    reload: Option<&dyn Fn(&mut sluice::config::Config)>,
) -> Option<(Duration, u64)> {
    // Every part bound (an unbound one would be dropped here: Redis gone).
    let Loaded {
        _redis,
        smsc,
        _dirs,
        gateways,
        _clients,
    } = loaded_nodes(nodes, per_node, tune, reload).await?;
    let all = (nodes * per_node) as u64;
    eventually("all sent", Duration::from_secs(20), || {
        smsc.stats().messages >= all
    })
    .await;
    let arrivals = smsc.arrivals();
    assert_eq!(arrivals.len() as u64, all);
    let most = (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| **t < arrivals[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0) as u64;
    for g in gateways {
        g.shutdown().await;
    }
    Some((arrivals[arrivals.len() - 1] - arrivals[0], most))
}

// Both rate tests hold the rate in every one-second window at the SMSC,
// where the carrier counts: the shared schedule leaves a 2% margin for
// late permits and delivery jitter (`cluster::budgets`). Each node
// spending the rate on its own would put `nodes` × the rate in a second
// and finish in `1 / nodes` of the time.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_rate_holds_for_three_nodes_together() {
    const RATE: u64 = 100;
    // 450 messages: 4.5 s at the shared rate, 1.5 s at 3 × RATE.
    let Some((took, most)) = shared_rate_run(
        3,
        150,
        |c| {
            c.carriers[0].rate = RATE as f64;
            c.carriers[0].binds[0].count = 1;
        },
        None,
    )
    .await
    else {
        return;
    };
    eprintln!(
        "450 messages over 3 nodes at a shared {RATE}/s: {took:?}, at most {most} in any 1 s window"
    );
    assert!(most <= RATE, "{most} in one second (limit {RATE})");
    assert!(took >= Duration::from_millis(3_400), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_rate_holds_for_two_nodes_together() {
    const RATE: u64 = 50;
    // 200 messages: 4 s at the shared rate, 2 s at 2 × RATE.
    let Some((took, most)) =
        shared_rate_run(2, 100, |c| c.tenants[0].rate = RATE as f64, None).await
    else {
        return;
    };
    eprintln!(
        "200 messages of one tenant over 2 nodes at a shared {RATE}/s: {took:?}, at most {most} in any 1 s window"
    );
    assert!(most <= RATE, "{most} in one second (limit {RATE})");
    assert!(took >= Duration::from_millis(3_400), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_rate_switched_on_by_a_reload_holds_for_two_nodes_together() {
    const RATE: u64 = 50;
    // Started without a tenant rate, then SIGHUP'd with one: shared at
    // once (before, each node held it on its own until a restart).
    let Some((took, most)) = shared_rate_run(
        2,
        100,
        |c| c.tenants[0].rate = 0.0,
        Some(&|c| c.tenants[0].rate = RATE as f64),
    )
    .await
    else {
        return;
    };
    eprintln!(
        "200 messages of one tenant over 2 nodes at a shared {RATE}/s switched on by a reload: {took:?}, at most {most} in any 1 s window"
    );
    assert!(most <= RATE, "{most} in one second (limit {RATE})");
    assert!(took >= Duration::from_millis(3_400), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senders_rate_holds_for_two_nodes_together() {
    const RATE: u64 = 50;
    // 200 messages from sender 12345: 4 s at the shared rate, 2 s at
    // 2 × RATE (each node holding the sender to RATE on its own).
    let Some((took, most)) = shared_rate_run(
        2,
        100,
        |c| {
            c.senders.short_code_rate = RATE as f64;
        },
        None,
    )
    .await
    else {
        return;
    };
    eprintln!(
        "200 messages of one sender over 2 nodes at a shared {RATE}/s: {took:?}, at most {most} in any 1 s window"
    );
    assert!(most <= RATE, "{most} in one second (limit {RATE})");
    assert!(took >= Duration::from_millis(3_400), "{took:?}");
}

/// `per_node` messages from sender 12345 submitted on each of two nodes
/// (tuned by `tune`); how many reached the SMSC once both nodes' queues
/// hold the sender until tomorrow.
async fn daily_cap_run(per_node: usize, tune: impl Fn(&mut sluice::config::Config)) -> Option<u64> {
    // Every part bound (an unbound one would be dropped here: Redis gone).
    let Loaded {
        _redis,
        smsc,
        _dirs,
        gateways,
        _clients,
    } = loaded_nodes(2, per_node, tune, None).await?;
    // Every message is either at the SMSC or queued at a node that holds
    // the sender until the next UTC day (waits of a second or more; while
    // a node fetches permits it waits 5 ms): nothing more goes today.
    let all = 2 * per_node as u64;
    eventually(
        "the rest held until tomorrow",
        Duration::from_secs(20),
        || {
            let mut queued = 0;
            let held = gateways.iter().all(|g| {
                let s = g.gateway.scheduler();
                let report = s.queue(&s.carriers()[0]).unwrap().report();
                queued += report.queued as u64;
                report.queued == 0
                    || report
                        .senders_limited
                        .iter()
                        .any(|(sender, wait)| sender.ends_with("12345") && *wait > 1.0)
            });
            held && queued > 0 && queued + smsc.stats().messages == all
        },
    )
    .await;
    let sent = smsc.stats().messages;
    for g in gateways {
        g.shutdown().await;
    }
    Some(sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senders_daily_cap_holds_for_two_nodes_together() {
    let Some(sent) = daily_cap_run(25, |c| c.senders.daily_cap = 30).await else {
        return;
    };
    // Each node on its own would send all of its 25.
    assert_eq!(sent, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brands_daily_cap_holds_for_two_nodes_together() {
    let Some(sent) = daily_cap_run(25, |c| {
        c.senders.overrides = vec![sluice::settings::SenderOverride {
            sender: "12345".into(),
            rate: None,
            daily_cap: None,
            brand: Some("acme".into()),
        }];
        c.senders.brands = vec![sluice::settings::BrandConfig {
            name: "acme".into(),
            daily_cap: 20,
        }];
    })
    .await
    else {
        return;
    };
    assert_eq!(sent, 20);
}

/// A node as a process of its own (so it can be SIGKILLed), on `data`.
fn process_config(
    dir: &std::path::Path,
    smsc: &sluice::sim::smsc::Smsc,
    redis: &Redis,
) -> std::path::PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            r#"
node_id = "killed"
data_dir = "{data}"
[cluster]
redis_url = "{url}"
key_prefix = "t"
[ingest]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[public]
listen = "127.0.0.1:0"
[[tenants]]
name = "{TENANT}"
token = "{TOKEN}"
senders = ["12345"]
[[carriers]]
name = "sim"
[[carriers.binds]]
address = "{smsc}"
system_id = "sluice"
password = "pw"
window = 64
count = 1
reconnect_min = "50ms"
reconnect_max = "500ms"
"#,
            data = dir.join("data").display(),
            url = redis.url(),
            smsc = smsc.local_addr(),
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sigkilled_and_restarted_on_its_disk_accounts_for_its_messages() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    // Receipts come 300 ms after each submit: the kill finds most
    // messages written and waiting for theirs, which then arrive on B's
    // bind while this node is down.
    let smsc = smsc(|c| c.receipt_delay = Duration::from_millis(300)).await;
    let (dk, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = process_config(dk.path(), &smsc, &redis);
    let b = sluice::gateway::start(node_config(db.path(), &smsc, &redis, "b"))
        .await
        .unwrap();
    let (mut killed, started) = spawn_gateway_started(&cfg).await;
    let (client, _events) =
        sluice::ingest::client::Client::connect(&started.ingest.to_string(), TENANT, TOKEN)
            .await
            .unwrap();
    let mut ids = Vec::new();
    for round in 0..4 {
        let batch: Vec<_> = (0..100)
            .map(|i| msg(&format!("k-{round}-{i}"), "+14155550127", "x"))
            .collect();
        ids.extend(accepted_ids(&client.submit(batch).await.unwrap()));
    }
    let number = ids[0] >> 48;
    assert!(number > 0, "ids carry the node's number: {:x}", ids[0]);
    let written_at_kill = smsc.stats().messages;
    killed.kill();
    let receipts_at_kill = smsc.stats().receipts_sent;
    drop(client);
    // While it is down: a STOP on B, and a retry of its batch on B gets
    // its ids back without sending anything.
    let n = Msisdn::parse("+14155550128").unwrap();
    b.gateway
        .compliance()
        .change(stop(n.as_u64(), "global", true))
        .await
        .unwrap();
    let (cb, _gb) = subscriber(&b.ingest_addr.to_string()).await;
    let again = cb
        .submit(
            (0..100)
                .map(|i| msg(&format!("k-0-{i}"), "+14155550127", "x"))
                .collect(),
        )
        .await
        .unwrap();
    for (r, id) in again.results.iter().zip(&ids) {
        assert!(r.duplicate && r.message_id == *id, "{r:?}");
    }

    // The receipts of what it wrote come while it is down: on B's binds,
    // which pass them on as orphans.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let forwarded = orphans_from(&redis, "b").await;
        if forwarded as u64 >= written_at_kill {
            break;
        }
        assert!(Instant::now() < deadline, "B passed on {forwarded}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Restarted on its disk: same number, the STOP applied, the receipts
    // that came meanwhile applied from the stream, and every message it
    // acknowledged ends exactly once.
    let (mut killed, started) = spawn_gateway_started(&cfg).await;
    let (client, got) = subscriber(&started.ingest.to_string()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.terminal_count() < 400 {
        assert!(
            Instant::now() < deadline,
            "{} of 400 ended; SMSC got {}",
            got.terminal_count(),
            smsc.stats().messages
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let states = got.states.lock().clone();
    for id in &ids {
        let s = &states[id];
        assert_eq!(s.len(), 1, "message {id:x}: {s:?}");
        assert!(
            matches!(
                s[0].0,
                pb::DeliveryState::StateDelivered | pb::DeliveryState::StateUnknown
            ),
            "{s:?}"
        );
    }
    let fresh = client
        .submit(vec![msg("after-restart", "+14155550128", "x")])
        .await
        .unwrap();
    assert_eq!(
        fresh.results[0].reason,
        pb::RejectReason::Suppressed as i32,
        "the STOP taken on B while this node was down: {fresh:?}"
    );
    let own = accepted_ids(
        &client
            .submit(vec![msg("after-restart-2", "+14155550127", "x")])
            .await
            .unwrap(),
    );
    assert_eq!(own[0] >> 48, number, "the node kept its number");
    let delivered = states
        .values()
        .filter(|s| s[0].0 == pb::DeliveryState::StateDelivered)
        .count();
    eprintln!(
        "killed node: {written_at_kill} written and {receipts_at_kill} receipts sent at the kill; \
         {delivered} of 400 delivered, {} unknown; SMSC got {}",
        400 - delivered,
        smsc.stats().messages
    );
    assert!(smsc.stats().messages <= 401, "sent twice");
    killed.kill();
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mm7_delivery_reports_posted_to_another_node_reach_the_sender() {
    use sluice::config::MmscConfig;
    use sluice::sim::mmsc;
    let Some(redis) = Redis::start().await else {
        return;
    };
    let smsc = smsc(|_| {}).await;
    // The MMSC posts every report to node A's callback listener.
    let (cb_a, cb_b) = (HeldPort::new(), HeldPort::new());
    let sim = mmsc::start(mmsc::MmscConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_url: Some(format!("http://{}/mm7", cb_a.addr())),
        report_delay: Duration::from_millis(20),
        report_retry_delay: Duration::from_millis(100),
        ..mmsc::MmscConfig::default()
    })
    .await
    .unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let with_mmsc = |dir: &std::path::Path, node: &str, callback: std::net::SocketAddr| {
        let mut c = node_config(dir, &smsc, &redis, node);
        c.mmsc = vec![MmscConfig {
            vasp_id: Some("sluice".into()),
            callback_listen: Some(callback),
            ..MmscConfig::new("mmsc", sim.url())
        }];
        c.mms.public_url = "http://PUBLIC".into();
        c
    };
    let a = sluice::gateway::start(with_mmsc(da.path(), "a", cb_a.addr()))
        .await
        .unwrap();
    let b = sluice::gateway::start(with_mmsc(db.path(), "b", cb_b.addr()))
        .await
        .unwrap();
    let (client, got) = subscriber(&b.ingest_addr.to_string()).await;
    let image = bytes::Bytes::from_static(include_bytes!("../data/demo/sample.png"));
    let up = client.put_media("image/png", image).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut m = msg(&format!("mms-{i}"), "+14155550129", "Look!");
        m.media = vec![up.media_id.clone()];
        ids.extend(accepted_ids(&client.submit(vec![m]).await.unwrap()));
    }
    eventually("B's MMS delivered", Duration::from_secs(20), || {
        got.terminal_count() == 5
    })
    .await;
    for id in &ids {
        assert_eq!(got.state_of(*id), Some(pb::DeliveryState::StateDelivered));
    }
    let forwarded = counter_sum(
        &metrics_text(a.http_addr.unwrap()).await,
        "sluice_mm7_reports_forwarded_total",
    );
    assert!(forwarded >= 5.0, "{forwarded}");
    a.shutdown().await;
    b.shutdown().await;
}
