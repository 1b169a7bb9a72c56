//! The link store: every tracked link, durable before its message is
//! accepted, found by its code with no index in memory, and every click on
//! it.
//!
//! # Layout (`<data_dir>/links/`)
//! Links are numbered densely from 0; link `n` lives in segment
//! `n / SEGMENT_LINKS`, which is three files:
//!
//! - `{k:010}.links`: one record per message, `len u32 | crc32 u32 | body`,
//!   the body being the message's first link number, link count, message
//!   id, creation time, recipient, tenant, client_ref, campaign and URLs;
//! - `{k:010}.index`: 8 bytes per link, the offset of its message's record,
//!   at `(n % SEGMENT_LINKS) * 8`;
//! - `{k:010}.clicks`: 16 bytes per click or preview fetch made while `k`
//!   was the head segment (of a link in `k` or before): the link number
//!   and the time and kind.
//!
//! A code decodes to its link number ([`super::code`]), so a lookup is two
//! positioned reads; the record must name that number among its own, or
//! the code is unknown. A message's links never straddle two segments.
//!
//! # Durability
//! One writer thread appends what callers staged and syncs it with one
//! `fdatasync` per file for everything staged meanwhile (group commit);
//! [`LinkStore::durable`] waits for a caller's ticket. Admission waits for
//! its links before it journals the messages that carry them, so no code is
//! ever sent that the store could lose. After a crash the index is cut to
//! whole entries and numbering resumes after the last one: a number written
//! but never synced can be handed out again only if its message was never
//! accepted.
//!
//! # Retention
//! A link answers for `links.retention` after its message was accepted,
//! then [expired](Lookup::Expired). The hourly sweep deletes whole segments
//! whose newest write is older than that (oldest first), so the store is
//! bounded by retention × link rate; a code of a deleted segment answers
//! expired too.
//!
//! # Clicks in memory
//! The set of links clicked (first click or repeat) and of messages with a
//! click (unique clicking recipients), and per-campaign counts, are rebuilt
//! from the click files at start.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::{Condvar, Mutex};

use super::code::Codec;
use super::rewrite::{self, Planned};
use crate::model::{Message, MessageId};

const TARGET: &str = "sluice::links";

/// Links per segment.
pub const SEGMENT_LINKS: u64 = 1 << 20;
/// Longest record (16 URLs of 2 KiB and the labels fit).
const MAX_RECORD: usize = 64 * 1024;
/// Bytes of an index entry.
const INDEX_ENTRY: u64 = 8;
/// Bytes of a click entry.
const CLICK_ENTRY: usize = 16;
/// Clicks written per link at most (a flood of one code fills no disk).
pub const MAX_RECORDED_CLICKS: u32 = 1000;
const KIND_CLICK: u8 = 1;
const KIND_PREVIEW: u8 = 2;

/// The store could not make links durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the link store cannot write: {0}")]
pub struct LinkError(String);

/// One stored link, as a lookup finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its number.
    pub n: u64,
    /// Its place among its message's links, from 0.
    pub index: u32,
    /// The message it was sent in.
    pub message_id: MessageId,
    /// When that message was accepted, Unix ms.
    pub created_ms: u64,
    /// The recipient, E.164 digits as an integer.
    pub to: u64,
    /// The tenant.
    pub tenant: String,
    /// The message's client_ref.
    pub client_ref: String,
    /// The message's campaign.
    pub campaign: String,
    /// Where it leads.
    pub url: String,
}

/// What a code names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live link.
    Found(Link),
    /// A link past its retention (or in a segment already deleted).
    Expired,
    /// No link: malformed, never issued, or not this store's.
    Unknown,
}

/// What a click was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clicked {
    /// The link's first click (previews do not count).
    pub first: bool,
    /// Clicks on the link so far, this one included (0 for a preview).
    pub count: u32,
    /// The first click on any of its message's links: a new clicking
    /// recipient.
    pub first_of_message: bool,
}

/// A campaign's click counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignClicks {
    /// Clicks, first and repeat.
    pub clicks: u64,
    /// Messages (recipients) with at least one click.
    pub clickers: u64,
    /// Preview fetches (counted apart).
    pub previews: u64,
}

/// Waits for the writes staged before it ([`LinkStore::durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ticket(u64);

/// Bytes staged for one segment.
#[derive(Debug, Default)]
struct Chunk {
    segment: u64,
    /// A segment begun by this run: files left by a crash under its name
    /// (never acknowledged) are emptied before the first write.
    fresh: bool,
    links: Vec<u8>,
    index: Vec<u8>,
    clicks: Vec<u8>,
}

#[derive(Debug)]
struct State {
    /// Next link number.
    next: u64,
    /// The segment being written.
    head: u64,
    /// Bytes of the head's `.links` file once everything staged is written.
    links_len: u64,
    staged: Vec<Chunk>,
    ticket: u64,
    stop: bool,
    /// The head, when this run began it and the writer has not opened it.
    fresh: Option<u64>,
}

impl State {
    fn head_chunk(&mut self) -> &mut Chunk {
        if self.staged.last().is_none_or(|c| c.segment != self.head) {
            let fresh = self.fresh == Some(self.head);
            self.fresh = None;
            self.staged.push(Chunk {
                segment: self.head,
                fresh,
                ..Chunk::default()
            });
        }
        // Just pushed when missing.
        let last = self.staged.len() - 1;
        &mut self.staged[last]
    }
}

#[derive(Debug, Default)]
struct Clicks {
    /// Links clicked at least once, and how often.
    links: HashMap<u64, u32>,
    /// Messages with a click, and their first link number (for pruning).
    messages: HashMap<u64, u64>,
    /// Per (tenant, campaign).
    campaigns: HashMap<(String, String), CampaignClicks>,
}

#[derive(Debug)]
struct Reader {
    links: File,
    index: File,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    codec: Codec,
    retention_ms: u64,
    state: Mutex<State>,
    wake: Condvar,
    /// (highest ticket synced, the writer failed).
    synced: tokio::sync::watch::Sender<(u64, bool)>,
    /// Next link number (lookups past it are unknown).
    next: AtomicU64,
    /// Oldest segment kept.
    oldest: AtomicU64,
    readers: Mutex<HashMap<u64, Arc<Reader>>>,
    clicks: Mutex<Clicks>,
}

/// The link store (see the module doc). Cloning is cheap; when the last
/// clone is dropped the writer thread writes what is staged and ends.
#[derive(Debug, Clone)]
pub struct LinkStore {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
}

/// Stops the writer when the last handle goes.
#[derive(Debug)]
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.state.lock().stop = true;
        self.0.wake.notify_one();
    }
}

fn path(dir: &Path, segment: u64, ext: &str) -> PathBuf {
    dir.join(format!("{segment:010}.{ext}"))
}

/// The segments in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(k) = name.strip_suffix(".index")
            && k.len() == 10
            && let Ok(k) = k.parse::<u64>()
        {
            found.push(k);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Every string is bounded by admission (labels 128 bytes, URLs 2 KiB),
    // far below u16::MAX; a longer one is cut at a character boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.extend_from_slice(&(end as u16).to_le_bytes());
    buf.extend_from_slice(&s.as_bytes()[..end]);
}

/// A record's body: a message's links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The number of its first link.
    pub first: u64,
    /// The message.
    pub message_id: u64,
    /// When it was accepted, Unix ms.
    pub created_ms: u64,
    /// Its recipient, E.164 digits as an integer.
    pub to: u64,
    /// Its tenant.
    pub tenant: String,
    /// Its client_ref.
    pub client_ref: String,
    /// Its campaign.
    pub campaign: String,
    /// Its links' URLs, in order (at most 255).
    pub urls: Vec<String>,
}

/// A body's fields as encoded, borrowed from the message.
struct BodyRef<'a> {
    first: u64,
    message_id: u64,
    created_ms: u64,
    to: u64,
    tenant: &'a str,
    client_ref: &'a str,
    campaign: &'a str,
}

impl BodyRef<'_> {
    fn encode<'u>(&self, out: &mut Vec<u8>, urls: impl ExactSizeIterator<Item = &'u str>) {
        out.extend_from_slice(&self.first.to_le_bytes());
        out.push(urls.len().min(255) as u8);
        out.extend_from_slice(&self.message_id.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.to.to_le_bytes());
        put_str(out, self.tenant);
        put_str(out, self.client_ref);
        put_str(out, self.campaign);
        for url in urls.take(255) {
            put_str(out, url);
        }
    }
}

impl Body {
    /// The body's bytes (what [`Body::decode`] reads back).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        BodyRef {
            first: self.first,
            message_id: self.message_id,
            created_ms: self.created_ms,
            to: self.to,
            tenant: &self.tenant,
            client_ref: &self.client_ref,
            campaign: &self.campaign,
        }
        .encode(&mut out, self.urls.iter().map(String::as_str));
        out
    }

    /// A body read back; `None` when the bytes are not exactly one (fuzzed
    /// by `fuzzing::link_store`).
    pub fn decode(bytes: &[u8]) -> Option<Body> {
        let mut c = Cursor(bytes);
        let first = c.u64()?;
        let count = c.u8()?;
        let message_id = c.u64()?;
        let created_ms = c.u64()?;
        let to = c.u64()?;
        let tenant = c.str()?;
        let client_ref = c.str()?;
        let campaign = c.str()?;
        let mut urls = Vec::with_capacity(count as usize);
        for _ in 0..count {
            urls.push(c.str()?);
        }
        c.0.is_empty().then_some(Body {
            first,
            message_id,
            created_ms,
            to,
            tenant,
            client_ref,
            campaign,
            urls,
        })
    }
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn str(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

impl LinkStore {
    /// Opens (or creates) the store in `dir`, codes keyed from `secret`,
    /// links answering for `retention` (zero: forever).
    ///
    /// # Errors
    /// The directory or its files cannot be read or created.
    pub fn open(dir: &Path, secret: &[u8], retention: Duration) -> io::Result<LinkStore> {
        fs::create_dir_all(dir)?;
        let found = segments(dir)?;
        let head = found.last().copied().unwrap_or(0);
        let oldest = found.first().copied().unwrap_or(0);
        let index = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path(dir, head, "index"))?;
        // A torn last entry (a crash mid-write) is cut.
        let len = index.metadata()?.len();
        index.set_len(len - len % INDEX_ENTRY)?;
        let entries = len / INDEX_ENTRY;
        let links = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path(dir, head, "links"))?;
        let links_len = links.metadata()?.len();
        let next = head * SEGMENT_LINKS + entries.min(SEGMENT_LINKS);
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            codec: Codec::new(secret),
            retention_ms: retention.as_millis() as u64,
            state: Mutex::new(State {
                next,
                head,
                links_len,
                staged: Vec::new(),
                ticket: 0,
                stop: false,
                fresh: None,
            }),
            wake: Condvar::new(),
            synced: tokio::sync::watch::Sender::new((0, false)),
            next: AtomicU64::new(next),
            oldest: AtomicU64::new(oldest),
            readers: Mutex::new(HashMap::new()),
            clicks: Mutex::new(Clicks::default()),
        });
        let store = LinkStore {
            _closer: Arc::new(Closer(shared.clone())),
            shared,
        };
        store.load_clicks(&found)?;
        let writer = store.shared.clone();
        std::thread::Builder::new()
            .name("sluice-links".into())
            .spawn(move || write_loop(&writer))?;
        Ok(store)
    }

    /// The codec (for tests and tools).
    pub fn codec(&self) -> &Codec {
        &self.shared.codec
    }

    /// Links issued so far.
    pub fn issued(&self) -> u64 {
        self.shared.next.load(Ordering::Relaxed)
    }

    /// Stores `m`'s links (`planned`, from [`rewrite::plan`] of its text)
    /// and writes their codes into its text. Returns the ticket to wait on
    /// before the message may be journaled.
    pub fn shorten(&self, m: &mut Message, planned: &[Planned]) -> Ticket {
        if self.failed() {
            // Never durable: the caller's wait fails and it refuses the batch.
            return Ticket(u64::MAX);
        }
        let count = planned.len().min(rewrite::MAX_LINKS);
        let mut body =
            Vec::with_capacity(64 + planned.iter().map(|p| p.url.len() + 2).sum::<usize>());
        let mut state = self.shared.state.lock();
        if (state.next % SEGMENT_LINKS) + count as u64 > SEGMENT_LINKS {
            state.head += 1;
            state.next = state.head * SEGMENT_LINKS;
            state.links_len = 0;
            state.fresh = Some(state.head);
        }
        let first = state.next;
        BodyRef {
            first,
            message_id: m.id.0,
            created_ms: m.accepted_at_ms,
            to: m.to.as_u64(),
            tenant: &m.tenant,
            client_ref: &m.client_ref,
            campaign: &m.campaign_id,
        }
        .encode(&mut body, planned[..count].iter().map(|p| p.url.as_str()));
        let offset = state.links_len;
        state.links_len += 8 + body.len() as u64;
        state.next += count as u64;
        state.ticket += 1;
        let ticket = Ticket(state.ticket);
        let chunk = state.head_chunk();
        chunk
            .links
            .extend_from_slice(&(body.len() as u32).to_le_bytes());
        chunk
            .links
            .extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        chunk.links.extend_from_slice(&body);
        for _ in 0..count {
            chunk.index.extend_from_slice(&offset.to_le_bytes());
        }
        self.shared.next.store(state.next, Ordering::Relaxed);
        drop(state);
        self.shared.wake.notify_one();
        // Same length in and out: neither conversion copies.
        let mut text = String::from(std::mem::take(&mut m.text));
        for (i, p) in planned[..count].iter().enumerate() {
            rewrite::fill(&mut text, p.at, &self.shared.codec.encode(first + i as u64));
        }
        m.text = text.into_boxed_str();
        Ticket(ticket.0)
    }

    /// Whether the writer has failed (nothing is staged from then on).
    fn failed(&self) -> bool {
        self.shared.synced.borrow().1
    }

    /// Waits until everything staged up to `ticket` is synced.
    ///
    /// # Errors
    /// The writer failed: the store takes no more links until a restart.
    pub async fn durable(&self, ticket: Ticket) -> Result<(), LinkError> {
        let mut rx = self.shared.synced.subscribe();
        let seen = rx
            .wait_for(|&(done, failed)| done >= ticket.0 || failed)
            .await
            .map(|v| *v);
        match seen {
            Ok((done, _)) if done >= ticket.0 => Ok(()),
            Ok(_) => Err(LinkError("a write or sync failed".into())),
            Err(_) => Err(LinkError("the store is closed".into())),
        }
    }

    /// What `code` names at `now_ms`: two positioned reads (an index entry
    /// and a record), from the page cache for links written recently.
    pub fn lookup(&self, code: &str, now_ms: u64) -> Lookup {
        let Some(n) = self.shared.codec.decode(code) else {
            return Lookup::Unknown;
        };
        self.lookup_number(n, now_ms)
    }

    /// [`LinkStore::lookup`] when it needs no file opened and reads the
    /// head segment (written recently, so in the page cache): cheap enough
    /// for an async worker. `None`: call `lookup` on a blocking thread.
    pub fn lookup_cached(&self, code: &str, now_ms: u64) -> Option<Lookup> {
        let Some(n) = self.shared.codec.decode(code) else {
            return Some(Lookup::Unknown);
        };
        let segment = n / SEGMENT_LINKS;
        let hot = segment == self.shared.state.lock().head
            && self.shared.readers.lock().contains_key(&segment);
        hot.then(|| self.lookup_number(n, now_ms))
    }

    fn lookup_number(&self, n: u64, now_ms: u64) -> Lookup {
        if n >= self.shared.next.load(Ordering::Relaxed) {
            return Lookup::Unknown;
        }
        if n / SEGMENT_LINKS < self.shared.oldest.load(Ordering::Relaxed) {
            return Lookup::Expired;
        }
        match self.read(n) {
            Some(link) if self.expired(link.created_ms, now_ms) => Lookup::Expired,
            Some(link) => Lookup::Found(link),
            None => Lookup::Unknown,
        }
    }

    fn expired(&self, created_ms: u64, now_ms: u64) -> bool {
        let r = self.shared.retention_ms;
        r != 0 && created_ms.saturating_add(r) <= now_ms
    }

    fn reader(&self, segment: u64) -> Option<Arc<Reader>> {
        if let Some(r) = self.shared.readers.lock().get(&segment) {
            return Some(r.clone());
        }
        let dir = &self.shared.dir;
        let r = Arc::new(Reader {
            links: File::open(path(dir, segment, "links")).ok()?,
            index: File::open(path(dir, segment, "index")).ok()?,
        });
        let mut readers = self.shared.readers.lock();
        if readers.len() >= 64
            && let Some(&oldest) = readers.keys().min()
        {
            readers.remove(&oldest);
        }
        readers.insert(segment, r.clone());
        Some(r)
    }

    /// Link `n` as stored, whatever its age; `None` when its entry or
    /// record is missing or does not check.
    fn read(&self, n: u64) -> Option<Link> {
        let r = self.reader(n / SEGMENT_LINKS)?;
        let mut entry = [0u8; 8];
        r.index
            .read_exact_at(&mut entry, (n % SEGMENT_LINKS) * INDEX_ENTRY)
            .ok()?;
        let offset = u64::from_le_bytes(entry);
        let mut head = [0u8; 8];
        r.links.read_exact_at(&mut head, offset).ok()?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            return None;
        }
        let mut body = vec![0u8; len];
        r.links
            .read_exact_at(&mut body, offset.checked_add(8)?)
            .ok()?;
        if crc32fast::hash(&body) != crc {
            return None;
        }
        let b = Body::decode(&body)?;
        let index = n.checked_sub(b.first)?;
        let url = b.urls.get(usize::try_from(index).ok()?)?.clone();
        Some(Link {
            n,
            index: index as u32,
            message_id: MessageId(b.message_id),
            created_ms: b.created_ms,
            to: b.to,
            tenant: b.tenant,
            client_ref: b.client_ref,
            campaign: b.campaign,
            url,
        })
    }

    /// Records a click on `link` (a preview fetch when `preview`) at
    /// `at_ms`: what it was, and the ticket of its durable record.
    /// Past [`MAX_RECORDED_CLICKS`] on one link, or once the writer has
    /// failed, a click is counted but not written (no ticket).
    pub fn click(&self, link: &Link, preview: bool, at_ms: u64) -> (Clicked, Option<Ticket>) {
        let clicked = self.count(link, preview);
        if clicked.count > MAX_RECORDED_CLICKS || self.failed() {
            return (clicked, None);
        }
        let kind = if preview { KIND_PREVIEW } else { KIND_CLICK };
        let mut state = self.shared.state.lock();
        state.ticket += 1;
        let ticket = Ticket(state.ticket);
        let chunk = state.head_chunk();
        chunk.clicks.extend_from_slice(&link.n.to_le_bytes());
        chunk
            .clicks
            .extend_from_slice(&((at_ms << 8) | u64::from(kind)).to_le_bytes());
        drop(state);
        self.shared.wake.notify_one();
        (clicked, Some(ticket))
    }

    fn count(&self, link: &Link, preview: bool) -> Clicked {
        let mut c = self.shared.clicks.lock();
        let key = (link.tenant.clone(), link.campaign.clone());
        if preview {
            c.campaigns.entry(key).or_default().previews += 1;
            return Clicked {
                first: false,
                count: 0,
                first_of_message: false,
            };
        }
        let count = c.links.entry(link.n).or_default();
        *count = count.saturating_add(1);
        let (count, first) = (*count, *count == 1);
        let first_of_message = match c.messages.entry(link.message_id.0) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(link.n - u64::from(link.index));
                true
            }
        };
        let stats = c.campaigns.entry(key).or_default();
        stats.clicks += 1;
        stats.clickers += u64::from(first_of_message);
        Clicked {
            first,
            count,
            first_of_message,
        }
    }

    /// `tenant`'s campaign's click counts.
    pub fn campaign(&self, tenant: &str, campaign: &str) -> CampaignClicks {
        self.shared
            .clicks
            .lock()
            .campaigns
            .get(&(tenant.to_owned(), campaign.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    fn load_clicks(&self, found: &[u64]) -> io::Result<()> {
        let mut loaded = 0u64;
        for &k in found {
            let bytes = match fs::read(path(&self.shared.dir, k, "clicks")) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in bytes.chunks_exact(CLICK_ENTRY) {
                let n = u64::from_le_bytes(e[..8].try_into().unwrap_or_default());
                let kind = e[8];
                if let Some(link) = self.read(n) {
                    self.count(&link, kind == KIND_PREVIEW);
                    loaded += 1;
                }
            }
        }
        if loaded > 0 {
            tracing::info!(target: TARGET, clicks = loaded, "link clicks loaded");
        }
        Ok(())
    }

    /// Deletes the segments (oldest first, never the head) whose newest
    /// write is older than the retention at `now`; returns how many.
    pub fn sweep(&self, now: SystemTime) -> usize {
        let r = self.shared.retention_ms;
        if r == 0 {
            return 0;
        }
        let head = self.shared.state.lock().head;
        let dir = &self.shared.dir;
        let mut removed = 0;
        let mut k = self.shared.oldest.load(Ordering::Relaxed);
        while k < head {
            let written = fs::metadata(path(dir, k, "links")).and_then(|m| m.modified());
            let old = match written {
                Ok(t) => now
                    .duration_since(t)
                    .is_ok_and(|age| age.as_millis() as u64 >= r),
                Err(e) => e.kind() == io::ErrorKind::NotFound,
            };
            if !old {
                break;
            }
            self.shared.oldest.store(k + 1, Ordering::Relaxed);
            self.shared.readers.lock().remove(&k);
            for ext in ["index", "links", "clicks"] {
                let _ = fs::remove_file(path(dir, k, ext));
            }
            removed += 1;
            k += 1;
        }
        if removed > 0 {
            let floor = k * SEGMENT_LINKS;
            let mut c = self.shared.clicks.lock();
            c.links.retain(|&n, _| n >= floor);
            c.messages.retain(|_, &mut n| n >= floor);
            tracing::info!(target: TARGET, segments = removed, "expired link segments removed");
        }
        removed
    }
}

/// The writer thread: writes what is staged, syncs, publishes the ticket.
fn write_loop(shared: &Shared) {
    let mut open: Option<(u64, [File; 3])> = None;
    loop {
        let (staged, ticket) = {
            let mut s = shared.state.lock();
            while s.staged.is_empty() && !s.stop {
                shared.wake.wait(&mut s);
            }
            if s.staged.is_empty() {
                return;
            }
            (std::mem::take(&mut s.staged), s.ticket)
        };
        match write(&shared.dir, &mut open, staged) {
            Ok(()) => shared.synced.send_modify(|s| s.0 = s.0.max(ticket)),
            Err(e) => {
                tracing::error!(target: TARGET, error = %e, "link store write failed; tracked links are refused until a restart");
                metrics::counter!("sluice_link_store_errors_total").increment(1);
                shared.synced.send_modify(|s| s.1 = true);
                return;
            }
        }
    }
}

fn write(dir: &Path, open: &mut Option<(u64, [File; 3])>, staged: Vec<Chunk>) -> io::Result<()> {
    let mut dirty = [false; 3];
    for chunk in staged {
        if open.as_ref().is_none_or(|(k, _)| *k != chunk.segment) {
            if let Some((_, files)) = open.take() {
                sync(&files, &mut dirty)?;
            }
            let file = |ext| {
                let f = OpenOptions::new().create(true).append(true).open(path(
                    dir,
                    chunk.segment,
                    ext,
                ))?;
                if chunk.fresh {
                    f.set_len(0)?;
                }
                Ok::<_, io::Error>(f)
            };
            *open = Some((
                chunk.segment,
                [file("links")?, file("index")?, file("clicks")?],
            ));
            // The new files' names are durable too.
            File::open(dir)?.sync_all()?;
        }
        if let Some((_, files)) = open.as_mut() {
            // Records before the entries that point at them.
            for (i, bytes) in [&chunk.links, &chunk.index, &chunk.clicks]
                .into_iter()
                .enumerate()
            {
                if !bytes.is_empty() {
                    files[i].write_all(bytes)?;
                    dirty[i] = true;
                }
            }
        }
    }
    if let Some((_, files)) = open.as_ref() {
        sync(files, &mut dirty)?;
    }
    Ok(())
}

/// Syncs the files written to since the last sync.
fn sync(files: &[File; 3], dirty: &mut [bool; 3]) -> io::Result<()> {
    for (f, d) in files.iter().zip(dirty.iter_mut()) {
        if std::mem::take(d) {
            f.sync_data()?;
        }
    }
    Ok(())
}
