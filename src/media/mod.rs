//! Media for MMS: what a tenant uploads, how it is stored, checked, made to
//! fit a carrier's size limit, and shown on the landing page of an SMS
//! fallback link.
//!
//! - [`sniff`](mod@sniff): the [`MediaType`] of bytes from their magic
//!   numbers;
//! - [`store`]: [`MediaStore`], content-addressed (sha256) on disk, once per
//!   content, owned per tenant, with an in-memory cache and chunked uploads,
//!   per-tenant quotas and limits on uploads in progress;
//! - [`fit`](mod@fit): [`Fitter`], re-encoding and scaling images to a
//!   byte limit, cached per (media, limit);
//! - [`landing`]: [`LandingPage`], what a fallback's landing page shows
//!   (display name, subject, text, media), recorded once per content;
//! - [`link`]: [`LinkSigner`], HMAC-signed landing-page paths and codes, and
//!   the key file behind them;
//! - [`page`]: [`serve`], the hyper handler for those paths (HTML page and
//!   raw bytes).
//!
//! Nothing here knows messages, carriers or MM7: the gateway passes a media
//! id and a limit in and takes bytes and a type out. File I/O and image work
//! are blocking; async callers run them on `spawn_blocking` ([`serve`] does so
//! itself for cache misses).

pub mod fit;
pub mod landing;
pub mod link;
pub mod page;
pub mod sniff;
pub mod store;

use std::io;
use std::sync::Arc;

pub use fit::{Fitted, Fitter, fit};
pub use landing::LandingPage;
pub use link::{LinkSigner, load_or_create_secret};
pub use page::serve;
pub use sniff::{MediaType, sniff};
pub use store::{
    Media, MediaId, MediaInfo, MediaStore, Quota, StoreConfig, StoreStats, UploadId, Usage,
};

/// Why a media operation failed. Each variant says which calls return it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The declared content type is not one sluice accepts
    /// ([`MediaStore::put`], [`MediaStore::begin_upload`]).
    #[error("unsupported content type {content_type:?}")]
    Unsupported {
        /// The declared value (cut to 64 characters).
        content_type: String,
    },
    /// The bytes are not of the declared type ([`MediaStore::put`],
    /// [`MediaStore::finish`]); `actual` is `None` when they are of no
    /// supported type at all.
    #[error("declared {declared} but the content is {}", actual.map_or("of no supported type", |t| t.content_type()))]
    TypeMismatch {
        /// What the client declared.
        declared: MediaType,
        /// What the bytes are.
        actual: Option<MediaType>,
    },
    /// The content is bigger than the store's maximum ([`MediaStore::put`],
    /// [`MediaStore::begin_upload`]).
    #[error("media of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The size offered.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// Zero bytes ([`MediaStore::put`], [`MediaStore::begin_upload`]).
    #[error("empty media")]
    Empty,
    /// The id is not 64 hexadecimal characters; nothing was looked up
    /// ([`MediaStore::get`], [`MediaStore::get_unscoped`]).
    #[error("malformed media id")]
    InvalidId,
    /// No such media for this tenant: missing, or uploaded by another tenant
    /// (deliberately the same error) ([`MediaStore::get`],
    /// [`MediaStore::get_unscoped`]).
    #[error("media not found")]
    NotFound,
    /// The stored file does not hash to its id or is no longer of a
    /// supported type ([`MediaStore::get`]).
    #[error("stored media {id} is corrupt")]
    Corrupt {
        /// The media id.
        id: MediaId,
    },
    /// No upload with that id for this tenant, or it expired
    /// ([`MediaStore::put_chunk`], [`MediaStore::finish`]).
    #[error("unknown or expired upload")]
    UnknownUpload,
    /// A chunk does not start where the upload stands
    /// ([`MediaStore::put_chunk`]).
    #[error("chunk at offset {offset}, expected offset {expected}")]
    BadOffset {
        /// Bytes received so far: where the next chunk must start.
        expected: u64,
        /// Where the chunk claimed to start.
        offset: u64,
    },
    /// A chunk ends past the declared total ([`MediaStore::put_chunk`]).
    #[error("chunk ends at {end}, past the declared total of {total} bytes")]
    UploadOverflow {
        /// Where the chunk would end.
        end: u64,
        /// The total declared at [`MediaStore::begin_upload`].
        total: u64,
    },
    /// [`MediaStore::finish`] before every byte arrived.
    #[error("upload incomplete: {received} of {total} bytes")]
    Incomplete {
        /// Bytes received.
        received: u64,
        /// The declared total.
        total: u64,
    },
    /// Too many uploads in progress, for this tenant or in total, or too
    /// many bytes declared by uploads in progress ([`MediaStore::put`],
    /// [`MediaStore::begin_upload`]); nothing was stored: retry later.
    #[error("{0}")]
    TooManyUploads(UploadLimit),
    /// Storing this media would take the tenant past its quota
    /// ([`MediaStore::put`], [`MediaStore::begin_upload`],
    /// [`MediaStore::finish`]); nothing was stored, and what is stored is
    /// untouched.
    #[error("{0}")]
    QuotaExceeded(QuotaExceeded),
    /// The media is over the limit and cannot be made to fit: a video, text
    /// or SMIL, an image that does not decode, or a limit too small for any
    /// image ([`fit()`], [`Fitter::fit`]).
    #[error("{media_type} of {len} bytes cannot fit in {max} bytes: {reason}")]
    CannotFit {
        /// The type of the media.
        media_type: MediaType,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
        /// Why.
        reason: String,
    },
    /// A file-system error ([`MediaStore`]).
    #[error("media store i/o: {0}")]
    Io(Arc<io::Error>),
}

/// Which limit on uploads in progress was reached
/// ([`MediaError::TooManyUploads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadLimit {
    /// The tenant's uploads in progress.
    #[error("too many uploads in progress for this tenant (limit {0}); retry when one is answered")]
    Tenant(usize),
    /// Uploads in progress over all tenants.
    #[error("too many uploads in progress on this gateway (limit {0}); retry shortly")]
    All(usize),
    /// Bytes declared by chunked uploads in progress.
    #[error("chunked uploads in progress would exceed {0} bytes; retry shortly")]
    Bytes(u64),
}

/// Which part of a tenant's quota would be exceeded
/// ([`MediaError::QuotaExceeded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaExceeded {
    /// Bytes stored.
    #[error("media quota exceeded: {used} of {limit} bytes used, this media needs {len}")]
    Bytes {
        /// Bytes the tenant has stored (and being stored).
        used: u64,
        /// Its quota.
        limit: u64,
        /// The size of the refused media.
        len: u64,
    },
    /// Number of media stored.
    #[error("media quota exceeded: {used} of {limit} media stored")]
    Count {
        /// Media the tenant has stored (and being stored).
        used: u64,
        /// Its quota.
        limit: u64,
    },
}

impl MediaError {
    /// A short name of the error's kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            MediaError::Unsupported { .. } => "unsupported",
            MediaError::TypeMismatch { .. } => "type_mismatch",
            MediaError::TooLarge { .. } => "too_large",
            MediaError::Empty => "empty",
            MediaError::InvalidId => "invalid_id",
            MediaError::NotFound => "not_found",
            MediaError::Corrupt { .. } => "corrupt",
            MediaError::UnknownUpload => "unknown_upload",
            MediaError::BadOffset { .. } => "bad_offset",
            MediaError::UploadOverflow { .. } => "upload_overflow",
            MediaError::Incomplete { .. } => "incomplete",
            MediaError::TooManyUploads(_) => "too_many_uploads",
            MediaError::QuotaExceeded(_) => "quota",
            MediaError::CannotFit { .. } => "cannot_fit",
            MediaError::Io(_) => "io",
        }
    }
}

impl From<io::Error> for MediaError {
    fn from(e: io::Error) -> Self {
        MediaError::Io(Arc::new(e))
    }
}

#[cfg(test)]
pub(crate) mod testutil;
