//! Domain types shared by every module: message ids, phone numbers, senders,
//! the rendered message, delivery states and events.
//!
//! Nothing here knows about wire formats or storage; protocol modules convert
//! to and from these types at their edges.

use std::fmt;
use std::sync::Arc;

pub mod calendar;
pub mod hashing;
pub mod logsafe;
pub use logsafe::LogSafe;
pub mod numbering;
pub mod quiet;
pub mod reclaim;
pub mod secret;
pub mod submit;
pub use secret::Secret;

/// Most characters a message text may have (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 1600;

// === impl MessageId ===

/// Gateway-assigned message id: unique per node and journal, monotonic.
///
/// Shown to users as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({:016x})", self.0)
    }
}

impl std::str::FromStr for MessageId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(MessageId)
    }
}

// === impl Msisdn ===

/// An E.164 phone number parsed once into an integer (at most 15 digits, so it
/// always fits a `u64`; E.164 numbers never start with 0, so no digits are lost).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(u64);

/// Why a string is not an E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsisdnError {
    /// The string is empty.
    #[error("number is empty")]
    Empty,
    /// A character other than a digit (after an optional leading `+`).
    #[error("number contains a non-digit character")]
    NotDigits,
    /// E.164 country codes never start with 0.
    #[error("number starts with 0 (E.164 country codes start with 1-9)")]
    LeadingZero,
    /// Fewer than 7 or more than 15 digits.
    #[error("number has {0} digits; E.164 allows 7 to 15")]
    Length(usize),
}

impl Msisdn {
    /// Smallest digit count accepted.
    pub const MIN_DIGITS: usize = 7;
    /// Largest digit count E.164 allows.
    pub const MAX_DIGITS: usize = 15;

    /// Parses a recipient in strict E.164 (`+`, digits only, a calling code
    /// in use and a length its plan allows): what admission requires. Cheap
    /// enough for every message ([`numbering`] explains the fast path).
    ///
    /// # Errors
    /// [`numbering::NumberError`] says which rule the input breaks.
    pub fn parse_e164(s: &str) -> Result<Self, numbering::NumberError> {
        numbering::parse_e164(s)
    }

    /// Parses `+14155550100` or `14155550100` leniently (digits, 7 to 15 of
    /// them, no plan check): for numbers that come from carriers (MO source
    /// addresses) and operators (opt-out lists), where dropping a STOP
    /// because of an odd number would be worse than keeping it. Recipients
    /// of messages go through [`Msisdn::parse_e164`].
    ///
    /// # Errors
    /// [`MsisdnError`] says what is wrong with the input.
    pub fn parse(s: &str) -> Result<Self, MsisdnError> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if digits.is_empty() {
            return Err(MsisdnError::Empty);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MsisdnError::NotDigits);
        }
        if digits.starts_with('0') {
            return Err(MsisdnError::LeadingZero);
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            return Err(MsisdnError::Length(digits.len()));
        }
        let mut v: u64 = 0;
        for b in digits.bytes() {
            v = v * 10 + u64::from(b - b'0');
        }
        Ok(Msisdn(v))
    }

    /// Builds from the integer form (as stored in the journal).
    ///
    /// # Errors
    /// When the integer has fewer than 7 or more than 15 digits.
    pub fn from_u64(v: u64) -> Result<Self, MsisdnError> {
        let n = digit_count(v);
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&n) {
            return Err(MsisdnError::Length(n));
        }
        Ok(Msisdn(v))
    }

    /// The integer form.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// True for North American Numbering Plan numbers (+1).
    pub fn is_nanp(self) -> bool {
        digit_count(self.0) == 11 && self.0 / 10_000_000_000 == 1
    }

    /// Digits without the `+`, as SMPP addresses carry them.
    pub fn digits(self) -> String {
        self.0.to_string()
    }

    /// The E.164 text (`+` and digits, as `Display` writes it) on the
    /// stack: routing matches prefixes on it once or twice per message.
    pub fn e164(self) -> E164Text {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(self.0).as_bytes();
        let mut text = E164Text {
            bytes: [0; 21],
            len: 1 + digits.len(),
        };
        text.bytes[0] = b'+';
        text.bytes[1..text.len].copy_from_slice(digits);
        text
    }
}

/// [`Msisdn::e164`]: `+` and up to 20 digits.
#[derive(Clone, Copy, Debug)]
pub struct E164Text {
    bytes: [u8; 21],
    len: usize,
}

impl E164Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

fn digit_count(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn(+{})", self.0)
    }
}

// === impl Sender ===

/// Who a message comes from.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Sender {
    /// A short code: 3 to 8 digits.
    ShortCode(Arc<str>),
    /// A long code or toll-free number in E.164.
    LongCode(Msisdn),
    /// An alphanumeric sender id: 1 to 11 characters of `[A-Za-z0-9 ]`, at least one letter.
    Alphanumeric(Arc<str>),
}

/// Why a sender string is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenderError {
    /// Empty sender.
    #[error("sender is empty")]
    Empty,
    /// Neither a short code, an E.164 number nor an alphanumeric id.
    #[error(
        "sender {0:?} is neither a short code (3-8 digits), an E.164 number nor an alphanumeric id (1-11 letters/digits)"
    )]
    Invalid(String),
}

impl Sender {
    /// Parses a sender: `+` or 9+ digits → long code; 3–8 digits → short code;
    /// otherwise an alphanumeric id.
    ///
    /// # Errors
    /// [`SenderError`] when the string fits none of the forms.
    pub fn parse(s: &str) -> Result<Self, SenderError> {
        if s.is_empty() {
            return Err(SenderError::Empty);
        }
        let all_digits = s.bytes().all(|b| b.is_ascii_digit());
        if s.starts_with('+') || (all_digits && s.len() > 8) {
            return Msisdn::parse(s)
                .map(Sender::LongCode)
                .map_err(|_| SenderError::Invalid(s.to_owned()));
        }
        if all_digits {
            if (3..=8).contains(&s.len()) {
                return Ok(Sender::ShortCode(s.into()));
            }
            return Err(SenderError::Invalid(s.to_owned()));
        }
        let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ');
        if ok_chars && s.len() <= 11 && s.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Ok(Sender::Alphanumeric(s.into()));
        }
        Err(SenderError::Invalid(s.to_owned()))
    }

    /// The address as it goes on the wire (digits without `+` for
    /// numbers), borrowed or on the stack: opt-out checks look a sender's
    /// program up by it twice per message.
    pub fn address(&self) -> SenderAddress<'_> {
        match self {
            Sender::ShortCode(s) | Sender::Alphanumeric(s) => SenderAddress::Text(s),
            Sender::LongCode(m) => SenderAddress::Number(m.e164()),
        }
    }
}

/// [`Sender::address`]: a `str` through `Deref`.
#[derive(Debug)]
pub enum SenderAddress<'a> {
    /// A short code or an alphanumeric id, as given.
    Text(&'a str),
    /// A number's E.164 text (its digits are the address).
    Number(E164Text),
}

impl std::ops::Deref for SenderAddress<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            SenderAddress::Text(s) => s,
            SenderAddress::Number(n) => n.as_str().trim_start_matches('+'),
        }
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::ShortCode(s) | Sender::Alphanumeric(s) => f.write_str(s),
            Sender::LongCode(m) => m.fmt(f),
        }
    }
}

// === message attributes ===

/// Priority class: transactional traffic always goes ahead of marketing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub enum Priority {
    /// One-to-one, time-sensitive (password resets, order updates).
    Transactional,
    /// Campaigns.
    #[default]
    Marketing,
}

impl Priority {
    /// Lowercase name as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Transactional => "transactional",
            Priority::Marketing => "marketing",
        }
    }
}

/// Which channel the upstream prefers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ChannelPref {
    /// MMS when there is media and the route allows, otherwise SMS.
    #[default]
    Auto,
    /// SMS only.
    Sms,
    /// MMS (falls back per the fallback policy).
    Mms,
}

/// What to do when MMS cannot go.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum FallbackPolicy {
    /// Send the text plus a link to a landing page with the media.
    #[default]
    SmsWithLink,
    /// Send the text only.
    SmsTextOnly,
    /// Fail the message.
    None,
}

/// The channel a message finally went out on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Channel {
    /// SMS over SMPP.
    Sms,
    /// MMS over MM7.
    Mms,
}

/// A rendered message as accepted from upstream, after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Gateway id.
    pub id: MessageId,
    /// Owning tenant.
    pub tenant: Arc<str>,
    /// Upstream idempotency key (unique per tenant within the dedupe window).
    pub client_ref: Box<str>,
    /// Recipient.
    pub to: Msisdn,
    /// Sender.
    pub from: Sender,
    /// Text, at most [`MAX_TEXT_CHARS`] characters.
    pub text: Box<str>,
    /// Media content ids (sha256 hex), used by the MMS path.
    pub media: Box<[Box<str>]>,
    /// Channel preference.
    pub channel: ChannelPref,
    /// Fallback policy when MMS cannot go.
    pub fallback: FallbackPolicy,
    /// Campaign the message belongs to (empty for none).
    pub campaign_id: Box<str>,
    /// Wall-clock time (unix ms) after which the message must not be sent.
    pub expires_at_ms: u64,
    /// Priority class.
    pub priority: Priority,
    /// Free-form tags, echoed in events.
    pub tags: Box<[Box<str>]>,
    /// Wall-clock time (unix ms) the gateway accepted the message.
    pub accepted_at_ms: u64,
    /// A compliance auto-reply (STOP/START/HELP confirmation): goes to a
    /// number that may be opted out, once, and is never marketing.
    pub auto_reply: bool,
    /// The MMS fields this message asks for, its subject among them
    /// (boxed: most messages have none, and a queued message's size counts).
    pub mms: Option<Box<MmsFields>>,
}

impl Message {
    /// The MMS subject, if any.
    pub fn subject(&self) -> Option<&str> {
        self.mms.as_ref()?.subject.as_deref()
    }

    /// The MMS fields, made (empty) when the message has none. Leave them
    /// with a field set: an empty box is not kept by the journal (a
    /// replayed message has none), so it would compare unequal to its own
    /// replay.
    pub fn mms_mut(&mut self) -> &mut MmsFields {
        self.mms.get_or_insert_with(Box::default)
    }
}

/// A list of strings as a [`Message`] keeps it: boxed at exact length, no
/// spare capacity (a decoder's `Vec` grows by doubling; a message may wait
/// queued for hours).
pub fn boxed_strs(v: Vec<String>) -> Box<[Box<str>]> {
    v.into_iter().map(String::into_boxed_str).collect()
}

// === delivery states and events ===

/// Per-message MM7 SubmitReq fields: the `Subject`, and service fields
/// that override the MMSC's `[mmsc.service]`. `ChargedParty`, `ReplyCharging` and `DeliveryReport` are the MMSC's
/// only: who pays is not a message's to choose, and sluice always asks for
/// delivery reports (a message's one terminal event comes from its report).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmsFields {
    /// `Subject`.
    pub subject: Option<Box<str>>,
    /// `ServiceCode` (one of the tenant's `mms_service_codes`).
    pub service_code: Option<String>,
    /// `LinkedID` (e.g. the MO this message answers).
    pub linked_id: Option<String>,
    /// `MessageClass`.
    pub message_class: Option<MmsMessageClass>,
    /// `Priority` at the MMSC (not the dispatch [`Priority`]).
    pub priority: Option<MmsPriority>,
    /// `ReadReply`: ask the handset for a read report.
    pub read_reply: Option<bool>,
    /// `DistributionIndicator`: whether the recipient may forward it.
    pub distribution_indicator: Option<bool>,
    /// `EarliestDeliveryTime`, Unix ms (0: none): the MMSC holds the
    /// message until then.
    pub earliest_delivery_ms: u64,
}

impl MmsFields {
    /// Whether no field is set (then a message carries none).
    pub fn is_empty(&self) -> bool {
        *self == MmsFields::default()
    }
}

/// `MessageClass` of an MMS.
#[derive(Clone, Copy, Debug, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum MmsMessageClass {
    Personal,
    Informational,
    Advertisement,
    Auto,
}

/// `Priority` of an MMS at the MMSC.
#[derive(Clone, Copy, Debug, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum MmsPriority {
    Normal,
    High,
    Low,
}

/// The delivery state machine of a message.
///
/// `Queued → Dispatched → Submitted → {Delivered | Failed | Expired | Unknown}`;
/// `Rejected`, `Suppressed` and `Expired` can also end a message before dispatch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DeliveryState {
    /// Durable and waiting for the scheduler.
    Queued,
    /// Recorded as handed to a carrier; no answer yet.
    Dispatched,
    /// The carrier accepted it (submit_sm_resp OK); waiting for a receipt.
    Submitted,
    /// Terminal: the handset got it.
    Delivered,
    /// Terminal: the carrier reported it undeliverable.
    Failed,
    /// Terminal: validity ended before delivery (or no receipt came in time).
    Expired,
    /// Terminal: the carrier refused it at submission.
    Rejected,
    /// Terminal: the outcome cannot be known (e.g. crash between dispatch and answer).
    Unknown,
    /// Terminal: the recipient opted out while the message was queued.
    Suppressed,
}

impl DeliveryState {
    /// True for states that end a message.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            DeliveryState::Queued | DeliveryState::Dispatched | DeliveryState::Submitted
        )
    }

    /// Lowercase name as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Dispatched => "dispatched",
            DeliveryState::Submitted => "submitted",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Expired => "expired",
            DeliveryState::Rejected => "rejected",
            DeliveryState::Unknown => "unknown",
            DeliveryState::Suppressed => "suppressed",
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Current wall-clock time in unix milliseconds, advanced by tokio's clock.
///
/// The wall clock is read once; after that time moves with
/// `tokio::time::Instant`, so tests that pause tokio's clock see validity,
/// expiry and quiet hours move with it instead of with real time.
pub fn now_ms() -> u64 {
    use std::sync::OnceLock;
    static BASE: OnceLock<(u64, tokio::time::Instant)> = OnceLock::new();
    let (wall, at) = BASE.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        (wall, tokio::time::Instant::now())
    });
    wall + at.elapsed().as_millis() as u64
}

/// A plain SMS for unit tests: tenant `t`, `client_ref` `r<id>`, to
/// +14155550100 from 12345, marketing, no media.
#[cfg(test)]
pub(crate) fn test_message(id: u64, text: &str, expires_at_ms: u64) -> Arc<Message> {
    Arc::new(Message {
        id: MessageId(id),
        tenant: "t".into(),
        client_ref: format!("r{id}").into(),
        to: Msisdn::parse("+14155550100").expect("valid literal"),
        from: Sender::parse("12345").expect("valid literal"),
        text: text.into(),
        media: Box::default(),
        channel: ChannelPref::Auto,
        fallback: FallbackPolicy::SmsTextOnly,
        campaign_id: Box::default(),
        expires_at_ms,
        priority: Priority::Marketing,
        tags: Box::default(),
        accepted_at_ms: 0,
        auto_reply: false,
        mms: None,
    })
}

#[cfg(test)]
mod tests;
