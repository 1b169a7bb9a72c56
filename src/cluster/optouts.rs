//! Opt-outs across the cluster: a STOP taken on one node suppresses on
//! every node.
//!
//! # Outbox → Redis → every node
//! A change made on this node is appended to the outbox
//! (`<data_dir>/cluster/optouts.outbox`, synced) *before* it is journaled
//! and applied here ([`crate::compliance::OptPublisher`]), so a crash
//! cannot apply it here without also publishing it. A publisher task sends
//! the outbox in order, one script call per change (or per chunk of an
//! import), and drops what Redis took. While Redis is away the outbox
//! grows and is sent when it returns; a restart sends what is left.
//!
//! In Redis (all keys tagged `{optouts}`, one slot): a hash per scope,
//! number → `o|at_ms|node` or `i|at_ms|node`, the set of scopes, and one
//! change stream. The script keeps the later change by time (ties by node
//! name) and adds only what it kept to the stream, so sending a change
//! twice is harmless, and a change that lost is answered with the one that
//! won, which this node then applies.
//!
//! Each node follows the stream from its cursor
//! (`<data_dir>/cluster/optouts.cursor`) and applies other nodes' changes
//! through its own opt-out journal ([`Compliance::apply_remote`]), so they
//! hold across its restarts even with Redis away. A node with no cursor,
//! or whose cursor fell off the stream's end, first loads every scope's
//! hash (the full state), then follows from where the stream was when the
//! load began.
//!
//! # Joining with opt-outs of its own
//! A node that held opt-outs before it ran in cluster mode (or made
//! changes during a run without it) seeds them: once, in chunks, it sends
//! every number it suppresses and every number it last opted in, each with
//! the time of its latest change (0 for an imported number); the script
//! keeps the later change per number and adds one stream entry per chunk
//! for what it kept, which the other nodes apply; where the cluster's
//! change is later, this node takes it. `<data_dir>/cluster/optouts.seeded`
//! marks the seed done; a run without cluster mode removes it. Repeating a
//! seed (a crash half-way) is harmless.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::link::{Backoff, Link, Reader};
pub use super::stream::StreamId;
use super::stream::{self, Cursor, Entry};
use super::{ClusterConfig, TARGET};
use crate::compliance::{Compliance, OptPublisher};
use crate::journal::OptChange;

/// Numbers per script call when a bulk change is sent.
const BULK_SEND: usize = 5_000;
/// Stream entries read at once.
const READ_COUNT: usize = 1_000;
/// Longest outbox record accepted when reading the file back.
const MAX_RECORD: usize = 64 << 20;

/// Keeps the later change; adds what it kept to the stream.
/// KEYS: scope hash, stream, scope set. ARGV: number, `o`/`i`, at_ms, node,
/// scope, source, keyword, sender, carrier, stream length.
const APPLY_ONE: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local at, node = string.match(cur, '^%a|(%d+)|(.*)$')
  local a, b = tonumber(at), tonumber(ARGV[3])
  if a and b and (a > b or (a == b and node >= ARGV[4])) then return {0, cur} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], '*', 'k', 'c', 's', ARGV[5], 'n', ARGV[1],
  'op', ARGV[2], 'at', ARGV[3], 'node', ARGV[4], 'src', ARGV[6], 'kw', ARGV[7], 'snd', ARGV[8], 'car', ARGV[9])
return {1, ''}
";

/// Bulk opt-outs: each number kept unless a later change is there.
/// KEYS: scope hash, stream, scope set. ARGV: scope, at_ms, node, stream
/// length, numbers…
const APPLY_BULK: &str = r"
local kept = {}
local v = 'o|' .. ARGV[2] .. '|' .. ARGV[3]
local b = tonumber(ARGV[2])
for i = 5, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local keep = true
  if cur then
    local at, node = string.match(cur, '^%a|(%d+)|(.*)$')
    local a = tonumber(at)
    if a and (a > b or (a == b and node >= ARGV[3])) then keep = false end
  end
  if keep then
    redis.call('HSET', KEYS[1], ARGV[i], v)
    kept[#kept + 1] = ARGV[i]
  end
end
if #kept > 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'k', 'b', 's', ARGV[1],
    'at', ARGV[2], 'node', ARGV[3], 'ns', table.concat(kept, ','))
end
return #kept
";

/// Numbers per seed script call.
const SEED_CHUNK: usize = 2_000;

/// Seeds a node's own opt-outs and opt-ins (from before it joined):
/// each number kept unless a later change is there, one stream entry for
/// what was kept; answers the numbers where a different, later change
/// won, with that change. KEYS: scope hash, stream, scope set. ARGV:
/// scope, node, stream length, then per number: number, `o`/`i`, at_ms,
/// origin node.
const SEED: &str = r"
local ns, ats, ops, lost = {}, {}, {}, {}
for i = 4, #ARGV - 3, 4 do
  local n, op, at, node = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local keep = true
  local cur = redis.call('HGET', KEYS[1], n)
  if cur then
    local a, cn = string.match(cur, '^%a|(%d+)|(.*)$')
    local b = tonumber(at)
    a = tonumber(a)
    if a and b and (a > b or (a == b and cn >= node)) then
      keep = false
      if string.sub(cur, 1, 1) ~= op then
        lost[#lost + 1] = n
        lost[#lost + 1] = cur
      end
    end
  end
  if keep then
    redis.call('HSET', KEYS[1], n, op .. '|' .. at .. '|' .. node)
    ns[#ns + 1] = n
    ats[#ats + 1] = at
    ops[#ops + 1] = op
  end
end
if #ns > 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', 'p', 's', ARGV[1], 'node', ARGV[2],
    'ns', table.concat(ns, ','), 'ats', table.concat(ats, ','), 'ops', table.concat(ops, ''))
end
return lost
";

/// One queued change.
#[derive(Clone, PartialEq, prost::Message)]
struct OutboxRecord {
    /// A single change.
    #[prost(message, optional, tag = "1")]
    change: Option<OptChange>,
    /// Or numbers added to `bulk_scope` at `bulk_at_ms`.
    #[prost(string, tag = "2")]
    bulk_scope: String,
    #[prost(uint64, repeated, tag = "3")]
    bulk_numbers: Vec<u64>,
    #[prost(uint64, tag = "4")]
    bulk_at_ms: u64,
}

/// The durable queue of this node's changes not yet in Redis.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    inner: Mutex<OutboxInner>,
    notify: Notify,
    node_id: String,
}

#[derive(Debug)]
struct OutboxInner {
    file: std::fs::File,
    queue: VecDeque<OutboxRecord>,
    /// Records sent since the file was last rewritten.
    sent: usize,
}

impl Outbox {
    /// Opens the outbox in `dir`, with what a previous run left unsent.
    ///
    /// # Errors
    /// The file cannot be read or opened.
    pub fn open(dir: &Path, node_id: &str) -> std::io::Result<Outbox> {
        let path = dir.join("optouts.outbox");
        let mut bytes = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.read_to_end(&mut bytes)?;
        }
        let queue: VecDeque<OutboxRecord> = decode_records(&bytes).into();
        if !queue.is_empty() {
            tracing::info!(target: TARGET, unsent = queue.len(), "opt-out changes left to publish");
        }
        // Rewritten whole: a torn tail from a crash is cut off.
        let file = rewrite(&path, queue.iter())?;
        Ok(Outbox {
            path,
            inner: Mutex::new(OutboxInner {
                file,
                queue,
                sent: 0,
            }),
            notify: Notify::new(),
            node_id: node_id.to_owned(),
        })
    }

    /// Changes waiting to be sent.
    pub fn pending(&self) -> usize {
        self.inner.lock().queue.len()
    }

    fn push(&self, r: OutboxRecord) -> std::io::Result<()> {
        let mut buf = Vec::new();
        encode_record(&r, &mut buf);
        {
            let mut g = self.inner.lock();
            g.file.write_all(&buf)?;
            g.file.sync_data()?;
            g.queue.push_back(r);
            metrics::gauge!("sluice_cluster_optout_outbox").set(g.queue.len() as f64);
        }
        self.notify.notify_one();
        Ok(())
    }

    fn front(&self) -> Option<OutboxRecord> {
        self.inner.lock().queue.front().cloned()
    }

    /// Drops the first record (sent). The file is emptied when nothing is
    /// left and rewritten every 256 records otherwise: a record sent again
    /// after a crash is harmless (the later change wins in Redis either
    /// way), so the file need not track every send.
    fn pop(&self) -> std::io::Result<()> {
        let mut g = self.inner.lock();
        g.queue.pop_front();
        g.sent += 1;
        metrics::gauge!("sluice_cluster_optout_outbox").set(g.queue.len() as f64);
        if g.queue.is_empty() {
            g.file.set_len(0)?;
            g.file.sync_data()?;
            g.sent = 0;
        } else if g.sent >= 256 {
            let file = rewrite(&self.path, g.queue.iter())?;
            g.file = file;
            g.sent = 0;
        }
        Ok(())
    }
}

impl OptPublisher for Outbox {
    fn record(&self, change: &OptChange) -> std::io::Result<()> {
        self.push(OutboxRecord {
            change: Some(change.clone()),
            ..OutboxRecord::default()
        })
    }

    fn record_bulk(&self, scope: &str, numbers: &[u64], at_ms: u64) -> std::io::Result<()> {
        for chunk in numbers.chunks(BULK_SEND) {
            self.push(OutboxRecord {
                change: None,
                bulk_scope: scope.to_owned(),
                bulk_numbers: chunk.to_vec(),
                bulk_at_ms: at_ms,
            })?;
        }
        Ok(())
    }
}

fn encode_record(r: &OutboxRecord, out: &mut Vec<u8>) {
    use prost::Message;
    let body = r.encode_to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

/// The whole records at the start of `bytes` (a torn or damaged one ends it).
fn decode_records(mut bytes: &[u8]) -> Vec<OutboxRecord> {
    use prost::Message;
    let mut out = Vec::new();
    while bytes.len() >= 8 {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let Some(body) = bytes.get(8..8 + len) else {
            break;
        };
        if len > MAX_RECORD || crc32fast::hash(body) != crc {
            break;
        }
        let Ok(r) = OutboxRecord::decode(body) else {
            break;
        };
        out.push(r);
        bytes = &bytes[8 + len..];
    }
    out
}

/// Writes `records` to `path` atomically; returns the file open for appending.
fn rewrite<'a>(
    path: &Path,
    records: impl Iterator<Item = &'a OutboxRecord>,
) -> std::io::Result<std::fs::File> {
    let mut buf = Vec::new();
    for r in records {
        encode_record(r, &mut buf);
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    std::fs::OpenOptions::new().append(true).open(path)
}

/// Opt-out sharing (see the module doc).
#[derive(Debug)]
pub struct OptSync {
    link: Link,
    reader: Reader,
    compliance: Arc<Compliance>,
    outbox: Arc<Outbox>,
    cursor: Cursor,
    /// Present once this node's own opt-outs from before it joined (or
    /// from a run without cluster mode) are in Redis.
    seeded: PathBuf,
    stream_len: u64,
}

impl OptSync {
    /// Opt-out sharing for `compliance`: its own changes now go through the
    /// outbox in `dir`.
    ///
    /// # Errors
    /// The outbox cannot be opened.
    pub fn new(
        link: Link,
        compliance: Arc<Compliance>,
        dir: &Path,
        node_id: &str,
        cfg: &ClusterConfig,
    ) -> anyhow::Result<Arc<OptSync>> {
        let outbox = Arc::new(Outbox::open(dir, node_id)?);
        compliance.set_publisher(outbox.clone(), node_id);
        Ok(Arc::new(OptSync {
            reader: link.reader()?,
            link,
            compliance,
            outbox,
            cursor: Cursor::at(dir.join("optouts.cursor")),
            seeded: dir.join(SEEDED),
            stream_len: cfg.optout_stream_len,
        }))
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    fn stream(&self) -> String {
        self.link.key("optouts", "changes")
    }

    fn scope_key(&self, scope: &str) -> String {
        self.link.key("optouts", &format!("scope:{scope}"))
    }

    /// Starts the publisher and the follower.
    pub fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, shutdown: &watch::Receiver<bool>) {
        let this = self.clone();
        super::spawn_until_shutdown(tasks, shutdown, async move { this.publish_loop().await });
        let this = self.clone();
        super::spawn_until_shutdown(tasks, shutdown, async move { this.follow_loop().await });
        if !self.seeded.exists() {
            let this = self.clone();
            super::spawn_until_shutdown(tasks, shutdown, async move { this.seed_loop().await });
        }
    }

    /// Seeds Redis with what this node held before it joined, until done;
    /// then idles until shutdown.
    async fn seed_loop(&self) {
        let mut backoff = Backoff::default();
        loop {
            match self.seed().await {
                Ok((sent, kept)) => {
                    if let Err(e) = write_synced(&self.seeded, b"seeded\n") {
                        tracing::error!(target: TARGET, error = %e, "cannot mark the opt-outs as seeded; seeding again at the next start");
                    }
                    tracing::info!(target: TARGET, sent, kept, "this node's own opt-outs are in the cluster");
                    // The gateway's tasks run until shutdown: one that ends
                    // early reads as a failure.
                    return std::future::pending().await;
                }
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "opt-out seeding failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Sends every number this node suppresses, and every number it last
    /// opted in, with the time of its latest change, so a node that held
    /// opt-outs before cluster mode does not keep them to itself. Where
    /// the cluster holds a later, different change, this node takes it.
    /// Safe to repeat: the script keeps the later change. The numbers sent
    /// and those the cluster kept.
    async fn seed(&self) -> anyhow::Result<(u64, u64)> {
        let (mut sent, mut kept) = (0u64, 0u64);
        for scope in self.compliance.scope_names() {
            let (outs, ins) = self.compliance.known_numbers(&scope);
            for chunk in outs.chunks(SEED_CHUNK).chain(ins.chunks(SEED_CHUNK)) {
                let states = self.compliance.latest_changes(chunk, &scope);
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(SEED)
                    .arg(3)
                    .arg(self.scope_key(&scope))
                    .arg(self.stream())
                    .arg(self.link.key("optouts", "scopes"))
                    .arg(&scope)
                    .arg(&self.outbox.node_id)
                    .arg(self.stream_len);
                for (number, (on, at_ms, node)) in chunk.iter().zip(&states) {
                    cmd.arg(*number)
                        .arg(if *on { "o" } else { "i" })
                        .arg(*at_ms)
                        .arg(if node.is_empty() {
                            &self.outbox.node_id
                        } else {
                            node
                        });
                }
                let lost: Vec<(u64, String)> = self.link.query(&cmd).await?;
                sent += chunk.len() as u64;
                kept += (chunk.len() - lost.len()) as u64;
                for (number, current) in lost {
                    if let Some((opted_out, at_ms, origin)) = parse_state(&current) {
                        let winner = OptChange {
                            number,
                            scope: scope.clone(),
                            opted_out,
                            source: "cluster".into(),
                            keyword: "later change".into(),
                            at_ms,
                            origin,
                            ..OptChange::default()
                        };
                        self.compliance.apply_remote(winner).await?;
                    }
                }
            }
        }
        metrics::counter!("sluice_cluster_optouts_published_total").increment(sent);
        Ok((sent, kept))
    }

    async fn publish_loop(&self) {
        let mut backoff = Backoff::default();
        loop {
            let Some(r) = self.outbox.front() else {
                self.outbox.notify.notified().await;
                continue;
            };
            match self.send(&r).await {
                Ok(()) => {
                    backoff.reset();
                    if let Err(e) = self.outbox.pop() {
                        tracing::error!(target: TARGET, error = %e, "opt-out outbox cannot be rewritten");
                        backoff.wait().await;
                    }
                }
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "opt-out publish failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Sends one outbox record; a change that lost to a later one makes
    /// this node apply the winner.
    async fn send(&self, r: &OutboxRecord) -> anyhow::Result<()> {
        if let Some(c) = &r.change {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(APPLY_ONE)
                .arg(3)
                .arg(self.scope_key(&c.scope))
                .arg(self.stream())
                .arg(self.link.key("optouts", "scopes"))
                .arg(c.number)
                .arg(if c.opted_out { "o" } else { "i" })
                .arg(c.at_ms)
                .arg(if c.origin.is_empty() {
                    &self.outbox.node_id
                } else {
                    &c.origin
                })
                .arg(&c.scope)
                .arg(&c.source)
                .arg(&c.keyword)
                .arg(&c.sender)
                .arg(&c.carrier)
                .arg(self.stream_len);
            let (kept, current): (i64, String) = self.link.query(&cmd).await?;
            metrics::counter!("sluice_cluster_optouts_published_total").increment(1);
            if kept == 0
                && let Some((opted_out, at_ms, node)) = parse_state(&current)
            {
                let winner = OptChange {
                    number: c.number,
                    scope: c.scope.clone(),
                    opted_out,
                    source: "cluster".into(),
                    keyword: "later change".into(),
                    at_ms,
                    origin: node,
                    ..OptChange::default()
                };
                self.compliance.apply_remote(winner).await?;
            }
        } else if !r.bulk_numbers.is_empty() {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(APPLY_BULK)
                .arg(3)
                .arg(self.scope_key(&r.bulk_scope))
                .arg(self.stream())
                .arg(self.link.key("optouts", "scopes"))
                .arg(&r.bulk_scope)
                .arg(r.bulk_at_ms)
                .arg(&self.outbox.node_id)
                .arg(self.stream_len);
            for n in &r.bulk_numbers {
                cmd.arg(*n);
            }
            let _kept: i64 = self.link.query(&cmd).await?;
            metrics::counter!("sluice_cluster_optouts_published_total")
                .increment(r.bulk_numbers.len() as u64);
        }
        Ok(())
    }

    async fn follow_loop(&self) {
        let mut backoff = Backoff::default();
        let mut cursor: Option<StreamId> = None;
        loop {
            let result = match cursor {
                None => self.catch_up().await.map(Some),
                Some(at) => self.follow(at).await.map(Some),
            };
            match result {
                Ok(next) => {
                    backoff.reset();
                    if next != cursor
                        && let Some(c) = next
                    {
                        self.cursor.save(c);
                    }
                    cursor = next;
                }
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "opt-out follow failed; retrying");
                    // After an outage, check again whether the stream still
                    // reaches back to where this node stopped.
                    cursor = None;
                    backoff.wait().await;
                }
            }
        }
    }

    /// Where to follow from: this node's cursor if the stream still holds
    /// everything after it, else after a full load.
    async fn catch_up(&self) -> anyhow::Result<StreamId> {
        let first = stream::edge(&self.link, &self.stream(), true).await?;
        if let Some(c) = self.cursor.load()
            && first.is_none_or(|f| f <= c.next())
        {
            return Ok(c);
        }
        self.full_load().await
    }

    /// Loads every scope's state; returns the stream position it is as of.
    async fn full_load(&self) -> anyhow::Result<StreamId> {
        let last = stream::edge(&self.link, &self.stream(), false)
            .await?
            .unwrap_or_default();
        let scopes: Vec<String> = self
            .link
            .query(redis::cmd("SMEMBERS").arg(self.link.key("optouts", "scopes")))
            .await?;
        let (mut outs, mut ins) = (0u64, 0u64);
        for scope in scopes {
            if self.compliance.is_scope(&scope) {
                let (o, i) = self.load_scope(&scope).await?;
                outs += o;
                ins += i;
            }
        }
        tracing::info!(target: TARGET, opted_out = outs, opted_in = ins, "opt-outs loaded from the cluster");
        Ok(last)
    }

    /// Applies what the cluster holds for `scope` where it is later than
    /// this node's own; the opt-outs and opt-ins that changed anything.
    async fn load_scope(&self, scope: &str) -> anyhow::Result<(u64, u64)> {
        let key = self.scope_key(scope);
        let (mut outs, mut ins) = (0u64, 0u64);
        let mut cur = 0u64;
        loop {
            let (next, pairs): (u64, Vec<(u64, String)>) = self
                .link
                .query(
                    redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(cur)
                        .arg("COUNT")
                        .arg(5_000),
                )
                .await?;
            let mut bulk: Vec<(u64, u64)> = Vec::new();
            for (number, v) in pairs {
                let Some((opted_out, at_ms, node)) = parse_state(&v) else {
                    continue;
                };
                let (here, at_here) = self.compliance.state_of(number, scope);
                if here == opted_out || at_here > at_ms {
                    continue;
                }
                if opted_out {
                    bulk.push((number, at_ms));
                } else {
                    ins += u64::from(
                        self.compliance
                            .apply_remote(OptChange {
                                number,
                                scope: scope.to_owned(),
                                opted_out,
                                source: "cluster".into(),
                                keyword: "full load".into(),
                                at_ms,
                                origin: node,
                                ..OptChange::default()
                            })
                            .await?,
                    );
                }
            }
            outs += self.compliance.apply_remote_timed(scope, &bulk).await?;
            if next == 0 {
                break;
            }
            cur = next;
        }
        Ok((outs, ins))
    }

    /// Reads and applies what follows `at`; returns the new position.
    async fn follow(&self, at: StreamId) -> anyhow::Result<StreamId> {
        let mut last = at;
        for entry in stream::after(&self.reader, &self.stream(), at, READ_COUNT).await? {
            self.apply_entry(&entry).await?;
            last = entry.id;
        }
        Ok(last)
    }

    async fn apply_entry(&self, entry: &Entry) -> anyhow::Result<()> {
        let text = |k: &str| entry.text(k);
        let node = text("node");
        if node == self.outbox.node_id {
            return Ok(());
        }
        let scope = text("s");
        if !self.compliance.is_scope(&scope) {
            return Ok(());
        }
        let at_ms = text("at").parse().unwrap_or(0);
        match text("k").as_str() {
            "c" => {
                let Ok(number) = text("n").parse() else {
                    return Ok(());
                };
                let change = OptChange {
                    number,
                    scope,
                    opted_out: text("op") == "o",
                    source: text("src"),
                    keyword: text("kw"),
                    sender: text("snd"),
                    carrier: text("car"),
                    at_ms,
                    origin: node,
                };
                self.compliance.apply_remote(change).await?;
            }
            "b" => {
                let numbers: Vec<u64> = text("ns")
                    .split(',')
                    .filter_map(|n| n.parse().ok())
                    .collect();
                self.compliance
                    .apply_remote_bulk(&scope, &numbers, at_ms)
                    .await?;
            }
            "p" => {
                let (outs, ins) = parse_seeded(&text("ns"), &text("ats"), &text("ops"));
                self.compliance.apply_remote_timed(&scope, &outs).await?;
                for (number, at_ms) in ins {
                    let change = OptChange {
                        number,
                        scope: scope.clone(),
                        opted_out: false,
                        source: "cluster".into(),
                        keyword: "seeded".into(),
                        at_ms,
                        origin: node.clone(),
                        ..OptChange::default()
                    };
                    self.compliance.apply_remote(change).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The marker file of a finished seed, in the cluster directory.
const SEEDED: &str = "optouts.seeded";

/// Forgets that this node's opt-outs were seeded: a run without cluster
/// mode records changes the cluster never sees, so the next run in cluster
/// mode seeds again.
pub fn forget_seed(data_dir: &Path) {
    let path = super::dir(data_dir).join(SEEDED);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(target: TARGET, error = %e, "cannot remove the opt-out seed marker");
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Numbers, each with the time of its change.
type Timed = Vec<(u64, u64)>;

/// The numbers of a seed entry: opt-outs and opt-ins, each with its time
/// (entries whose three lists disagree in length are cut to the shortest).
fn parse_seeded(ns: &str, ats: &str, ops: &str) -> (Timed, Timed) {
    let (mut outs, mut ins) = (Vec::new(), Vec::new());
    for ((n, at), op) in ns.split(',').zip(ats.split(',')).zip(ops.bytes()) {
        let (Ok(n), Ok(at)) = (n.parse(), at.parse()) else {
            continue;
        };
        match op {
            b'o' => outs.push((n, at)),
            b'i' => ins.push((n, at)),
            _ => {}
        }
    }
    (outs, ins)
}

/// Fuzz hook: decodes outbox bytes as a restart reads them, re-encodes
/// what it read and decodes that again; the records and the re-read count.
#[doc(hidden)]
pub fn fuzz_outbox(bytes: &[u8]) -> (usize, usize) {
    let records = decode_records(bytes);
    let mut again = Vec::new();
    for r in &records {
        encode_record(r, &mut again);
    }
    let back = decode_records(&again);
    assert_eq!(back, records, "outbox records survive their format");
    (records.len(), back.len())
}

/// Fuzz hook: reads a hash value of the opt-out state.
#[doc(hidden)]
pub fn fuzz_state(v: &str) -> Option<(bool, u64, String)> {
    parse_state(v)
}

/// Fuzz hook: reads a seed entry's lists (numbers, times, `o`/`i` flags,
/// split from `v` at `\n`); the opt-outs and opt-ins read.
#[doc(hidden)]
pub fn fuzz_seeded(v: &str) -> (usize, usize) {
    let mut parts = v.splitn(3, '\n');
    let (ns, ats, ops) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let (outs, ins) = parse_seeded(ns, ats, ops);
    (outs.len(), ins.len())
}

/// `o|at|node` / `i|at|node` → (opted out, at, node).
fn parse_state(v: &str) -> Option<(bool, u64, String)> {
    let mut it = v.splitn(3, '|');
    let op = it.next()?;
    let at = it.next()?.parse().ok()?;
    let node = it.next()?.to_owned();
    match op {
        "o" => Some((true, at, node)),
        "i" => Some((false, at, node)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_keeps_unsent_changes_across_a_restart_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path(), "n1").unwrap();
        o.record(&OptChange {
            number: 14155550100,
            scope: "global".into(),
            opted_out: true,
            ..OptChange::default()
        })
        .unwrap();
        o.record_bulk("global", &[1, 2, 3], 7).unwrap();
        drop(o);
        // A torn record at the end, as a crash mid-append leaves it.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("optouts.outbox"))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        let o = Outbox::open(dir.path(), "n1").unwrap();
        assert_eq!(o.pending(), 2);
        o.pop().unwrap();
        drop(o);
        // The sent record may come back (sending twice is harmless); the
        // unsent one always does.
        let o = Outbox::open(dir.path(), "n1").unwrap();
        assert!(o.pending() >= 1);
        o.pop().unwrap();
        o.pop().unwrap();
        drop(o);
        let o = Outbox::open(dir.path(), "n1").unwrap();
        assert_eq!(o.pending(), 0, "an emptied outbox stays empty");
    }

    #[test]
    fn the_committed_fuzz_seeds_hold_real_records() {
        let seed = include_bytes!("../../fuzz/seeds/cluster_state/ex-outbox");
        assert_eq!(fuzz_outbox(&seed[1..]), (2, 2));
        let torn = include_bytes!("../../fuzz/seeds/cluster_state/ex-outbox-torn");
        assert_eq!(fuzz_outbox(&torn[1..]), (1, 1));
        let records = decode_records(&seed[1..]);
        assert_eq!(records[0].change.as_ref().unwrap().keyword, "STOP");
        assert_eq!(records[1].bulk_numbers.len(), 3);
        let orphans = include_bytes!("../../fuzz/seeds/cluster_state/ex-orphans");
        assert_eq!(crate::cluster::receipts::decode(&orphans[1..]).len(), 2);
    }

    #[test]
    fn a_seed_entry_reads_each_number_with_its_own_time_and_skips_bad_ones() {
        let (outs, ins) = parse_seeded("11,12,x,14,15", "100,0,5,7", "oiooi");
        assert_eq!(outs, [(11, 100), (14, 7)]);
        assert_eq!(ins, [(12, 0)]);
        assert_eq!(parse_seeded("", "", ""), (vec![], vec![]));
    }

    #[test]
    fn hostile_outbox_bytes_never_panic() {
        for bytes in [
            &b""[..],
            &[255, 255, 255, 255, 0, 0, 0, 0][..],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0xff][..],
        ] {
            assert!(decode_records(bytes).is_empty());
        }
        assert_eq!(parse_state("o|12|n1"), Some((true, 12, "n1".into())));
        assert_eq!(parse_state("x|12|n1"), None);
        assert_eq!(parse_state("o|-1|n1"), None);
        assert!(StreamId::parse("1-2").unwrap() < StreamId::parse("2-0").unwrap());
        assert_eq!(StreamId(5, 1).next(), StreamId(5, 2));
    }
}
