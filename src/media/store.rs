//! [`MediaStore`]: content-addressed media on disk, stored once per content,
//! owned per tenant, served from a size-bounded in-memory cache.
//!
//! Layout under the configured directory:
//!
//! ```text
//! <dir>/<aa>/<id>              content; id = lowercase hex sha256, aa = its first two characters
//! <dir>/<aa>/.tmp-<id>-<rand>  a write in progress (removed at open)
//! <dir>/owners/<tenant>/<id>   empty marker: <tenant> uploaded <id>
//! <dir>/pages/<message_id>     a fallback message's page: its media ids, one a line
//! ```
//!
//! A write is atomic and durable before `put` returns: temporary file,
//! `fsync`, rename, `fsync` of the directory; the owner marker is written the
//! same way after the content, so a marker never names missing content. The
//! same bytes put twice write nothing the second time. Tenant names become
//! directory names through an injective encoding (`t-<name>` for
//! `[A-Za-z0-9_-]{1,64}`, `x-<hex>` or `h-<sha256>` otherwise), and ids are
//! checked to be 64 hexadecimal characters before any path is built, so no
//! input reaches outside the directory.
//!
//! The media type is a function of the bytes ([`sniff`]), so it is not
//! stored: a cache miss re-sniffs, and checks the file still hashes to its id.
//!
//! Chunked uploads are held in memory (bounded in declared bytes overall)
//! until [`MediaStore::finish`], which runs the same checks as
//! [`MediaStore::put`]. An upload idle for longer than
//! [`StoreConfig::upload_ttl`] is dropped. Uploads do not survive a restart:
//! a client that loses its connection starts again.
//!
//! **Limits per tenant.** Uploads in progress — a `put` being stored, or a
//! chunked upload begun and not finished — are capped per tenant
//! ([`StoreConfig::max_uploads_per_tenant`]) and in all
//! ([`StoreConfig::max_uploads`]); the next one is refused at once
//! ([`MediaError::TooManyUploads`]), not queued, so a tenant cannot tie up
//! the disk or hold memory waiting. What a tenant has stored is capped in
//! bytes and count ([`Quota`]): each tenant is charged the full size of each
//! media it owns (shared content too, since for the tenant it is stored),
//! and storing the same bytes again costs nothing. A refusal
//! ([`MediaError::QuotaExceeded`]) touches nothing already stored. Usage is
//! counted from the markers on a tenant's first use after start.
//!
//! All methods block on file I/O; call them from `spawn_blocking` in async
//! code. Cache hits do no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::landing::LandingPage;
use super::sniff::{MediaType, sniff};
use super::{MediaError, QuotaExceeded, UploadLimit};

const TARGET: &str = "sluice::media::store";

/// Name of the directory holding ownership markers.
const OWNERS: &str = "owners";
/// Directory of message pages: which media each fallback's page shows.
const PAGES: &str = "pages";
/// Media items a message page lists at most (a file with more is cut).
const MAX_PAGE_ITEMS: usize = 64;
/// Directory of landing-page records, named by their codes.
const LANDING: &str = "landing";
/// How stale a landing page's file time may grow before a new link to it
/// refreshes it.
const LANDING_TOUCH: Duration = Duration::from_secs(86_400);
/// Prefix of temporary files.
const TMP_PREFIX: &str = ".tmp-";

// === MediaId ===

/// A media content id: the sha256 of the bytes. Displays as 64 lowercase
/// hexadecimal characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId([u8; 32]);

impl MediaId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> MediaId {
        MediaId(Sha256::digest(bytes).into())
    }

    /// Parses 64 hexadecimal characters (either case).
    ///
    /// # Errors
    /// [`MediaError::InvalidId`] for anything else.
    pub fn parse(s: &str) -> Result<MediaId, MediaError> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(MediaError::InvalidId);
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or(MediaError::InvalidId)?;
            let lo = hex_val(pair[1]).ok_or(MediaError::InvalidId)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(MediaId(out))
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xF)] as char);
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaId({})", self.to_hex())
    }
}

impl FromStr for MediaId {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MediaId::parse(s)
    }
}

// === Media, MediaInfo, UploadId ===

/// Stored media: id, type and content. Cloning is cheap (the bytes are
/// shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The content id.
    pub id: MediaId,
    /// The sniffed type.
    pub media_type: MediaType,
    /// The content.
    pub bytes: Bytes,
}

/// What [`MediaStore::put`] and [`MediaStore::finish`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaInfo {
    /// The content id (answer this to the client).
    pub id: MediaId,
    /// The type, as declared and sniffed.
    pub media_type: MediaType,
    /// Size in bytes.
    pub len: u64,
    /// Whether this call wrote the content (false: it was already stored).
    pub created: bool,
}

/// A chunked upload in progress, from [`MediaStore::begin_upload`]. Random,
/// and only valid for the tenant that began it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(pub u64);

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

// === StoreConfig ===

/// Settings of a [`MediaStore`].
///
/// # Defaults
/// `max_size` 5 MiB, `cache_bytes` 64 MiB, `upload_ttl` 10 minutes,
/// `max_upload_bytes` 64 MiB (declared totals of uploads in progress),
/// `max_uploads_per_tenant` 8, `max_uploads` 64, no quota.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// The largest media accepted.
    pub max_size: u64,
    /// Memory for cached content.
    pub cache_bytes: usize,
    /// How long an upload may sit idle before it is dropped.
    pub upload_ttl: Duration,
    /// The sum of declared totals of uploads in progress.
    pub max_upload_bytes: u64,
    /// Uploads in progress (being stored, or chunked and unfinished) per
    /// tenant.
    pub max_uploads_per_tenant: usize,
    /// Uploads in progress over all tenants.
    pub max_uploads: usize,
    /// What each tenant may have stored, unless `tenant_quotas` says
    /// otherwise.
    pub quota: Quota,
    /// Quotas of particular tenants.
    pub tenant_quotas: HashMap<String, Quota>,
}

impl StoreConfig {
    /// Defaults for a store under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            max_size: 5 * 1024 * 1024,
            cache_bytes: 64 * 1024 * 1024,
            upload_ttl: Duration::from_secs(600),
            max_upload_bytes: 64 * 1024 * 1024,
            max_uploads_per_tenant: 8,
            max_uploads: 64,
            quota: Quota::default(),
            tenant_quotas: HashMap::new(),
        }
    }
}

// === Quota, Usage ===

/// What a tenant may have stored; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Total bytes of its media.
    pub bytes: u64,
    /// Number of media.
    pub count: u64,
}

/// What a tenant has stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Total bytes of its media.
    pub bytes: u64,
    /// Number of media.
    pub count: u64,
}

/// Counters of a [`MediaStore`], for tests and gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Content files read from disk (cache misses that found a file).
    pub disk_reads: u64,
    /// Lookups answered from memory.
    pub cache_hits: u64,
    /// Content files written.
    pub files_written: u64,
    /// Owner markers written.
    pub markers_written: u64,
}

// === MediaStore ===

/// Content-addressed media store (see the module doc).
#[derive(Debug)]
pub struct MediaStore {
    cfg: StoreConfig,
    /// Quotas of particular tenants (`cfg.tenant_quotas` at first; a
    /// reload replaces them).
    tenant_quotas: parking_lot::RwLock<HashMap<String, Quota>>,
    cache: Mutex<Lru>,
    /// What each tenant owns (a marker on disk) and its usage, loaded from
    /// the markers on the tenant's first use.
    tenants: Mutex<HashMap<String, TenantMedia>>,
    uploads: Mutex<Uploads>,
    disk_reads: AtomicU64,
    cache_hits: AtomicU64,
    files_written: AtomicU64,
    markers_written: AtomicU64,
}

/// A tenant's media.
#[derive(Debug, Default)]
struct TenantMedia {
    owned: HashSet<MediaId>,
    stored: Usage,
    /// Admitted against the quota and being written.
    reserved: Usage,
}

/// Uploads in progress.
#[derive(Debug, Default)]
struct Uploads {
    chunked: HashMap<u64, Upload>,
    /// Media being stored (a `put`, or a finished upload), per tenant.
    storing: HashMap<String, usize>,
}

#[derive(Debug)]
struct Upload {
    tenant: String,
    declared: MediaType,
    total: u64,
    data: Vec<u8>,
    touched: Instant,
}

impl MediaStore {
    /// Opens (creating) the store and removes temporary files a crash left.
    ///
    /// # Errors
    /// When the directory cannot be created or read.
    pub fn open(cfg: StoreConfig) -> io::Result<MediaStore> {
        fs::create_dir_all(cfg.dir.join(OWNERS))?;
        fs::create_dir_all(cfg.dir.join(PAGES))?;
        remove_temps(&cfg.dir.join(PAGES))?;
        fs::create_dir_all(cfg.dir.join(LANDING))?;
        remove_temps(&cfg.dir.join(LANDING))?;
        for entry in fs::read_dir(&cfg.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let is_shard = name.len() == 2
                && name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|c| hex_val(c).is_some()));
            if is_shard && entry.file_type()?.is_dir() {
                remove_temps(&entry.path())?;
            }
        }
        Ok(MediaStore {
            cache: Mutex::new(Lru::new(cfg.cache_bytes)),
            tenant_quotas: parking_lot::RwLock::new(cfg.tenant_quotas.clone()),
            cfg,
            tenants: Mutex::new(HashMap::new()),
            uploads: Mutex::new(Uploads::default()),
            disk_reads: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            files_written: AtomicU64::new(0),
            markers_written: AtomicU64::new(0),
        })
    }

    /// The media message `message_id`'s page shows (written by versions
    /// before landing pages; its links still work), or `None` when it has
    /// no page (or its file does not read: lines that are not media ids
    /// are skipped, and at most [`MAX_PAGE_ITEMS`] are read).
    pub fn page(&self, message_id: u64) -> Option<Vec<MediaId>> {
        let path = self.cfg.dir.join(PAGES).join(format!("{message_id:016x}"));
        let mut text = String::new();
        File::open(path)
            .ok()?
            .take((MAX_PAGE_ITEMS * 65) as u64)
            .read_to_string(&mut text)
            .ok()?;
        Some(parse_page(&text))
    }

    /// Records, durably, the landing page named `code` (made by
    /// [`super::LinkSigner::landing_code`] from these very bytes). A page
    /// already recorded is not written again (its name is its content):
    /// the answer says whether this call wrote it.
    ///
    /// # Errors
    /// `code` is not a landing code, or the file cannot be written.
    pub fn put_landing(&self, code: &str, page: &LandingPage) -> io::Result<bool> {
        if !super::link::is_landing_code(code) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a landing-page code",
            ));
        }
        let dir = self.cfg.dir.join(LANDING);
        let dest = dir.join(code);
        if dest.exists() {
            return Ok(false);
        }
        write_atomic(&dir, &dest, code, &page.to_bytes())?;
        Ok(true)
    }

    /// Whether the landing page named `code` is recorded; one that is is
    /// marked as linked again (its file's time set to now, at most once a
    /// day: [`MediaStore::sweep_landing`] keeps it).
    pub fn has_landing(&self, code: &str) -> bool {
        if !super::link::is_landing_code(code) {
            return false;
        }
        let path = self.cfg.dir.join(LANDING).join(code);
        let Ok(meta) = fs::metadata(&path) else {
            return false;
        };
        let now = SystemTime::now();
        let stale = meta
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > LANDING_TOUCH);
        if stale {
            let touched = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(now));
            if let Err(e) = touched {
                tracing::warn!(target: TARGET, error = %e, "landing page not marked as linked again");
            }
        }
        true
    }

    /// Removes the landing pages no fallback has linked to for `retention`
    /// (by their file's time, which [`MediaStore::has_landing`] refreshes)
    /// and answers how many it removed.
    ///
    /// # Errors
    /// The directory cannot be read (a file that cannot be removed is
    /// logged and skipped).
    pub fn sweep_landing(&self, retention: Duration) -> io::Result<usize> {
        let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in fs::read_dir(self.cfg.dir.join(LANDING))? {
            let entry = entry?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            let is_page = entry
                .file_name()
                .to_str()
                .is_some_and(super::link::is_landing_code);
            if !(old && is_page) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(target: TARGET, error = %e, "expired landing page not removed");
                }
            }
        }
        Ok(removed)
    }

    /// The landing page named `code`, or `None` when there is none (or its
    /// file is not a record: [`LandingPage::from_bytes`]).
    pub fn landing(&self, code: &str) -> Option<LandingPage> {
        if !super::link::is_landing_code(code) {
            return None;
        }
        let mut bytes = Vec::new();
        File::open(self.cfg.dir.join(LANDING).join(code))
            .ok()?
            .take(super::landing::MAX_RECORD_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .ok()?;
        LandingPage::from_bytes(&bytes)
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            disk_reads: self.disk_reads.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            files_written: self.files_written.load(Ordering::Relaxed),
            markers_written: self.markers_written.load(Ordering::Relaxed),
        }
    }

    /// Stores `bytes` for `tenant` after checking them against the declared
    /// content type, and answers their id. Durable when it returns. The same
    /// bytes stored again write nothing (a new tenant only gets its marker)
    /// and cost no quota.
    ///
    /// # Errors
    /// [`MediaError::Unsupported`], [`MediaError::Empty`],
    /// [`MediaError::TooLarge`], [`MediaError::TooManyUploads`],
    /// [`MediaError::TypeMismatch`], [`MediaError::QuotaExceeded`],
    /// [`MediaError::Io`].
    pub fn put(
        &self,
        tenant: &str,
        declared_content_type: &str,
        bytes: Bytes,
    ) -> Result<MediaInfo, MediaError> {
        let declared = parse_declared(declared_content_type)?;
        self.check_len(bytes.len() as u64)?;
        let slot = self.begin_storing(tenant)?;
        self.store(tenant, declared, bytes, slot)
    }

    /// Checks, admits against the quota and writes `bytes`; `_slot` is this
    /// store's place among the uploads in progress.
    fn store(
        &self,
        tenant: &str,
        declared: MediaType,
        bytes: Bytes,
        _slot: StoringSlot<'_>,
    ) -> Result<MediaInfo, MediaError> {
        let actual = sniff(&bytes);
        if actual != Some(declared) {
            return Err(MediaError::TypeMismatch { declared, actual });
        }
        let id = MediaId::of(&bytes);
        let len = bytes.len() as u64;
        // Held until the marker is written (then the usage counts it).
        let _reservation = self.reserve(tenant, id, len)?;
        let created = self.write_content(id, &bytes)?;
        self.mark_owner(tenant, id, len)?;
        self.cache.lock().insert(Media {
            id,
            media_type: declared,
            bytes,
        });
        tracing::debug!(target: TARGET, tenant = %crate::model::LogSafe::new(tenant), %id, len, created, "media stored");
        Ok(MediaInfo {
            id,
            media_type: declared,
            len,
            created,
        })
    }

    /// What `tenant` has stored.
    ///
    /// # Errors
    /// [`MediaError::Io`] reading its markers (first use only).
    pub fn usage(&self, tenant: &str) -> Result<Usage, MediaError> {
        self.with_tenant(tenant, |m| m.stored)
    }

    /// The media `id` if `tenant` uploaded it.
    ///
    /// # Errors
    /// [`MediaError::InvalidId`] before any lookup; [`MediaError::NotFound`]
    /// when it is missing or another tenant's; [`MediaError::Corrupt`],
    /// [`MediaError::Io`].
    pub fn get(&self, tenant: &str, id: &str) -> Result<Media, MediaError> {
        let id = MediaId::parse(id)?;
        if !self.owns(tenant, id)? {
            return Err(MediaError::NotFound);
        }
        self.load(id)
    }

    /// The media `id` whoever uploaded it: for callers holding another
    /// proof of access (a signed link).
    ///
    /// # Errors
    /// As [`get`](MediaStore::get).
    pub fn get_unscoped(&self, id: &str) -> Result<Media, MediaError> {
        let id = MediaId::parse(id)?;
        self.load(id)
    }

    /// The media `id` if it is in memory; no I/O.
    pub fn get_cached(&self, id: MediaId) -> Option<Media> {
        let hit = self.cache.lock().get(id);
        if hit.is_some() {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Starts a chunked upload of `total_len` bytes of the declared type.
    /// It holds one of the tenant's uploads in progress until it is
    /// finished, aborted or expires. Refused up front when `total_len` more
    /// bytes (or one more media) would not fit the tenant's quota.
    ///
    /// # Errors
    /// [`MediaError::Unsupported`], [`MediaError::Empty`],
    /// [`MediaError::TooLarge`], [`MediaError::QuotaExceeded`],
    /// [`MediaError::TooManyUploads`].
    pub fn begin_upload(
        &self,
        tenant: &str,
        content_type: &str,
        total_len: u64,
    ) -> Result<UploadId, MediaError> {
        let declared = parse_declared(content_type)?;
        self.check_len(total_len)?;
        let quota = self.quota_of(tenant);
        self.with_tenant(tenant, |m| {
            check_quota(quota, m.stored, m.reserved, total_len)
        })??;
        let now = Instant::now();
        let mut uploads = self.uploads.lock();
        self.expire(&mut uploads.chunked, now);
        self.check_slots(&uploads, tenant)?;
        let pending: u64 = uploads.chunked.values().map(|u| u.total).sum();
        if pending.saturating_add(total_len) > self.cfg.max_upload_bytes {
            return Err(MediaError::TooManyUploads(UploadLimit::Bytes(
                self.cfg.max_upload_bytes,
            )));
        }
        let mut id = rand::random::<u64>();
        while uploads.chunked.contains_key(&id) {
            id = rand::random::<u64>();
        }
        uploads.chunked.insert(
            id,
            Upload {
                tenant: tenant.to_owned(),
                declared,
                total: total_len,
                data: Vec::new(),
                touched: now,
            },
        );
        Ok(UploadId(id))
    }

    /// Appends `bytes` at `offset`, which must be where the upload stands (a
    /// repeat of an already received chunk with the same bytes is accepted
    /// and changes nothing). Answers the bytes received so far.
    ///
    /// # Errors
    /// [`MediaError::UnknownUpload`] (never begun, another tenant's,
    /// finished, or expired), [`MediaError::BadOffset`],
    /// [`MediaError::UploadOverflow`].
    pub fn put_chunk(
        &self,
        tenant: &str,
        upload: UploadId,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, MediaError> {
        let now = Instant::now();
        let mut uploads = self.uploads.lock();
        self.expire(&mut uploads.chunked, now);
        let up = match uploads.chunked.get_mut(&upload.0) {
            Some(up) if up.tenant == tenant => up,
            _ => return Err(MediaError::UnknownUpload),
        };
        let received = up.data.len() as u64;
        let end = offset.saturating_add(bytes.len() as u64);
        if end > up.total {
            return Err(MediaError::UploadOverflow {
                end,
                total: up.total,
            });
        }
        if offset != received {
            // A retransmission of data already received is harmless.
            let dup = offset < received
                && end <= received
                && up.data.get(offset as usize..end as usize) == Some(bytes);
            if !dup {
                return Err(MediaError::BadOffset {
                    expected: received,
                    offset,
                });
            }
        } else {
            up.data.extend_from_slice(bytes);
        }
        up.touched = now;
        Ok(up.data.len() as u64)
    }

    /// Completes an upload: the same checks and storage as
    /// [`put`](MediaStore::put) (its place among the uploads in progress
    /// carries over). The upload is gone afterwards, whatever the outcome,
    /// except on [`MediaError::Incomplete`].
    ///
    /// # Errors
    /// [`MediaError::UnknownUpload`], [`MediaError::Incomplete`], and those
    /// of [`put`](MediaStore::put) but [`MediaError::TooManyUploads`].
    pub fn finish(&self, tenant: &str, upload: UploadId) -> Result<MediaInfo, MediaError> {
        let (up, slot) = {
            let mut uploads = self.uploads.lock();
            self.expire(&mut uploads.chunked, Instant::now());
            match uploads.chunked.get(&upload.0) {
                Some(up) if up.tenant == tenant => {
                    if (up.data.len() as u64) < up.total {
                        return Err(MediaError::Incomplete {
                            received: up.data.len() as u64,
                            total: up.total,
                        });
                    }
                }
                _ => return Err(MediaError::UnknownUpload),
            }
            let up = uploads
                .chunked
                .remove(&upload.0)
                .ok_or(MediaError::UnknownUpload)?;
            *uploads.storing.entry(tenant.to_owned()).or_default() += 1;
            (
                up,
                StoringSlot {
                    store: self,
                    tenant: tenant.to_owned(),
                },
            )
        };
        self.check_len(up.data.len() as u64)?;
        self.store(tenant, up.declared, Bytes::from(up.data), slot)
    }

    /// Drops an upload; whether it existed (for this tenant).
    pub fn abort(&self, tenant: &str, upload: UploadId) -> bool {
        let mut uploads = self.uploads.lock();
        match uploads.chunked.get(&upload.0) {
            Some(up) if up.tenant == tenant => uploads.chunked.remove(&upload.0).is_some(),
            _ => false,
        }
    }

    /// Drops uploads idle for longer than the TTL; answers how many. The
    /// other upload calls do this too, so a periodic call only frees memory
    /// sooner.
    pub fn sweep_uploads(&self) -> usize {
        let mut uploads = self.uploads.lock();
        self.expire(&mut uploads.chunked, Instant::now())
    }

    /// Uploads in progress: chunked ones unfinished, and media being stored.
    pub fn uploads_in_progress(&self) -> usize {
        let u = self.uploads.lock();
        u.chunked.len() + u.storing.values().sum::<usize>()
    }

    // --- internals ---

    /// Takes a place among the uploads in progress for a store.
    fn begin_storing(&self, tenant: &str) -> Result<StoringSlot<'_>, MediaError> {
        let mut uploads = self.uploads.lock();
        self.expire(&mut uploads.chunked, Instant::now());
        self.check_slots(&uploads, tenant)?;
        *uploads.storing.entry(tenant.to_owned()).or_default() += 1;
        Ok(StoringSlot {
            store: self,
            tenant: tenant.to_owned(),
        })
    }

    /// Whether `tenant` may start one more upload.
    fn check_slots(&self, uploads: &Uploads, tenant: &str) -> Result<(), MediaError> {
        let mine = uploads
            .chunked
            .values()
            .filter(|u| u.tenant == tenant)
            .count()
            + uploads.storing.get(tenant).copied().unwrap_or(0);
        if mine >= self.cfg.max_uploads_per_tenant {
            return Err(MediaError::TooManyUploads(UploadLimit::Tenant(
                self.cfg.max_uploads_per_tenant,
            )));
        }
        let all = uploads.chunked.len() + uploads.storing.values().sum::<usize>();
        if all >= self.cfg.max_uploads {
            return Err(MediaError::TooManyUploads(UploadLimit::All(
                self.cfg.max_uploads,
            )));
        }
        Ok(())
    }

    /// What `tenant` may have stored.
    fn quota_of(&self, tenant: &str) -> Quota {
        self.tenant_quotas
            .read()
            .get(tenant)
            .copied()
            .unwrap_or(self.cfg.quota)
    }

    /// Takes the quotas of particular tenants from a reload (those it
    /// names, tenants added too; the rest have the default). What is
    /// stored stays; the next upload counts against the new quota.
    pub fn set_tenant_quotas(&self, quotas: HashMap<String, Quota>) {
        *self.tenant_quotas.write() = quotas;
    }

    /// Runs `f` on `tenant`'s media, reading its markers first if this is
    /// its first use (outside the lock: it is file I/O).
    fn with_tenant<R>(
        &self,
        tenant: &str,
        f: impl FnOnce(&mut TenantMedia) -> R,
    ) -> Result<R, MediaError> {
        if let Some(m) = self.tenants.lock().get_mut(tenant) {
            return Ok(f(m));
        }
        let scanned = self.scan_owner(tenant)?;
        // Another thread may have loaded it meanwhile: the first one wins
        // (nothing can change a tenant's media before it is loaded).
        let mut tenants = self.tenants.lock();
        Ok(f(tenants.entry(tenant.to_owned()).or_insert(scanned)))
    }

    /// Reads a tenant's markers and the sizes of the content they name.
    fn scan_owner(&self, tenant: &str) -> Result<TenantMedia, MediaError> {
        let mut m = TenantMedia::default();
        let entries = match fs::read_dir(self.owner_dir(tenant)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(m),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| MediaId::parse(n).ok())
            else {
                continue;
            };
            match fs::metadata(self.content_path(id).1) {
                Ok(meta) => {
                    m.owned.insert(id);
                    m.stored.bytes += meta.len();
                    m.stored.count += 1;
                }
                // A marker is written after its content: a missing content
                // file means the marker is not worth counting.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(m)
    }

    /// Admits `len` new bytes of media `id` against `tenant`'s quota until
    /// the returned reservation drops; `None` when the tenant owns it
    /// already (no charge).
    fn reserve(
        &self,
        tenant: &str,
        id: MediaId,
        len: u64,
    ) -> Result<Option<Reservation<'_>>, MediaError> {
        let quota = self.quota_of(tenant);
        self.with_tenant(tenant, |m| {
            if m.owned.contains(&id) {
                return Ok(None);
            }
            check_quota(quota, m.stored, m.reserved, len)?;
            m.reserved.bytes += len;
            m.reserved.count += 1;
            Ok(Some(Reservation {
                store: self,
                tenant: tenant.to_owned(),
                len,
            }))
        })?
    }

    fn check_len(&self, len: u64) -> Result<(), MediaError> {
        if len == 0 {
            return Err(MediaError::Empty);
        }
        if len > self.cfg.max_size {
            return Err(MediaError::TooLarge {
                len,
                max: self.cfg.max_size,
            });
        }
        Ok(())
    }

    fn expire(&self, uploads: &mut HashMap<u64, Upload>, now: Instant) -> usize {
        let ttl = self.cfg.upload_ttl;
        let before = uploads.len();
        uploads.retain(|_, u| now.saturating_duration_since(u.touched) <= ttl);
        let gone = before - uploads.len();
        if gone > 0 {
            tracing::debug!(target: TARGET, expired = gone, "abandoned uploads dropped");
        }
        gone
    }

    fn content_path(&self, id: MediaId) -> (PathBuf, PathBuf) {
        let hex = id.to_hex();
        let shard = self.cfg.dir.join(&hex[..2]);
        let file = shard.join(&hex);
        (shard, file)
    }

    fn owner_dir(&self, tenant: &str) -> PathBuf {
        self.cfg.dir.join(OWNERS).join(tenant_dir_name(tenant))
    }

    /// Writes the content unless a complete copy is there; whether it wrote.
    fn write_content(&self, id: MediaId, bytes: &[u8]) -> Result<bool, MediaError> {
        let (shard, file) = self.content_path(id);
        match fs::metadata(&file) {
            Ok(m) if m.is_file() && m.len() == bytes.len() as u64 => return Ok(false),
            Ok(_) => {
                tracing::warn!(target: TARGET, %id, "stored media has the wrong size; rewriting")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let new_shard = create_dir_synced(&shard, &self.cfg.dir)?;
        write_atomic(&shard, &file, &id.to_hex(), bytes)?;
        if new_shard {
            sync_dir(&self.cfg.dir)?;
        }
        self.files_written.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Writes `tenant`'s marker for `id` (of `len` bytes) unless it owns it
    /// already, and counts it in its usage.
    fn mark_owner(&self, tenant: &str, id: MediaId, len: u64) -> Result<(), MediaError> {
        if self.owns(tenant, id)? {
            return Ok(());
        }
        let dir = self.owner_dir(tenant);
        let marker = dir.join(id.to_hex());
        if !marker.is_file() {
            create_dir_synced(&dir, &self.cfg.dir.join(OWNERS))?;
            write_atomic(&dir, &marker, &id.to_hex(), &[])?;
            self.markers_written.fetch_add(1, Ordering::Relaxed);
        }
        self.with_tenant(tenant, |m| {
            // Two stores of the same new media race here: one counts it.
            if m.owned.insert(id) {
                m.stored.bytes += len;
                m.stored.count += 1;
            }
        })
    }

    fn owns(&self, tenant: &str, id: MediaId) -> Result<bool, MediaError> {
        self.with_tenant(tenant, |m| m.owned.contains(&id))
    }

    fn load(&self, id: MediaId) -> Result<Media, MediaError> {
        if let Some(media) = self.get_cached(id) {
            return Ok(media);
        }
        let (_, file) = self.content_path(id);
        let mut f = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(MediaError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let len = f.metadata()?.len();
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(64 << 20));
        f.read_to_end(&mut buf)?;
        self.disk_reads.fetch_add(1, Ordering::Relaxed);
        if MediaId::of(&buf) != id {
            tracing::error!(target: TARGET, %id, "stored media does not match its id");
            return Err(MediaError::Corrupt { id });
        }
        let media_type = sniff(&buf).ok_or(MediaError::Corrupt { id })?;
        let media = Media {
            id,
            media_type,
            bytes: Bytes::from(buf),
        };
        self.cache.lock().insert(media.clone());
        Ok(media)
    }
}

fn parse_declared(content_type: &str) -> Result<MediaType, MediaError> {
    MediaType::from_content_type(content_type).ok_or_else(|| MediaError::Unsupported {
        content_type: content_type.chars().take(64).collect(),
    })
}

/// An injective, path-safe directory name for a tenant.
fn tenant_dir_name(tenant: &str) -> String {
    let plain = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if plain {
        format!("t-{tenant}")
    } else if tenant.len() <= 64 {
        let mut s = String::from("x-");
        for b in tenant.bytes() {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xF)] as char);
        }
        s
    } else {
        format!("h-{}", MediaId::of(tenant.as_bytes()).to_hex())
    }
}

/// Whether `len` more bytes (one more media) fit `quota` over `stored` and
/// `reserved`.
fn check_quota(quota: Quota, stored: Usage, reserved: Usage, len: u64) -> Result<(), MediaError> {
    let used_bytes = stored.bytes + reserved.bytes;
    if quota.bytes > 0 && used_bytes.saturating_add(len) > quota.bytes {
        return Err(MediaError::QuotaExceeded(QuotaExceeded::Bytes {
            used: used_bytes,
            limit: quota.bytes,
            len,
        }));
    }
    let used_count = stored.count + reserved.count;
    if quota.count > 0 && used_count >= quota.count {
        return Err(MediaError::QuotaExceeded(QuotaExceeded::Count {
            used: used_count,
            limit: quota.count,
        }));
    }
    Ok(())
}

/// A place among the uploads in progress, held while media is stored.
struct StoringSlot<'a> {
    store: &'a MediaStore,
    tenant: String,
}

impl Drop for StoringSlot<'_> {
    fn drop(&mut self) {
        let mut uploads = self.store.uploads.lock();
        if let Some(n) = uploads.storing.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                uploads.storing.remove(&self.tenant);
            }
        }
    }
}

/// Bytes admitted against a tenant's quota, being written.
struct Reservation<'a> {
    store: &'a MediaStore,
    tenant: String,
    len: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.store.tenants.lock().get_mut(&self.tenant) {
            m.reserved.bytes -= self.len;
            m.reserved.count -= 1;
        }
    }
}

// === file helpers ===

/// Creates `dir` (whose parent is `parent`) if missing, syncing the parent;
/// whether it was created.
fn create_dir_synced(dir: &Path, parent: &Path) -> io::Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => {
            sync_dir(parent)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The media ids of a page file.
fn parse_page(text: &str) -> Vec<MediaId> {
    text.lines()
        .filter_map(|l| MediaId::parse(l.trim()).ok())
        .take(MAX_PAGE_ITEMS)
        .collect()
}

/// Fuzz hook: the media ids a page file holds.
#[doc(hidden)]
pub fn fuzz_page(text: &str) -> usize {
    parse_page(text).len()
}

/// Temporary file in `dir`, write, fsync, rename over `dest`, fsync `dir`.
fn write_atomic(dir: &Path, dest: &Path, tag: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{TMP_PREFIX}{tag}-{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dest)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_temps(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

// === Lru ===

/// A byte-bounded least-recently-used cache of media.
#[derive(Debug)]
struct Lru {
    map: HashMap<MediaId, (Media, u64)>,
    order: BTreeMap<u64, MediaId>,
    tick: u64,
    bytes: usize,
    cap: usize,
}

impl Lru {
    fn new(cap: usize) -> Lru {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            cap,
        }
    }

    fn get(&mut self, id: MediaId) -> Option<Media> {
        self.tick += 1;
        let tick = self.tick;
        let (media, used) = self.map.get_mut(&id)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, id);
        Some(media.clone())
    }

    fn insert(&mut self, media: Media) {
        let len = media.bytes.len();
        if len > self.cap {
            return;
        }
        if let Some((old, used)) = self.map.remove(&media.id) {
            self.order.remove(&used);
            self.bytes -= old.bytes.len();
        }
        while self.bytes + len > self.cap {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((m, _)) = self.map.remove(&old) {
                self.bytes -= m.bytes.len();
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, media.id);
        self.map.insert(media.id, (media, self.tick));
        self.bytes += len;
    }
}

#[cfg(test)]
mod tests;
