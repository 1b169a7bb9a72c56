//! Receipts across nodes: a carrier may deliver a receipt on any bind of
//! the account, so with several nodes bound most receipts can arrive on a
//! node that did not send the message.
//!
//! A final receipt whose carrier id is unknown on the node that got it (an
//! orphan; [`crate::receipts::OrphanSink`]) is buffered and written, every
//! 10 ms, as one entry of the orphan stream (`{receipts}:orphans`). Every
//! node follows that stream (from its cursor in
//! `<data_dir>/cluster/receipts.cursor`, so a node that was down catches
//! up while the stream still holds the entries) and offers each receipt
//! from another node to its own correlation
//! ([`Receipts::remote_receipt`]): the node that sent the part ends the
//! message, exactly once (the correlation entry is taken by whoever ends
//! it); the others park it like an early receipt, in case their own
//! submit_sm_resp naming it is still on its way.
//!
//! # Why a stream of orphans and not a correlation table in Redis
//! Writing every carrier id to Redis would cost a write per part and, at
//! 100,000 messages per second kept for a 48-hour receipt window, ~17
//! billion entries. An orphan costs one buffered entry, shared by every
//! orphan of the same 10 ms: a few Redis operations per second per node,
//! whatever the message rate; each node reads every orphan and answers
//! from its in-memory correlation.
//!
//! # Entry format
//! Field `node` (the sender) and field `r`: receipts back to back, each
//! `u16 carrier length, carrier, u16 id length, id, u8 stat length, stat
//! word, u32 error code + 1 (0: none)`, big-endian. [`decode`] checks every
//! length (fuzzed by `fuzzing::cluster_receipts`).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::link::{Backoff, Link, Reader};
use super::stream::{self, Cursor, StreamId};
use super::{ClusterConfig, TARGET};
use crate::receipts::{OrphanSink, Receipts};
use crate::smpp::receipt::{Receipt, ReceiptState};

/// How often buffered orphans are written.
const FLUSH: Duration = Duration::from_millis(10);
/// Most orphans buffered while Redis is away (the oldest go first).
const MAX_BUFFERED: usize = 100_000;

/// One receipt in transit between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// Carrier name.
    pub carrier: Bytes,
    /// Carrier message id, as given.
    pub id: Bytes,
    /// Stat word.
    pub stat: Bytes,
    /// Error code.
    pub error: Option<u32>,
}

/// Appends one orphan to `out`.
pub fn encode(o: &Orphan, out: &mut Vec<u8>) {
    let cap = |b: &Bytes, max: usize| b.slice(..b.len().min(max));
    let (carrier, id, stat) = (cap(&o.carrier, 255), cap(&o.id, 255), cap(&o.stat, 32));
    out.put_u16(carrier.len() as u16);
    out.put_slice(&carrier);
    out.put_u16(id.len() as u16);
    out.put_slice(&id);
    out.put_u8(stat.len() as u8);
    out.put_slice(&stat);
    out.put_u32(o.error.map_or(0, |e| e.saturating_add(1)));
}

/// The orphans in `bytes`; stops at the first that does not fit.
pub fn decode(bytes: &[u8]) -> Vec<Orphan> {
    let mut out = Vec::new();
    let mut b = bytes;
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (b.get(..n)?, b.get(n..)?);
        *b = tail;
        Some(head)
    }
    fn one(b: &mut &[u8]) -> Option<Orphan> {
        let n = take(b, 2)?;
        let carrier = take(b, usize::from(u16::from_be_bytes([n[0], n[1]])))?;
        let n = take(b, 2)?;
        let id = take(b, usize::from(u16::from_be_bytes([n[0], n[1]])))?;
        let n = take(b, 1)?;
        let stat = take(b, usize::from(n[0]))?;
        let e = take(b, 4)?;
        let e = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        Some(Orphan {
            carrier: Bytes::copy_from_slice(carrier),
            id: Bytes::copy_from_slice(id),
            stat: Bytes::copy_from_slice(stat),
            error: e.checked_sub(1),
        })
    }
    while !b.is_empty() {
        match one(&mut b) {
            Some(o) => out.push(o),
            None => break,
        }
    }
    out
}

/// Orphan receipts out and in (see the module doc).
pub struct ReceiptSync {
    link: Link,
    reader: Reader,
    receipts: Arc<Receipts>,
    node_id: String,
    /// Oldest first; a deque, so dropping the oldest at the cap is O(1).
    buffer: Mutex<std::collections::VecDeque<Orphan>>,
    cursor: Cursor,
    stream_len: u64,
}

impl std::fmt::Debug for ReceiptSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSync")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl OrphanSink for ReceiptSync {
    fn orphan(&self, carrier: &Arc<str>, r: &Receipt) {
        let mut b = self.buffer.lock();
        if b.len() >= MAX_BUFFERED {
            b.pop_front();
            metrics::counter!("sluice_cluster_receipts_dropped_total").increment(1);
        }
        b.push_back(Orphan {
            carrier: Bytes::copy_from_slice(carrier.as_bytes()),
            id: r.message_id.clone(),
            stat: Bytes::copy_from_slice(r.state.stat_word()),
            error: r.error_code,
        });
    }
}

impl ReceiptSync {
    /// Orphan receipts of `receipts` go to the cluster from now on.
    pub fn new(
        link: Link,
        receipts: Arc<Receipts>,
        node_id: &str,
        dir: &std::path::Path,
        cfg: &ClusterConfig,
    ) -> anyhow::Result<Arc<ReceiptSync>> {
        let sync = Arc::new(ReceiptSync {
            reader: link.reader()?,
            link,
            receipts: receipts.clone(),
            node_id: node_id.to_owned(),
            buffer: Mutex::default(),
            cursor: Cursor::at(dir.join("receipts.cursor")),
            stream_len: cfg.receipt_stream_len,
        });
        receipts.set_orphans(sync.clone());
        Ok(sync)
    }

    fn stream(&self) -> String {
        self.link.key("receipts", "orphans")
    }

    /// Starts the writer and the follower.
    pub fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, shutdown: &watch::Receiver<bool>) {
        let this = self.clone();
        super::spawn_until_shutdown(tasks, shutdown, async move { this.write_loop().await });
        let this = self.clone();
        super::spawn_until_shutdown(tasks, shutdown, async move { this.follow_loop().await });
    }

    async fn write_loop(&self) {
        let mut backoff = Backoff::default();
        let mut tick = tokio::time::interval(FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let batch = std::mem::take(&mut *self.buffer.lock());
            if batch.is_empty() {
                continue;
            }
            let mut data = Vec::with_capacity(batch.len() * 40);
            for o in &batch {
                encode(o, &mut data);
            }
            let r = self
                .link
                .run(
                    redis::cmd("XADD")
                        .arg(self.stream())
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(self.stream_len)
                        .arg("*")
                        .arg("node")
                        .arg(&self.node_id)
                        .arg("r")
                        .arg(data),
                )
                .await;
            match r {
                Ok(()) => {
                    backoff.reset();
                    metrics::counter!("sluice_cluster_receipts_forwarded_total")
                        .increment(batch.len() as u64);
                }
                Err(_) => {
                    // Put back in front of what came meanwhile.
                    {
                        let mut b = self.buffer.lock();
                        let newer = std::mem::replace(&mut *b, batch);
                        b.extend(newer);
                        let excess = b.len().saturating_sub(MAX_BUFFERED);
                        b.drain(..excess);
                    }
                    backoff.wait().await;
                }
            }
        }
    }

    async fn follow_loop(&self) {
        let mut backoff = Backoff::default();
        // Resume where this node stopped; a node new to the cluster starts
        // at the stream's end (older orphans belong to messages it never
        // sent).
        let mut cursor = self.cursor.load();
        loop {
            let at = match cursor {
                Some(c) => c,
                None => match stream::edge(&self.link, &self.stream(), false).await {
                    Ok(c) => {
                        let c = c.unwrap_or_default();
                        // Kept at once: a crash before the first orphan
                        // must resume here, not at a later end.
                        self.cursor.save(c);
                        cursor = Some(c);
                        c
                    }
                    Err(_) => {
                        backoff.wait().await;
                        continue;
                    }
                },
            };
            match self.follow(at).await {
                Ok(next) => {
                    backoff.reset();
                    if Some(next) != cursor {
                        self.cursor.save(next);
                    }
                    cursor = Some(next);
                }
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "receipt follow failed; retrying");
                    cursor = Some(at);
                    backoff.wait().await;
                }
            }
        }
    }

    async fn follow(&self, at: StreamId) -> anyhow::Result<StreamId> {
        let mut last = at;
        for entry in stream::after(&self.reader, &self.stream(), at, 256).await? {
            last = entry.id;
            if entry.bytes("node") == self.node_id.as_bytes() {
                continue;
            }
            for o in decode(entry.bytes("r")) {
                self.offer(o);
            }
        }
        Ok(last)
    }

    /// Offers one receipt from another node to this node's correlation.
    fn offer(&self, o: Orphan) {
        let Ok(carrier) = std::str::from_utf8(&o.carrier) else {
            return;
        };
        let carrier: Arc<str> = carrier.into();
        let receipt = Receipt::bare(o.id, ReceiptState::from_stat_word(&o.stat), o.error);
        if !receipt.is_final() {
            return;
        }
        if let Some(publish) = self.receipts.remote_receipt(&carrier, receipt) {
            tokio::spawn(publish);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_round_trip_and_hostile_bytes_stop_cleanly() {
        let a = Orphan {
            carrier: Bytes::from_static(b"smsc-a"),
            id: Bytes::from_static(b"0A1B2C"),
            stat: Bytes::from_static(b"DELIVRD"),
            error: Some(0),
        };
        let b = Orphan {
            carrier: Bytes::from_static(b"smsc-b"),
            id: Bytes::from_static(b"77"),
            stat: Bytes::from_static(b"UNDELIV"),
            error: None,
        };
        let mut buf = Vec::new();
        encode(&a, &mut buf);
        encode(&b, &mut buf);
        assert_eq!(decode(&buf), vec![a.clone(), b]);
        // Cut anywhere: whole orphans only, never a panic.
        for cut in 0..buf.len() {
            let got = decode(&buf[..cut]);
            assert!(got.len() <= 1);
            if let Some(first) = got.first() {
                assert_eq!(first, &a);
            }
        }
        assert!(decode(&[0xff, 0xff, 1]).is_empty());
    }
}
