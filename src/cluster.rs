//! Cluster mode: several gateways sharing state through Redis
//! (`[cluster] redis_url`; absent = one node on its own, unchanged).
//!
//! # What it owns
//! - [`link`]: the Redis connections, whether Redis is reachable
//!   (`sluice_cluster_redis_up`) and the key names (every key carries a
//!   Redis Cluster hash tag, so each Lua script touches one slot).
//! - Membership ([`Cluster::start`]): each node registers under its
//!   `node_id`, takes a node number from Redis once (kept in
//!   `<data_dir>/cluster/node`; message ids start at `number << 48`, so
//!   ids are unique across the cluster) and beats a heartbeat;
//!   `GET /admin/cluster` lists the nodes seen.
//! - [`optouts`]: every local opt-out and opt-in goes to a durable outbox
//!   first, then to Redis (a hash per scope, last writer wins by time, and
//!   one change stream); each node follows the stream and applies what
//!   other nodes changed through its own journal. With Redis away, a node
//!   enforces what it has, queues its own changes and publishes them when
//!   Redis returns.
//! - [`claims`]: `(tenant, client_ref)` claims, one script call per batch,
//!   so a retry on another node gets the original id.
//! - [`receipts`]: receipts that arrive on a node that did not send the
//!   message go to the node that did, through one stream of orphan
//!   receipts.
//! - [`budgets`]: a carrier's `rate` and a tenant's `rate` hold for the
//!   cluster as a whole: nodes lease stretches of one shared schedule from
//!   Redis.
//! - [`caps`]: a sender's and a brand's daily caps hold for the cluster as
//!   a whole: nodes take chunks of each day's count from Redis.
//!
//! What stays on each node: its messages (its journal is its partition;
//! `docs/ARCHITECTURE.md` says how a lost node's disk is recovered), their
//! events (a tenant's stream subscribers receive the events of the
//! messages they submitted on that node; webhooks are posted by the node
//! that owns the message), and the limits other than carrier and tenant
//! rates and daily caps (bind rates, sender rates: each node enforces them
//! on its own traffic).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub mod budgets;
pub mod caps;
pub mod claims;
pub mod link;
pub mod optouts;
pub mod receipts;
pub mod stream;

pub use link::Link;

const TARGET: &str = "sluice::cluster";

pub use crate::settings::ClusterConfig;

/// One node as the cluster sees it (`GET /admin/cluster`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    /// `node_id`.
    pub node_id: String,
    /// The number its message ids start with.
    pub number: u64,
    /// Its carrier binds: carrier name → binds up.
    pub binds: Vec<(String, usize)>,
    /// Messages live on it.
    pub live: u64,
    /// Wall-clock ms of its last heartbeat.
    pub seen_ms: u64,
    /// Its version.
    pub version: String,
}

/// What a node publishes about itself each heartbeat.
pub trait NodeStatus: Send + Sync + 'static {
    /// Carrier name → binds up.
    fn binds(&self) -> Vec<(String, usize)>;
    /// Messages live.
    fn live(&self) -> u64;
}

/// This node's membership of the cluster.
#[derive(Debug)]
pub struct Cluster {
    link: Link,
    node_id: String,
    number: u64,
    node_timeout: Duration,
    heartbeat: Duration,
}

impl Cluster {
    /// Joins the cluster: takes (or finds) this node's number.
    ///
    /// # Errors
    /// The URL is invalid, or this node has no number yet and Redis cannot
    /// be reached to take one (a node that has joined once starts without
    /// Redis).
    pub async fn join(
        cfg: &ClusterConfig,
        node_id: &str,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Option<Arc<Cluster>>> {
        let Some(url) = &cfg.redis_url else {
            return Ok(None);
        };
        let link = Link::open(url.expose(), &cfg.key_prefix)?;
        let dir = data_dir.join("cluster");
        std::fs::create_dir_all(&dir)?;
        let number = node_number(&link, node_id, &dir.join("node")).await?;
        tracing::info!(target: TARGET, node = %node_id, number, "joined the cluster");
        Ok(Some(Arc::new(Cluster {
            link,
            node_id: node_id.to_owned(),
            number,
            node_timeout: cfg.node_timeout,
            heartbeat: cfg.heartbeat,
        })))
    }

    /// The Redis link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's number: its message ids start at `number << 48`.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The first message id this node may give.
    pub fn first_message_id(&self) -> u64 {
        self.number << 48
    }

    /// Beats the heartbeat until shutdown.
    pub fn start(
        self: &Arc<Self>,
        status: Arc<dyn NodeStatus>,
        tasks: &mut JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let this = self.clone();
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(this.heartbeat);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => break,
                }
                let info = NodeInfo {
                    node_id: this.node_id.clone(),
                    number: this.number,
                    binds: status.binds(),
                    live: status.live(),
                    seen_ms: crate::model::now_ms(),
                    version: env!("CARGO_PKG_VERSION").into(),
                };
                let json = serde_json::to_string(&info).unwrap_or_default();
                let _ = this
                    .link
                    .run(
                        redis::cmd("HSET")
                            .arg(this.link.key("nodes", "members"))
                            .arg(&this.node_id)
                            .arg(json),
                    )
                    .await;
                if let Ok(nodes) = this.nodes().await {
                    let live = nodes
                        .iter()
                        .filter(|n| this.is_alive(n, crate::model::now_ms()))
                        .count();
                    metrics::gauge!("sluice_cluster_nodes").set(live as f64);
                }
            }
        });
    }

    fn is_alive(&self, n: &NodeInfo, now: u64) -> bool {
        n.seen_ms + self.node_timeout.as_millis() as u64 >= now
    }

    /// Every node registered, with whether it is alive.
    ///
    /// # Errors
    /// Redis could not be reached.
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeInfo>> {
        let raw: Vec<(String, String)> = self
            .link
            .query(redis::cmd("HGETALL").arg(self.link.key("nodes", "members")))
            .await?;
        let mut nodes: Vec<NodeInfo> = raw
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_str(&v).ok())
            .collect();
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }

    /// The cluster as JSON for `GET /admin/cluster`.
    pub async fn view(&self) -> serde_json::Value {
        let now = crate::model::now_ms();
        match self.nodes().await {
            Ok(nodes) => serde_json::json!({
                "node_id": self.node_id,
                "redis": "up",
                "nodes": nodes.iter().map(|n| serde_json::json!({
                    "node_id": n.node_id,
                    "number": n.number,
                    "alive": self.is_alive(n, now),
                    "seen_ms_ago": now.saturating_sub(n.seen_ms),
                    "live_messages": n.live,
                    "binds": n.binds.iter().map(|(c, up)| serde_json::json!({"carrier": c, "up": up})).collect::<Vec<_>>(),
                    "version": n.version,
                })).collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({
                "node_id": self.node_id,
                "redis": "down",
                "error": crate::model::LogSafe::display(&e).to_string(),
                "nodes": [],
            }),
        }
    }
}

/// This node's number: read from `path`, else taken from Redis (the same
/// number again for a `node_id` that had one) and written to `path`.
async fn node_number(link: &Link, node_id: &str, path: &std::path::Path) -> anyhow::Result<u64> {
    if let Ok(s) = std::fs::read_to_string(path)
        && let Some((id, n)) = s.trim().split_once(' ')
        && id == node_id
        && let Ok(n) = n.parse::<u64>()
    {
        return Ok(n);
    }
    const TAKE: &str = r"
local n = redis.call('HGET', KEYS[1], ARGV[1])
if n then return tonumber(n) end
n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], n)
return n
";
    let n: u64 = link
        .query(
            redis::cmd("EVAL")
                .arg(TAKE)
                .arg(2)
                .arg(link.key("nodes", "numbers"))
                .arg(link.key("nodes", "next_number"))
                .arg(node_id),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cluster: cannot take a node number from Redis: {e}"))?;
    if n == 0 || n >= 1 << 15 {
        anyhow::bail!("cluster: node number {n} out of range");
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{node_id} {n}\n"))?;
    std::fs::rename(&tmp, path)?;
    Ok(n)
}

/// Runs `work` (a loop that never ends by itself) until shutdown.
pub(crate) fn spawn_until_shutdown(
    tasks: &mut JoinSet<()>,
    shutdown: &watch::Receiver<bool>,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut stop = shutdown.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = work => {}
            _ = stop.changed() => {}
        }
    });
}

/// The directory of the cluster's local files.
pub fn dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("cluster")
}
