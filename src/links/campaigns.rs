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
//!
//! Memory: 16-byte slots in 64 shards, ~35 bytes per (program, number)
//! with a delivered campaign message in the window (measured: `sluice bench`
//! peak RSS, see `docs/PERFORMANCE.md`); entries past the window are
//! dropped by the sweep every five minutes. A window of 0 turns
//! attribution off (figures are still counted).
//! The counts and the attribution table are saved to
//! `<data_dir>/links/campaigns.snap` every few minutes and at a clean stop
//! (atomic rename); a crash loses at most what changed since the last save.
//! Clicks are counted by the link store ([`super::store`]), durably.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::compliance::Compliance;
use crate::ledger::Finalized;
use crate::model::{DeliveryState, Message, Sender};

const TARGET: &str = "sluice::links";
/// Programs attribution tells apart (a program index takes the top 14 bits
/// of a key; E.164 numbers, at most 15 digits, fit in the other 50).
const MAX_PROGRAMS: u32 = 1 << 14;

/// The attribution key of `number` in program `p`.
fn key(p: u32, number: u64) -> Option<u64> {
    (p < MAX_PROGRAMS && number < 1 << 50).then_some((u64::from(p) << 50) | number)
}
/// First bytes of a snapshot.
const MAGIC: &[u8; 8] = b"SLCAMP01";

/// One campaign's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CampaignFigures {
    /// Messages delivered.
    pub delivered: u64,
    /// Opt-outs attributed to it.
    pub optouts: u64,
}

/// The attribution table in [`SHARDS`] maps by key, so that growing one
/// rehashes a 64th of the table while receipts wait for the lock.
#[derive(Debug, PartialEq, Eq)]
struct Last(Vec<HashMap<u64, (u32, u32)>>);

const SHARDS: usize = 64;

impl Default for Last {
    fn default() -> Self {
        Last((0..SHARDS).map(|_| HashMap::new()).collect())
    }
}

impl Last {
    fn shard(&mut self, k: u64) -> &mut HashMap<u64, (u32, u32)> {
        // Numbers vary in their low digits.
        &mut self.0[(k % SHARDS as u64) as usize]
    }
    fn insert(&mut self, k: u64, v: (u32, u32)) {
        self.shard(k).insert(k, v);
    }
    fn remove(&mut self, k: u64) -> Option<(u32, u32)> {
        self.shard(k).remove(&k)
    }
    fn len(&self) -> usize {
        self.0.iter().map(HashMap::len).sum()
    }
    fn retain(&mut self, mut f: impl FnMut(&(u32, u32)) -> bool) {
        for m in &mut self.0 {
            m.retain(|_, v| f(v));
        }
    }
    fn iter(&self) -> impl Iterator<Item = (&u64, &(u32, u32))> {
        self.0.iter().flatten()
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Campaign index → (tenant, campaign).
    names: Vec<(Arc<str>, Arc<str>)>,
    index: HashMap<(Arc<str>, Arc<str>), u32>,
    figures: Vec<CampaignFigures>,
    /// Program (opt-out scope name) → its index.
    programs: HashMap<Arc<str>, u32>,
    program_names: Vec<Arc<str>>,
    /// [`key`] (program, number) → (campaign index, delivered at, Unix
    /// seconds): 16 bytes a slot.
    last: Last,
    changed: bool,
}

impl Inner {
    fn campaign(&mut self, tenant: &str, campaign: &str) -> u32 {
        let probe: (Arc<str>, Arc<str>) = (tenant.into(), campaign.into());
        if let Some(&i) = self.index.get(&probe) {
            return i;
        }
        let key: (Arc<str>, Arc<str>) = (tenant.into(), campaign.into());
        let i = self.names.len() as u32;
        self.names.push(key.clone());
        self.index.insert(key, i);
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
    window_s: u32,
    path: PathBuf,
    inner: Mutex<Inner>,
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
    /// Figures kept in `dir` (loaded from its snapshot when there is one),
    /// opt-outs attributed within `window`.
    pub fn open(dir: &Path, window: std::time::Duration, compliance: Arc<Compliance>) -> Campaigns {
        let c = Campaigns {
            window_s: window.as_secs().min(u64::from(u32::MAX)) as u32,
            path: dir.join("campaigns.snap"),
            inner: Mutex::new(Inner::default()),
            compliance,
        };
        match fs::read(&c.path) {
            Ok(bytes) => match decode(&bytes) {
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
        let now = now_s.min(u64::from(u32::MAX)) as u32;
        let attribute = self.window_s > 0;
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
            let p = match seen_program {
                Some((name, i)) if Arc::ptr_eq(name, d.program) || name == d.program => i,
                _ => {
                    let i = inner.program(d.program);
                    seen_program = Some((d.program, i));
                    i
                }
            };
            if attribute && let Some(k) = key(p, d.to) {
                inner.last.insert(k, (c, now));
            }
            inner.changed = true;
        }
    }

    /// A recipient opted out of `program` at `now_s`: the campaign it is
    /// attributed to (the last one the program delivered to it within the
    /// window), counted.
    pub fn opted_out(
        &self,
        program: &Arc<str>,
        to: u64,
        now_s: u64,
    ) -> Option<(Arc<str>, Arc<str>)> {
        let mut inner = self.inner.lock();
        let p = *inner.programs.get(program)?;
        // Taken: a repeated STOP is not a second opt-out of the campaign.
        let (c, at) = inner.last.remove(key(p, to)?)?;
        if now_s.saturating_sub(u64::from(at)) > u64::from(self.window_s) {
            return None;
        }
        inner.figures[c as usize].optouts += 1;
        inner.changed = true;
        Some(inner.names[c as usize].clone())
    }

    /// `tenant`'s campaign's figures.
    pub fn figures(&self, tenant: &str, campaign: &str) -> CampaignFigures {
        let inner = self.inner.lock();
        inner
            .index
            .get(&(Arc::from(tenant), Arc::from(campaign)))
            .map(|&i| inner.figures[i as usize])
            .unwrap_or_default()
    }

    /// Drops attribution entries past the window at `now_s`; returns how
    /// many.
    pub fn sweep(&self, now_s: u64) -> usize {
        let w = u64::from(self.window_s);
        let mut inner = self.inner.lock();
        let before = inner.last.len();
        inner
            .last
            .retain(|&(_, at)| now_s.saturating_sub(u64::from(at)) <= w);
        let dropped = before - inner.last.len();
        inner.changed |= dropped > 0;
        dropped
    }

    /// Saves the figures and the attribution table when they changed since
    /// the last save (write to a temporary file, sync, rename).
    ///
    /// # Errors
    /// The file could not be written.
    pub fn save(&self) -> io::Result<()> {
        let bytes = {
            let mut inner = self.inner.lock();
            if !inner.changed {
                return Ok(());
            }
            inner.changed = false;
            encode(&inner)
        };
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode(inner: &Inner) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + inner.last.len() * 20);
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
    out.extend_from_slice(&(inner.last.len() as u64).to_le_bytes());
    for (&k, &(c, at)) in inner.last.iter() {
        out.extend_from_slice(&((k >> 50) as u32).to_le_bytes());
        out.extend_from_slice(&(k & ((1 << 50) - 1)).to_le_bytes());
        out.extend_from_slice(&c.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
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

/// A snapshot read back; `None` unless it is whole and consistent.
fn decode(bytes: &[u8]) -> Option<Inner> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut r = Reader(body.strip_prefix(MAGIC)?);
    let mut inner = Inner::default();
    for _ in 0..r.u32()? {
        let (tenant, campaign) = (r.str()?, r.str()?);
        let figures = CampaignFigures {
            delivered: r.u64()?,
            optouts: r.u64()?,
        };
        let i = inner.campaign(tenant, campaign) as usize;
        inner.figures[i] = figures;
    }
    for _ in 0..r.u32()? {
        let name: Arc<str> = r.str()?.into();
        inner.program(&name);
    }
    let entries = r.u64()?;
    // Each entry is 20 bytes: a count the rest cannot hold is a lie.
    if entries > (r.0.len() / 20) as u64 {
        return None;
    }
    for _ in 0..entries {
        let (p, to, c, at) = (r.u32()?, r.u64()?, r.u32()?, r.u32()?);
        if p as usize >= inner.program_names.len() || c as usize >= inner.names.len() {
            return None;
        }
        inner.last.insert(key(p, to)?, (c, at));
    }
    r.0.is_empty().then_some(inner)
}

/// Fuzzing hook: a snapshot that reads back re-encodes to one that reads
/// back the same.
#[doc(hidden)]
pub fn fuzz_snapshot(bytes: &[u8]) {
    if let Some(inner) = decode(bytes) {
        let again = decode(&encode(&inner)).expect("an encoded snapshot decodes");
        assert_eq!(again.names, inner.names);
        assert_eq!(again.figures, inner.figures);
        assert_eq!(again.program_names, inner.program_names);
        assert_eq!(again.last, inner.last);
    }
}
