//! What every door hands admission and gets back, whatever its wire format:
//! a [`Submission`] (one message as a client sent it, not yet checked), its
//! [`SubmitResult`] (accepted with an id, a duplicate of an earlier one, or
//! a [`Rejection`] with its [`RejectReason`]), and media uploads
//! ([`MediaChunk`], [`MediaStored`]). Doors convert at their edge
//! (`ingest::convert` for the framed protocol).

use bytes::Bytes;

use super::{ChannelPref, FallbackPolicy, MessageId, MmsMessageClass, MmsPriority, Priority};

/// One message as a client submitted it (unchecked: numbers and sizes are
/// admission's to judge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submission {
    /// The client's idempotency key.
    pub client_ref: String,
    /// The recipient as written (E.164, or national with a default country).
    pub to: String,
    /// The sender as written.
    pub from: String,
    /// The text.
    pub text: String,
    /// Content ids of uploaded media.
    pub media: Vec<String>,
    /// MMS subject (empty: none).
    pub subject: String,
    /// The channel asked for.
    pub channel: ChannelPref,
    /// What happens when it cannot go as MMS.
    pub fallback: FallbackPolicy,
    /// Campaign label.
    pub campaign_id: String,
    /// Validity asked for, seconds (0: the tenant's default).
    pub validity_seconds: u32,
    /// Transactional or marketing.
    pub priority: Priority,
    /// Free labels.
    pub tags: Vec<String>,
    /// MMS `ServiceCode` asked for (empty: the MMSC's).
    pub mms_service_code: String,
    /// MMS `LinkedID` asked for (empty: none).
    pub mms_linked_id: String,
    /// MMS `MessageClass` asked for (none: the MMSC's).
    pub mms_message_class: Option<MmsMessageClass>,
    /// MMS `Priority` asked for (none: the MMSC's).
    pub mms_priority: Option<MmsPriority>,
    /// MMS `ReadReply` asked for (none: the MMSC's).
    pub mms_read_reply: Option<bool>,
    /// MMS `DistributionIndicator` asked for (none: the MMSC's).
    pub mms_distribution_indicator: Option<bool>,
    /// MMS `EarliestDeliveryTime` asked for, Unix ms (0: none).
    pub mms_earliest_delivery_ms: u64,
    /// Shorten and track the text's links (none: the tenant's
    /// `track_links`).
    pub track_links: Option<bool>,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The recipient is not a valid number.
    InvalidNumber,
    /// The sender is not a valid address.
    InvalidSender,
    /// The text is longer than allowed.
    TextTooLong,
    /// Neither text nor media.
    EmptyMessage,
    /// A field is missing, too long or out of range.
    InvalidField,
    /// The recipient opted out.
    Suppressed,
    /// A media id the tenant did not upload.
    UnknownMedia,
    /// No carrier routes the recipient.
    NoRoute,
    /// The same `client_ref` twice in one batch.
    DuplicateInBatch,
    /// The gateway could not make it durable; try again.
    Unavailable,
    /// A sender the tenant does not own.
    SenderNotAllowed,
}

impl RejectReason {
    /// The reason's name as the wire and the metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidNumber => "INVALID_NUMBER",
            RejectReason::InvalidSender => "INVALID_SENDER",
            RejectReason::TextTooLong => "TEXT_TOO_LONG",
            RejectReason::EmptyMessage => "EMPTY_MESSAGE",
            RejectReason::InvalidField => "INVALID_FIELD",
            RejectReason::Suppressed => "SUPPRESSED",
            RejectReason::UnknownMedia => "UNKNOWN_MEDIA",
            RejectReason::NoRoute => "NO_ROUTE",
            RejectReason::DuplicateInBatch => "DUPLICATE_IN_BATCH",
            RejectReason::Unavailable => "UNAVAILABLE",
            RejectReason::SenderNotAllowed => "SENDER_NOT_ALLOWED",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection: reason code and readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Rejection {}

/// What became of one submitted message, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitResult {
    /// The submission's `client_ref`.
    pub client_ref: String,
    /// Accepted (durable) with this id, or why not.
    pub outcome: Result<Accepted, Rejection>,
}

/// An accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its id.
    pub id: MessageId,
    /// The `client_ref` was seen before: `id` is the original's, and
    /// nothing is sent again.
    pub duplicate: bool,
}

/// A media upload: a whole file, or one chunk of a chunked upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaChunk {
    /// Names a chunked upload (empty: the whole file at once).
    pub upload_id: String,
    /// The type the client declares.
    pub content_type: String,
    /// Size of the whole file (chunked uploads).
    pub total_size: u64,
    /// Where this chunk starts.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
    /// The last chunk.
    pub last: bool,
}

/// Stored media (or, with an empty id, a chunk taken).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStored {
    /// Content id to put in a submission's media (empty for a non-final
    /// chunk).
    pub media_id: String,
    /// Bytes stored.
    pub size: u64,
    /// The type found in the bytes.
    pub content_type: String,
}
