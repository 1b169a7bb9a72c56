//! Daily caps shared by the cluster: a sender's `daily_cap` and a brand's
//! hold for the nodes together, and the per-message path makes no Redis
//! round trip.
//!
//! # Chunks of the day's count
//! Redis keeps, per sender (or brand) and UTC day, how many of the day's
//! permits the nodes have taken (`<prefix>:{cap:sender:<number>}:<day>`,
//! expiring after two days). A node takes a chunk of them with one script
//! call (never more than the cap leaves) and spends it locally; it asks
//! for the next chunk when the one in hand is half spent. The chunk is
//! 1% of the cap, between 1 and 1,000 permits: the sum over the nodes
//! never exceeds the cap, and at most `nodes × chunk` of a day's permits
//! can go unused (held by a node whose traffic for that sender stopped).
//! One task serves every cap that wants more, all of them in one pipeline.
//!
//! The day is the node's own UTC day (as on one node); clocks a few
//! seconds apart shift when a node starts counting the new day, not how
//! many permits the day has. Without Redis a node spends what it holds,
//! then waits: an exceeded daily cap is a carrier's complaint, a delay is
//! not.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::TARGET;
use super::link::{Backoff, Link};
use crate::shaping::shared::{SharedCap, SharedCaps};

const DAY_MS: u64 = 86_400_000;
/// With no permit in hand, look again this much later.
const RETRY_MS: u64 = 5;
/// Day counters live this long.
const KEEP_DAYS_S: u64 = 2 * 86_400;

/// Takes up to `want` of the day's permits. KEYS: the day's counter.
/// ARGV: cap, want, expiry (s). Answers the permits granted.
const TAKE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return grant
";

/// Makes the shared caps and serves their requests for more (see the
/// module doc).
#[derive(Debug)]
pub struct LeasedCaps {
    link: Link,
    wanting: Arc<Wanting>,
}

/// The caps that asked for more permits.
#[derive(Debug, Default)]
struct Wanting {
    caps: Mutex<Vec<Weak<LeasedCap>>>,
    notify: Notify,
}

impl LeasedCaps {
    /// Caps shared through `link`.
    pub fn new(link: Link) -> Arc<LeasedCaps> {
        Arc::new(LeasedCaps {
            link,
            wanting: Arc::default(),
        })
    }

    fn cap(&self, tag: String, cap: u64) -> Arc<LeasedCap> {
        let chunk = (cap / 100).clamp(1, 1_000) as u32;
        let key = self.link.key(&tag, "");
        Arc::new_cyclic(|me| LeasedCap {
            key,
            cap,
            chunk,
            state: Mutex::default(),
            me: me.clone(),
            wanting: self.wanting.clone(),
        })
    }

    /// Starts the task that fetches permits for the caps that want more.
    pub fn start(self: &Arc<Self>, tasks: &mut JoinSet<()>, shutdown: &watch::Receiver<bool>) {
        let this = self.clone();
        super::spawn_until_shutdown(tasks, shutdown, async move { this.take_loop().await });
    }

    async fn take_loop(&self) {
        let mut backoff = Backoff::default();
        loop {
            let batch: Vec<Arc<LeasedCap>> = {
                let mut w = self.wanting.caps.lock();
                w.drain(..).filter_map(|c| c.upgrade()).collect()
            };
            if batch.is_empty() {
                self.wanting.notify.notified().await;
                continue;
            }
            match self.take(&batch).await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::debug!(target: TARGET, error = %crate::model::LogSafe::display(&e), "daily cap chunk failed; retrying");
                    self.wanting
                        .caps
                        .lock()
                        .extend(batch.iter().map(Arc::downgrade));
                    backoff.wait().await;
                }
            }
        }
    }

    /// One pipeline: a chunk for each cap of `batch`, on the day it asked.
    async fn take(&self, batch: &[Arc<LeasedCap>]) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        let mut asks = Vec::with_capacity(batch.len());
        for c in batch {
            let (day, want) = {
                let s = c.state.lock();
                (s.day, u64::from(c.chunk).max(s.short))
            };
            pipe.cmd("EVAL")
                .arg(TAKE)
                .arg(1)
                .arg(format!("{}{day}", c.key))
                .arg(c.cap)
                .arg(want)
                .arg(KEEP_DAYS_S);
            asks.push((day, want));
        }
        let grants: Vec<u64> = self.link.pipe(&pipe).await?;
        metrics::counter!("sluice_cluster_cap_chunks_total").increment(batch.len() as u64);
        for ((c, (day, want)), grant) in batch.iter().zip(asks).zip(grants) {
            let mut s = c.state.lock();
            s.asking = false;
            if s.day != day {
                // The day turned meanwhile: that day's permits are of no use.
                continue;
            }
            s.in_hand += grant;
            if grant < want {
                s.spent = true;
            }
        }
        Ok(())
    }
}

impl SharedCaps for LeasedCaps {
    fn sender(&self, sender: &str, cap: u64) -> Arc<dyn SharedCap> {
        self.cap(format!("cap:sender:{sender}"), cap)
    }

    fn brand(&self, brand: &str, cap: u64) -> Arc<dyn SharedCap> {
        self.cap(format!("cap:brand:{brand}"), cap)
    }
}

/// One sender's or brand's share of a cluster-wide daily cap.
#[derive(Debug)]
pub struct LeasedCap {
    /// The day counter's key without the day.
    key: String,
    cap: u64,
    chunk: u32,
    state: Mutex<CapState>,
    me: Weak<LeasedCap>,
    wanting: Arc<Wanting>,
}

#[derive(Debug, Default)]
struct CapState {
    /// The UTC day (days since the epoch) the permits in hand are for.
    day: u64,
    in_hand: u64,
    /// Redis has no more of this day's permits.
    spent: bool,
    /// A request for more is out.
    asking: bool,
    /// Permits the last refused take wanted beyond those in hand.
    short: u64,
}

impl LeasedCap {
    fn on_day(s: &mut CapState, now_ms: u64) -> u64 {
        let day = now_ms / DAY_MS;
        if s.day != day {
            *s = CapState {
                day,
                ..CapState::default()
            };
        }
        day
    }

    fn ask(&self, s: &mut CapState) {
        if s.asking || s.spent {
            return;
        }
        s.asking = true;
        self.wanting.caps.lock().push(self.me.clone());
        self.wanting.notify.notify_one();
    }
}

impl SharedCap for LeasedCap {
    fn ready_at_ms(&self, now_ms: u64, n: u32) -> u64 {
        let mut s = self.state.lock();
        let day = LeasedCap::on_day(&mut s, now_ms);
        let n = u64::from(n);
        if s.in_hand >= n {
            return now_ms;
        }
        if s.spent {
            return (day + 1) * DAY_MS;
        }
        s.short = n - s.in_hand;
        self.ask(&mut s);
        now_ms + RETRY_MS
    }

    fn commit(&self, now_ms: u64, n: u32) {
        let mut s = self.state.lock();
        LeasedCap::on_day(&mut s, now_ms);
        s.in_hand = s.in_hand.saturating_sub(u64::from(n));
        if s.in_hand <= u64::from(self.chunk / 2) {
            self.ask(&mut s);
        }
    }
}
