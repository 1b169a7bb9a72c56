//! What a campaign did, side by side: messages delivered, recipients who
//! clicked, clicks, preview fetches, opt-outs, and the two rates brands
//! watch (click-through: clicking recipients / delivered; opt-out rate:
//! opt-outs / delivered), for `GET /admin/campaigns/{id}`.
//!
//! **Opt-out attribution.** Each delivered message with a campaign records
//! "the last campaign this program sent to this number" (the program is
//! the sender's opt-out scope: its sender program, else its tenant). A STOP
//! to one of that program's senders within `links.attribution_window`
//! (default 7 days) is the campaign's opt-out: its event carries the
//! campaign, and `sluice_campaign_optouts_total{tenant,campaign}` counts it.
//!
//! A STOP takes the entry: a repeated STOP is not a second opt-out.
//! Delivery times are kept to 1/1,280 of the window (473 s of 7 days;
//! `clock`), so an opt-out less than two of those past the window (at 7
//! days, up to 640 s) may still be attributed.
//!
//! Memory: one 12-byte slot (`table`) per (program, number) with a
//! delivered campaign message in the window, in 64 shards 74–85% full as
//! they grow: 14–16.5 bytes per entry (`cargo bench --bench
//! queue_memory`); entries past the window are dropped by the sweep every
//! five minutes (a shard shrinks once under 42.5% full). A window of 0
//! turns attribution off (figures are still counted). Campaigns beyond
//! the first 2,097,152 a gateway sees are counted, not attributed (a
//! delivery of one ends its number's attribution to an earlier campaign).
//! The counts and the attribution table are saved to
//! `<data_dir>/links/campaigns.snap` every few minutes and at a clean stop
//! (atomic rename); a crash loses at most what changed since the last save.
//! Each shard has its own lock: a save or a sweep holds one 64th of the
//! table at a time (receipts record deliveries meanwhile), and a save
//! streams the table to the file instead of building it in memory.
//! Clicks are counted by the link store ([`super::store`]), durably.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::compliance::Compliance;
use crate::ledger::Finalized;
use crate::model::{DeliveryState, Message, Sender};

mod clock;
mod table;
use clock::{Clock, MAX_CAMPAIGNS};
use table::Table;

const TARGET: &str = "sluice::links";
/// Programs attribution tells apart (a program index takes the top 14 bits
/// of a key; E.164 numbers, at most 15 digits, fit in the other 50).
const MAX_PROGRAMS: u32 = 1 << 14;

/// The attribution key of `number` (not 0) in program `p`; never 0.
fn key(p: u32, number: u64) -> Option<u64> {
    (p < MAX_PROGRAMS && number > 0 && number < 1 << 50).then_some((u64::from(p) << 50) | number)
}
/// First bytes of a snapshot: the table as one run of entries (read only)
/// and as one run per shard (written).
const MAGIC_V1: &[u8; 8] = b"SLCAMP01";
const MAGIC: &[u8; 8] = b"SLCAMP02";
/// Bytes of one attribution entry in a snapshot.
const ENTRY_BYTES: usize = 20;

/// One campaign's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CampaignFigures {
    /// Messages delivered.
    pub delivered: u64,
    /// Opt-outs attributed to it.
    pub optouts: u64,
}

/// The attribution table in [`SHARDS`] tables by key, each behind its own
/// lock, so that growing one re-lays a 64th of the table, and a save or a
/// sweep holds a 64th at a time, while receipts record deliveries. A key's
/// tag is its campaign and delivery time ([`Clock::tag`]).
#[derive(Debug)]
struct Last(Box<[Mutex<Table>]>);

const SHARDS: usize = 64;

impl Default for Last {
    fn default() -> Self {
        Last((0..SHARDS).map(|_| Mutex::default()).collect())
    }
}

impl Last {
    fn shard(&self, k: u64) -> &Mutex<Table> {
        // Numbers vary in their low digits.
        &self.0[(k % SHARDS as u64) as usize]
    }
    fn insert(&self, k: u64, tag: u32) {
        self.shard(k).lock().insert(k, tag);
    }
    fn remove(&self, k: u64) -> Option<u32> {
        self.shard(k).lock().remove(k)
    }
    /// Keeps the entries whose tag `keep` says yes to; how many it dropped.
    fn retain(&self, keep: impl Fn(u32) -> bool) -> usize {
        self.0
            .iter()
            .map(|m| m.lock().retain(|_, tag| keep(tag)))
            .sum()
    }
    /// Every entry, sorted (for comparisons).
    fn sorted(&self) -> Vec<(u64, u32)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .flat_map(|m| m.lock().iter().collect::<Vec<_>>())
            .collect();
        v.sort_unstable();
        v
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Campaign index → (tenant, campaign).
    names: Vec<(Arc<str>, Arc<str>)>,
    /// Tenant → campaign → index (nested so a lookup by `&str` allocates
    /// nothing: it runs for every final).
    index: HashMap<Arc<str>, HashMap<Arc<str>, u32>>,
    figures: Vec<CampaignFigures>,
    /// Program (opt-out scope name) → its index.
    programs: HashMap<Arc<str>, u32>,
    program_names: Vec<Arc<str>>,
}

impl Inner {
    fn find(&self, tenant: &str, campaign: &str) -> Option<u32> {
        self.index.get(tenant)?.get(campaign).copied()
    }

    fn campaign(&mut self, tenant: &str, campaign: &str) -> u32 {
        if let Some(i) = self.find(tenant, campaign) {
            return i;
        }
        let key: (Arc<str>, Arc<str>) = (tenant.into(), campaign.into());
        let i = self.names.len() as u32;
        self.index
            .entry(key.0.clone())
            .or_default()
            .insert(key.1.clone(), i);
        self.names.push(key);
        self.figures.push(CampaignFigures::default());
        i
    }

    fn program(&mut self, name: &Arc<str>) -> u32 {
        if let Some(&i) = self.programs.get(name) {
            return i;
        }
        let i = self.program_names.len() as u32;
        self.program_names.push(name.clone());
        self.programs.insert(name.clone(), i);
        i
    }
}

/// Campaign figures and opt-out attribution (see the module doc).
#[derive(Debug)]
pub struct Campaigns {
    clock: Clock,
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Attribution: (program, number) → the last campaign delivered.
    last: Last,
    /// Something changed since the last save.
    changed: AtomicBool,
    /// When the last sweep ran (at open: when the snapshot was read), Unix
    /// seconds: see [`Clock::safe_gap_s`].
    swept_s: AtomicU64,
    /// Campaigns attributed ([`MAX_CAMPAIGNS`]; fewer in tests).
    max_campaigns: u32,
    /// A campaign past them was delivered (told once).
    too_many: AtomicBool,
    /// Tells a sender's opt-out scope (its program).
    compliance: Arc<Compliance>,
}

/// A delivered message, as attribution records it.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// Its tenant.
    pub tenant: &'a str,
    /// Its campaign (empty: not recorded).
    pub campaign: &'a str,
    /// Its sender's opt-out scope.
    pub program: &'a Arc<str>,
    /// Its recipient, E.164 digits as an integer.
    pub to: u64,
}

impl Campaigns {
    /// Figures kept in `dir` (loaded from its snapshot when there is one,
    /// without the deliveries already past the window at `now_s`),
    /// opt-outs attributed within `window`.
    pub fn open(
        dir: &Path,
        window: std::time::Duration,
        now_s: u64,
        compliance: Arc<Compliance>,
    ) -> Campaigns {
        let c = Campaigns {
            clock: Clock::new(window.as_secs().min(u64::from(u32::MAX)) as u32),
            path: dir.join("campaigns.snap"),
            inner: Mutex::new(Inner::default()),
            last: Last::default(),
            changed: AtomicBool::new(false),
            swept_s: AtomicU64::new(now_s),
            max_campaigns: MAX_CAMPAIGNS,
            too_many: AtomicBool::new(false),
            compliance,
        };
        match fs::read(&c.path) {
            Ok(bytes) => match decode(&bytes, &c.last, c.clock, now_s) {
                Some(inner) => *c.inner.lock() = inner,
                None => {
                    tracing::warn!(target: TARGET, path = %c.path.display(), "campaign snapshot unreadable; figures start from zero")
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(target: TARGET, error = %e, "campaign snapshot not read"),
        }
        c
    }

    /// The same, attributing only the first `n` campaigns it sees.
    #[cfg(test)]
    pub(crate) fn with_max_campaigns(mut self, n: u32) -> Campaigns {
        self.max_campaigns = n.min(MAX_CAMPAIGNS);
        self
    }

    /// Records the delivered messages among `finals` (those with a
    /// campaign) at `now_s`.
    pub fn finals(&self, finals: &[Finalized], now_s: u64) {
        let mut programs: Vec<(&Message, Arc<str>)> = Vec::new();
        // A batch is mostly one tenant and sender: its scope looked up once.
        let mut seen: Option<(&Message, Arc<str>)> = None;
        for f in finals {
            let m = &*f.message;
            if f.state != DeliveryState::Delivered || m.campaign_id.is_empty() {
                continue;
            }
            let scope = match &seen {
                Some((s, p)) if s.tenant == m.tenant && s.from == m.from => Some(p.clone()),
                _ => self.compliance.sender_scope(&m.tenant, &m.from),
            };
            if let Some(p) = scope {
                seen = Some((m, p.clone()));
                programs.push((m, p));
            }
        }
        if programs.is_empty() {
            return;
        }
        self.delivered(
            programs.iter().map(|(m, p)| Delivered {
                tenant: &m.tenant,
                campaign: &m.campaign_id,
                program: p,
                to: m.to.as_u64(),
            }),
            now_s,
        );
    }

    /// `tenant`'s opt-out of `number` through a STOP to `sender` at `now_s`:
    /// the campaign it is attributed to, counted (see [`Campaigns::opted_out`]).
    pub fn stop(&self, tenant: &str, sender: &Sender, number: u64, now_s: u64) -> Option<Arc<str>> {
        let program = self.compliance.sender_scope(tenant, sender)?;
        let (t, campaign) = self.opted_out(&program, number, now_s)?;
        metrics::counter!("sluice_campaign_optouts_total",
            "tenant" => t.to_string(), "campaign" => campaign.to_string())
        .increment(1);
        Some(campaign)
    }

    /// Records delivered messages at `now_s` (Unix seconds).
    pub fn delivered<'a>(&self, messages: impl IntoIterator<Item = Delivered<'a>>, now_s: u64) {
        // A window of 0 has no ticks: attribution off.
        let attribute = self.clock.window_ticks > 0;
        // (key, tag; none: a campaign past the last attribution tells apart)
        let mut attributed: Vec<(u64, Option<u32>)> = Vec::new();
        let mut counted = false;
        let mut inner = self.inner.lock();
        // A batch is mostly one campaign from one program: looked up once.
        let mut seen: Option<(&str, &str, u32)> = None;
        let mut seen_program: Option<(&Arc<str>, u32)> = None;
        for d in messages {
            if d.campaign.is_empty() {
                continue;
            }
            let c = match seen {
                Some((t, c, i)) if t == d.tenant && c == d.campaign => i,
                _ => {
                    let i = inner.campaign(d.tenant, d.campaign);
                    seen = Some((d.tenant, d.campaign, i));
                    i
                }
            };
            inner.figures[c as usize].delivered += 1;
            counted = true;
            let p = match seen_program {
                Some((name, i)) if Arc::ptr_eq(name, d.program) || name == d.program => i,
                _ => {
                    let i = inner.program(d.program);
                    seen_program = Some((d.program, i));
                    i
                }
            };
            if attribute && let Some(k) = key(p, d.to) {
                let tag = self.clock.tag(c, now_s).filter(|_| c < self.max_campaigns);
                attributed.push((k, tag));
            }
        }
        drop(inner);
        for (k, tag) in attributed {
            match tag {
                Some(tag) => self.last.insert(k, tag),
                // Not the campaign before it either.
                None => {
                    self.last.remove(k);
                    if !self.too_many.swap(true, Ordering::Relaxed) {
                        tracing::warn!(target: TARGET, campaigns = self.max_campaigns,
                            "more campaigns than attribution tells apart: later ones are counted, their opt-outs not attributed");
                    }
                }
            }
        }
        if counted {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// A recipient opted out of `program` at `now_s`: the campaign it is
    /// attributed to (the last one the program delivered to it within the
    /// window, to a tick: see [`Clock`]), counted.
    pub fn opted_out(
        &self,
        program: &Arc<str>,
        to: u64,
        now_s: u64,
    ) -> Option<(Arc<str>, Arc<str>)> {
        let p = *self.inner.lock().programs.get(program)?;
        // Taken: a repeated STOP is not a second opt-out of the campaign.
        // Read before the entry is taken: a sweep dropping the table
        // after a long gap may not have reached its shard yet.
        let stale = self.unswept_too_long(now_s);
        let tag = self.last.remove(key(p, to)?)?;
        self.changed.store(true, Ordering::Relaxed);
        if stale || !self.clock.within(tag, now_s) {
            return None;
        }
        let c = Clock::campaign(tag) as usize;
        let mut inner = self.inner.lock();
        inner.figures[c].optouts += 1;
        Some(inner.names[c].clone())
    }

    /// The last sweep is too long ago for the entries' ages to be told
    /// right at `now_s`.
    fn unswept_too_long(&self, now_s: u64) -> bool {
        now_s.saturating_sub(self.swept_s.load(Ordering::Relaxed)) > self.clock.safe_gap_s()
    }

    /// `tenant`'s campaign's figures.
    pub fn figures(&self, tenant: &str, campaign: &str) -> CampaignFigures {
        let inner = self.inner.lock();
        inner
            .find(tenant, campaign)
            .map(|i| inner.figures[i as usize])
            .unwrap_or_default()
    }

    /// Drops attribution entries past the window at `now_s` (to a tick);
    /// returns how many.
    /// After a gap since the last sweep longer than [`Clock::safe_gap_s`]
    /// (the process stopped, `SIGSTOP` or a paused container, or the sweep
    /// starved), drops every entry: an old one could look young.
    pub fn sweep(&self, now_s: u64) -> usize {
        let dropped = if self.unswept_too_long(now_s) {
            tracing::warn!(target: TARGET, since_s = now_s.saturating_sub(self.swept_s.load(Ordering::Relaxed)),
                "opt-out attribution not swept for too long; its entries are dropped");
            self.last.retain(|_| false)
        } else {
            self.last.retain(|tag| self.clock.within(tag, now_s))
        };
        self.swept_s.store(now_s, Ordering::Relaxed);
        if dropped > 0 {
            self.changed.store(true, Ordering::Relaxed);
        }
        dropped
    }

    /// Saves the figures and the attribution table when they changed since
    /// the last save (write to a temporary file, sync, rename), each
    /// delivery time as seen at `now_s` (to a tick).
    ///
    /// # Errors
    /// The file could not be written.
    pub fn save(&self, now_s: u64) -> io::Result<()> {
        // Times are written as seen now: only right when recently swept.
        if self.unswept_too_long(now_s) {
            self.sweep(now_s);
        }
        if !self.changed.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let saved = (|| {
            let tmp = self.path.with_extension("tmp");
            let mut f = io::BufWriter::new(SyncEvery {
                file: fs::File::create(&tmp)?,
                unsynced: 0,
            });
            // Campaigns and programs first seen while the table is written
            // are not in the head: their entries wait for the next save.
            let (head, known) = {
                let inner = self.inner.lock();
                (encode_head(&inner), Known::of(&inner))
            };
            write_snapshot(&head, known, &self.last, self.clock, now_s, &mut f)?;
            f.into_inner()
                .map_err(io::IntoInnerError::into_error)?
                .file
                .sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if saved.is_err() {
            self.changed.store(true, Ordering::Relaxed);
        }
        saved
    }
}

/// A file synced every [`SYNC_EVERY`] bytes written: a snapshot of a few
/// hundred megabytes synced at once held the message journal's syncs (and
/// every acknowledgement) up behind it.
struct SyncEvery {
    file: fs::File,
    unsynced: usize,
}

const SYNC_EVERY: usize = 4 << 20;

impl Write for SyncEvery {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// The snapshot's head: campaigns with their figures, and programs.
fn encode_head(inner: &Inner) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + inner.names.len() * 40);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(inner.names.len() as u32).to_le_bytes());
    for ((tenant, campaign), f) in inner.names.iter().zip(&inner.figures) {
        put_str(&mut out, tenant);
        put_str(&mut out, campaign);
        out.extend_from_slice(&f.delivered.to_le_bytes());
        out.extend_from_slice(&f.optouts.to_le_bytes());
    }
    out.extend_from_slice(&(inner.program_names.len() as u32).to_le_bytes());
    for p in &inner.program_names {
        put_str(&mut out, p);
    }
    out
}

/// How many campaigns and programs a snapshot's head names.
#[derive(Debug, Clone, Copy)]
struct Known {
    campaigns: u32,
    programs: u32,
}

impl Known {
    fn of(inner: &Inner) -> Known {
        Known {
            campaigns: inner.names.len() as u32,
            programs: inner.program_names.len() as u32,
        }
    }
}

/// Writes a snapshot: `head`, then the table shard by shard (each encoded
/// under its lock, written after; times as seen at `now_s`), then the CRC
/// of it all.
fn write_snapshot(
    head: &[u8],
    known: Known,
    last: &Last,
    clock: Clock,
    now_s: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut crc = crc32fast::Hasher::new();
    let mut put = |bytes: &[u8]| {
        crc.update(bytes);
        out.write_all(bytes)
    };
    put(head)?;
    let mut buf = Vec::new();
    for shard in &last.0 {
        buf.clear();
        {
            let m = shard.lock();
            buf.reserve(4 + m.len() * ENTRY_BYTES);
            buf.extend_from_slice(&[0; 4]);
            let mut n = 0u32;
            for (k, tag) in m.iter() {
                let (p, c) = ((k >> 50) as u32, Clock::campaign(tag));
                if p >= known.programs || c >= known.campaigns {
                    continue;
                }
                let at = clock.at(tag, now_s).min(u64::from(u32::MAX)) as u32;
                buf.extend_from_slice(&p.to_le_bytes());
                buf.extend_from_slice(&(k & ((1 << 50) - 1)).to_le_bytes());
                buf.extend_from_slice(&c.to_le_bytes());
                buf.extend_from_slice(&at.to_le_bytes());
                n += 1;
            }
            buf[..4].copy_from_slice(&n.to_le_bytes());
        }
        put(&buf)?;
    }
    let crc = crc.finalize();
    out.write_all(&crc.to_le_bytes())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// A snapshot read back, its table into `last` (empty) but for deliveries
/// already past the window at `now_s`; `None` unless it is whole and
/// consistent (every campaign and program named once).
fn decode(bytes: &[u8], last: &Last, clock: Clock, now_s: u64) -> Option<Inner> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let (runs, body) = match body.strip_prefix(MAGIC) {
        Some(rest) => (SHARDS, rest),
        None => (1, body.strip_prefix(MAGIC_V1)?),
    };
    let mut r = Reader(body);
    let mut inner = Inner::default();
    for _ in 0..r.u32()? {
        let (tenant, campaign) = (r.str()?, r.str()?);
        let figures = CampaignFigures {
            delivered: r.u64()?,
            optouts: r.u64()?,
        };
        // Entries name campaigns by their place in the head: a name given
        // twice would shift every later one onto another campaign's figures.
        if inner.find(tenant, campaign).is_some() {
            return None;
        }
        let i = inner.campaign(tenant, campaign) as usize;
        inner.figures[i] = figures;
    }
    for _ in 0..r.u32()? {
        let name: Arc<str> = r.str()?.into();
        if inner.programs.contains_key(&name) {
            return None;
        }
        inner.program(&name);
    }
    let mut entries = Vec::new();
    for _ in 0..runs {
        let n = if runs == 1 {
            r.u64()?
        } else {
            u64::from(r.u32()?)
        };
        // A count the rest cannot hold is a lie.
        if n > (r.0.len() / ENTRY_BYTES) as u64 {
            return None;
        }
        for _ in 0..n {
            let (p, to, c, at) = (r.u32()?, r.u64()?, r.u32()?, r.u32()?);
            if p as usize >= inner.program_names.len() || c as usize >= inner.names.len() {
                return None;
            }
            let k = key(p, to.max(1))?;
            // A time ahead of now is taken as now.
            let at = u64::from(at).min(now_s);
            if to > 0
                && clock.ticks_since(at, now_s) <= u64::from(clock.window_ticks)
                && let Some(tag) = clock.tag(c, at)
            {
                entries.push((k, tag));
            }
        }
    }
    if !r.0.is_empty() {
        return None;
    }
    for (k, tag) in entries {
        last.insert(k, tag);
    }
    Some(inner)
}

/// Fuzzing hook: a snapshot that reads back re-encodes to one that reads
/// back the same.
#[doc(hidden)]
pub fn fuzz_snapshot(bytes: &[u8]) {
    // The widest window, seen from its end: every time a snapshot can hold
    // is within it.
    let (clock, now_s) = (Clock::new(u32::MAX), u64::from(u32::MAX));
    let last = Last::default();
    if let Some(inner) = decode(bytes, &last, clock, now_s) {
        let mut encoded = Vec::new();
        write_snapshot(
            &encode_head(&inner),
            Known::of(&inner),
            &last,
            clock,
            now_s,
            &mut encoded,
        )
        .expect("written to memory");
        let last_again = Last::default();
        let again =
            decode(&encoded, &last_again, clock, now_s).expect("an encoded snapshot decodes");
        assert_eq!(again.names, inner.names);
        assert_eq!(again.figures, inner.figures);
        assert_eq!(again.program_names, inner.program_names);
        assert_eq!(last_again.sorted(), last.sorted());
    }
}

#[cfg(test)]
mod tests;
