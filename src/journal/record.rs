//! Journal record types and their on-disk framing.
//!
//! A record on disk is `[len: u32 LE][crc32: u32 LE][kind: u8][payload]`,
//! where `len` counts `kind` and `payload` and the CRC covers the same bytes.
//! Payloads are protobuf (prost derive, no codegen): compact, cheap to decode,
//! and able to grow fields without breaking old journals. Every record is a
//! batch, so one group commit carries many messages with one header each.

use bytes::{BufMut, Bytes, BytesMut};

use crate::model::{
    ChannelPref, FallbackPolicy, Message, MessageId, MmsFields, MmsMessageClass, MmsPriority,
    Msisdn, MsisdnError, Priority, Sender,
};

/// Why a stored record cannot be read back (corruption, or a journal from
/// an incompatible version).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The kind byte names no record this version knows.
    #[error("unknown record kind")]
    UnknownKind,
    /// The payload is not the protobuf its kind says.
    #[error("undecodable record: {0}")]
    Undecodable(#[from] prost::DecodeError),
    /// A `Written` record whose id, part and total columns differ in length.
    #[error("written record with uneven columns")]
    UnevenColumns,
    /// A stored message's number is out of range.
    #[error("message {id:x}: {source}")]
    Number {
        /// The message.
        id: u64,
        /// What is wrong with it.
        #[source]
        source: MsisdnError,
    },
    /// A length-delimited field runs past the end of its message.
    #[error("a field runs past the end of its message")]
    Truncated,
    /// A stored message's string field is not UTF-8.
    #[error("message {id:x}: a text field is not UTF-8")]
    NotText {
        /// The message.
        id: u64,
    },
    /// A stored message's sender kind is unknown.
    #[error("message {id:x}: unknown sender kind {kind}")]
    SenderKind {
        /// The message.
        id: u64,
        /// The stored kind.
        kind: u32,
    },
}

/// Bytes before the payload: length, CRC and kind.
pub const HEADER_LEN: usize = 9;

/// Largest record accepted on replay (guards against a corrupt length).
pub const MAX_RECORD_LEN: usize = 256 << 20;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// First record of every segment.
    SegmentHeader = 1,
    /// Messages accepted from upstream.
    Accept = 2,
    /// Messages about to be written to a carrier (journals written before
    /// [`Kind::Written`] existed; replayed as "may have been written").
    Dispatch = 3,
    /// Dispatched messages that were never written (back to the queue).
    Undispatch = 4,
    /// Carrier ids of submitted parts.
    Submitted = 5,
    /// Events; an event naming a message also ends that message.
    Event = 7,
    /// Events the upstream acknowledged.
    EventAck = 8,
    /// Live messages rewritten by compaction.
    Carry = 9,
    /// Dedupe keys rewritten by compaction.
    Remember = 10,
    /// One opt-out or opt-in, with its proof.
    OptChange = 11,
    /// Numbers added to a suppression scope in bulk (import or snapshot).
    OptBulk = 12,
    /// An import's bulk records take effect.
    OptCommit = 13,
    /// Parts about to be written to a carrier's socket (or an MMSC request
    /// about to be sent): durable before the first byte leaves.
    Written = 14,
}

impl Kind {
    /// Parses the kind byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::SegmentHeader,
            2 => Kind::Accept,
            3 => Kind::Dispatch,
            4 => Kind::Undispatch,
            5 => Kind::Submitted,
            7 => Kind::Event,
            8 => Kind::EventAck,
            9 => Kind::Carry,
            10 => Kind::Remember,
            11 => Kind::OptChange,
            12 => Kind::OptBulk,
            13 => Kind::OptCommit,
            14 => Kind::Written,
            _ => return None,
        })
    }
}

/// Appends one framed record to `dst`.
pub fn frame(dst: &mut BytesMut, kind: Kind, payload: &impl prost::Message) {
    let len = payload.encoded_len();
    dst.reserve(HEADER_LEN + len);
    let start = dst.len();
    dst.put_u32_le((len + 1) as u32);
    dst.put_u32_le(0); // CRC, filled below
    dst.put_u8(kind as u8);
    payload
        .encode(dst)
        .expect("reserved capacity is sufficient");
    let crc = crc32fast::hash(&dst[start + 8..]);
    dst[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one framed record whose payload `write` produces in place.
pub fn frame_with(dst: &mut BytesMut, kind: Kind, write: impl FnOnce(&mut BytesMut)) {
    let start = dst.len();
    dst.put_u32_le(0); // length, filled below
    dst.put_u32_le(0); // CRC, filled below
    dst.put_u8(kind as u8);
    write(dst);
    let len = dst.len() - start - 8;
    dst[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32fast::hash(&dst[start + 8..]);
    dst[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes an `Accept` record's payload straight from domain messages, in
/// exactly [`StoredMessage`]'s wire format, without cloning a field (the hot
/// path: one record per accepted batch).
pub fn encode_accept<'a>(dst: &mut BytesMut, messages: impl IntoIterator<Item = &'a Message>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut body = BytesMut::with_capacity(512);
    for m in messages {
        body.clear();
        encode_stored(m, &mut body);
        encode_key(1, WireType::LengthDelimited, dst);
        encode_varint(body.len() as u64, dst);
        dst.put_slice(&body);
    }
}

/// Encodes an `Event` record's payload straight from pending events, in
/// exactly [`Events`]' wire format, without building an [`EventEntry`] per
/// event (the hot path: every final is one).
pub fn encode_events<'a>(
    dst: &mut BytesMut,
    events: impl IntoIterator<Item = &'a super::PendingEvent>,
) {
    use crate::wire::proto::{bytes_len, put_bytes, put_message_head, put_uint, uint_len};
    for e in events {
        let len = uint_len(1, e.event_id)
            + uint_len(2, e.message_id.0)
            + bytes_len(3, e.tenant.len())
            + bytes_len(4, e.payload.len())
            + bytes_len(5, e.sink.len())
            + uint_len(6, e.created_ms);
        dst.reserve(len + 12);
        put_message_head(1, len, dst);
        put_uint(1, e.event_id, dst);
        put_uint(2, e.message_id.0, dst);
        put_bytes(3, e.tenant.as_bytes(), dst);
        put_bytes(4, &e.payload, dst);
        put_bytes(5, e.sink.as_bytes(), dst);
        put_uint(6, e.created_ms, dst);
    }
}

/// Appends one message in [`StoredMessage`]'s wire format (its stored form).
pub fn encode_stored(m: &Message, b: &mut BytesMut) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    fn string(tag: u32, s: &str, b: &mut BytesMut) {
        encode_key(tag, WireType::LengthDelimited, b);
        encode_varint(s.len() as u64, b);
        b.put_slice(s.as_bytes());
    }
    use crate::wire::proto::put_uint as uint;
    {
        uint(1, m.id.0, b);
        string(2, &m.tenant, b);
        string(3, &m.client_ref, b);
        uint(4, m.to.as_u64(), b);
        match &m.from {
            Sender::ShortCode(s) => string(6, s, b),
            Sender::LongCode(n) => {
                let mut digits = itoa::Buffer::new();
                let d = digits.format(n.as_u64());
                encode_key(6, WireType::LengthDelimited, b);
                encode_varint(d.len() as u64 + 1, b);
                b.put_u8(b'+');
                b.put_slice(d.as_bytes());
                uint(5, 1, b);
            }
            Sender::Alphanumeric(s) => {
                uint(5, 2, b);
                string(6, s, b);
            }
        }
        string(7, &m.text, b);
        for id in &m.media {
            string(8, id, b);
        }
        if let Some(subject) = m.subject() {
            string(9, subject, b);
        }
        uint(
            10,
            match m.channel {
                ChannelPref::Auto => 0,
                ChannelPref::Sms => 1,
                ChannelPref::Mms => 2,
            },
            b,
        );
        uint(
            11,
            match m.fallback {
                FallbackPolicy::SmsWithLink => 0,
                FallbackPolicy::SmsTextOnly => 1,
                FallbackPolicy::None => 2,
            },
            b,
        );
        string(12, &m.campaign_id, b);
        uint(13, m.expires_at_ms, b);
        uint(14, u64::from(m.priority == Priority::Transactional), b);
        for t in &m.tags {
            string(15, t, b);
        }
        uint(16, m.accepted_at_ms, b);
        uint(17, u64::from(m.auto_reply), b);
        if let Some(f) = &m.mms {
            if let Some(code) = &f.service_code {
                string(18, code, b);
            }
            if let Some(id) = &f.linked_id {
                string(19, id, b);
            }
            let [class, priority, read_reply, distribution] = mms_codes(f);
            uint(20, u64::from(class), b);
            uint(21, u64::from(priority), b);
            uint(22, u64::from(read_reply), b);
            uint(23, u64::from(distribution), b);
            uint(24, f.earliest_delivery_ms, b);
        }
    }
}

/// First record of a segment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentHeader {
    /// Segment number.
    #[prost(uint64, tag = "1")]
    pub segment: u64,
    /// Message ids below this were allocated before the segment began.
    #[prost(uint64, tag = "2")]
    pub next_message_id: u64,
    /// Event ids below this were allocated before the segment began.
    #[prost(uint64, tag = "3")]
    pub next_event_id: u64,
}

/// A message as stored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredMessage {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub tenant: String,
    #[prost(string, tag = "3")]
    pub client_ref: String,
    #[prost(uint64, tag = "4")]
    pub to: u64,
    /// 0 short code, 1 long code, 2 alphanumeric.
    #[prost(uint32, tag = "5")]
    pub from_kind: u32,
    #[prost(string, tag = "6")]
    pub from: String,
    #[prost(string, tag = "7")]
    pub text: String,
    #[prost(string, repeated, tag = "8")]
    pub media: Vec<String>,
    #[prost(string, optional, tag = "9")]
    pub subject: Option<String>,
    #[prost(uint32, tag = "10")]
    pub channel: u32,
    #[prost(uint32, tag = "11")]
    pub fallback: u32,
    #[prost(string, tag = "12")]
    pub campaign_id: String,
    #[prost(uint64, tag = "13")]
    pub expires_at_ms: u64,
    #[prost(uint32, tag = "14")]
    pub priority: u32,
    #[prost(string, repeated, tag = "15")]
    pub tags: Vec<String>,
    #[prost(uint64, tag = "16")]
    pub accepted_at_ms: u64,
    #[prost(bool, tag = "17")]
    pub auto_reply: bool,
    #[prost(string, optional, tag = "18")]
    pub mms_service_code: Option<String>,
    #[prost(string, optional, tag = "19")]
    pub mms_linked_id: Option<String>,
    /// MMS `MessageClass`: 0 none, 1 personal, 2 informational,
    /// 3 advertisement, 4 auto.
    #[prost(uint32, tag = "20")]
    pub mms_message_class: u32,
    /// MMS `Priority`: 0 none, 1 low, 2 normal, 3 high.
    #[prost(uint32, tag = "21")]
    pub mms_priority: u32,
    /// MMS `ReadReply`: 0 none, 1 false, 2 true.
    #[prost(uint32, tag = "22")]
    pub mms_read_reply: u32,
    /// MMS `DistributionIndicator`: 0 none, 1 false, 2 true.
    #[prost(uint32, tag = "23")]
    pub mms_distribution_indicator: u32,
    /// MMS `EarliestDeliveryTime`, Unix ms (0: none).
    #[prost(uint64, tag = "24")]
    pub mms_earliest_delivery_ms: u64,
}

/// The stored codes of `f`'s class, priority, read reply and distribution
/// indicator (see [`StoredMessage`]).
fn mms_codes(f: &MmsFields) -> [u32; 4] {
    let flag = |v: Option<bool>| v.map_or(0, |v| 1 + u32::from(v));
    [
        match f.message_class {
            None => 0,
            Some(MmsMessageClass::Personal) => 1,
            Some(MmsMessageClass::Informational) => 2,
            Some(MmsMessageClass::Advertisement) => 3,
            Some(MmsMessageClass::Auto) => 4,
        },
        match f.priority {
            None => 0,
            Some(MmsPriority::Low) => 1,
            Some(MmsPriority::Normal) => 2,
            Some(MmsPriority::High) => 3,
        },
        flag(f.read_reply),
        flag(f.distribution_indicator),
    ]
}

/// The MMS fields a stored message holds, or `None`; unknown codes read as
/// none (a newer version's value).
fn mms_fields_of(s: &StoredMessage) -> Option<Box<MmsFields>> {
    let flag = |v: u32| match v {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    };
    let f = MmsFields {
        subject: s.subject.as_deref().map(Box::from),
        service_code: s.mms_service_code.clone(),
        linked_id: s.mms_linked_id.clone(),
        message_class: match s.mms_message_class {
            1 => Some(MmsMessageClass::Personal),
            2 => Some(MmsMessageClass::Informational),
            3 => Some(MmsMessageClass::Advertisement),
            4 => Some(MmsMessageClass::Auto),
            _ => None,
        },
        priority: match s.mms_priority {
            1 => Some(MmsPriority::Low),
            2 => Some(MmsPriority::Normal),
            3 => Some(MmsPriority::High),
            _ => None,
        },
        read_reply: flag(s.mms_read_reply),
        distribution_indicator: flag(s.mms_distribution_indicator),
        earliest_delivery_ms: s.mms_earliest_delivery_ms,
    };
    (!f.is_empty()).then(|| Box::new(f))
}

impl StoredMessage {
    /// A stored message with only `f`'s fields set.
    #[cfg(test)]
    fn with_mms(f: Option<&MmsFields>) -> StoredMessage {
        let Some(f) = f else {
            return StoredMessage::default();
        };
        let [class, priority, read_reply, distribution] = mms_codes(f);
        StoredMessage {
            mms_service_code: f.service_code.clone(),
            mms_linked_id: f.linked_id.clone(),
            mms_message_class: class,
            mms_priority: priority,
            mms_read_reply: read_reply,
            mms_distribution_indicator: distribution,
            mms_earliest_delivery_ms: f.earliest_delivery_ms,
            ..StoredMessage::default()
        }
    }

    /// Converts a domain message for storage (what the hand-written
    /// [`encode_stored`] is checked against).
    #[cfg(test)]
    pub fn from_message(m: &Message) -> StoredMessage {
        let (from_kind, from) = match &m.from {
            Sender::ShortCode(s) => (0, s.to_string()),
            Sender::LongCode(n) => (1, n.to_string()),
            Sender::Alphanumeric(s) => (2, s.to_string()),
        };
        StoredMessage {
            id: m.id.0,
            tenant: m.tenant.to_string(),
            client_ref: String::from(&*m.client_ref),
            to: m.to.as_u64(),
            from_kind,
            from,
            text: String::from(&*m.text),
            media: m.media.iter().map(|s| String::from(&**s)).collect(),
            subject: m.subject().map(str::to_owned),
            channel: match m.channel {
                ChannelPref::Auto => 0,
                ChannelPref::Sms => 1,
                ChannelPref::Mms => 2,
            },
            fallback: match m.fallback {
                FallbackPolicy::SmsWithLink => 0,
                FallbackPolicy::SmsTextOnly => 1,
                FallbackPolicy::None => 2,
            },
            campaign_id: String::from(&*m.campaign_id),
            expires_at_ms: m.expires_at_ms,
            priority: match m.priority {
                Priority::Marketing => 0,
                Priority::Transactional => 1,
            },
            tags: m.tags.iter().map(|s| String::from(&**s)).collect(),
            accepted_at_ms: m.accepted_at_ms,
            auto_reply: m.auto_reply,
            ..StoredMessage::with_mms(m.mms.as_deref())
        }
    }

    /// Whether `buf` decodes to a stored message that converts to a message,
    /// as [`prost::Message::decode`] then [`StoredMessage::to_message`]
    /// would, without building either: a restart checks this of every
    /// message it spills again undecoded (millions after an outage).
    ///
    /// # Errors
    /// As decoding then [`StoredMessage::to_message`].
    pub fn check_encoded(buf: &[u8]) -> Result<(), RecordError> {
        scan(buf)?.check_addresses()
    }

    /// The recipient and the sender: the fields that can be out of range.
    fn addresses(&self) -> Result<(Msisdn, Sender), RecordError> {
        let number = |source| RecordError::Number {
            id: self.id,
            source,
        };
        let to = Msisdn::from_u64(self.to).map_err(number)?;
        let from = match self.from_kind {
            0 => Sender::ShortCode(self.from.as_str().into()),
            1 => Sender::LongCode(Msisdn::parse(&self.from).map_err(number)?),
            2 => Sender::Alphanumeric(self.from.as_str().into()),
            kind => return Err(RecordError::SenderKind { id: self.id, kind }),
        };
        Ok((to, from))
    }

    /// Converts back to a domain message.
    ///
    /// # Errors
    /// [`RecordError`] when a stored field is out of range (corruption or a
    /// journal from an incompatible version).
    pub fn to_message(&self) -> Result<Message, RecordError> {
        let (to, from) = self.addresses()?;
        Ok(Message {
            id: MessageId(self.id),
            tenant: self.tenant.as_str().into(),
            client_ref: self.client_ref.as_str().into(),
            to,
            from,
            text: self.text.as_str().into(),
            media: self.media.iter().map(|s| s.as_str().into()).collect(),
            channel: match self.channel {
                1 => ChannelPref::Sms,
                2 => ChannelPref::Mms,
                _ => ChannelPref::Auto,
            },
            fallback: match self.fallback {
                1 => FallbackPolicy::SmsTextOnly,
                2 => FallbackPolicy::None,
                _ => FallbackPolicy::SmsWithLink,
            },
            campaign_id: self.campaign_id.as_str().into(),
            expires_at_ms: self.expires_at_ms,
            priority: stored_priority(self.priority),
            tags: self.tags.iter().map(|s| s.as_str().into()).collect(),
            accepted_at_ms: self.accepted_at_ms,
            auto_reply: self.auto_reply,
            mms: mms_fields_of(self),
        })
    }
}

/// What replay and restart read of a stored message before (or instead
/// of) decoding it whole: its id, dedupe key and queue, read in place.
/// Replay reads this of every accepted message in the journal (millions on a
/// restart after an outage): no allocation and no reference count per
/// message, which prost's derive cannot give (see [`scan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHead<'a> {
    /// Message id.
    pub id: u64,
    /// Tenant name.
    pub tenant: &'a str,
    /// Client reference.
    pub client_ref: &'a str,
    /// Queue priority.
    pub priority: Priority,
    /// Wall-clock ms it was accepted.
    pub accepted_at_ms: u64,
    /// Whether the whole stored form decodes to a message (what
    /// [`StoredMessage::check_encoded`] checks: its addresses are in range
    /// too), so that a restart can spill it without reading it again.
    pub decodes: bool,
}

impl<'a> StoredHead<'a> {
    /// Reads the head of one stored message (a [`StoredMessage`] encoding),
    /// checking the rest as prost's decoder would (wire types, text) and
    /// whether it decodes to a message ([`StoredHead::decodes`]).
    ///
    /// # Errors
    /// [`RecordError`] when prost's decoder would refuse the bytes.
    pub fn read(buf: &'a [u8]) -> Result<StoredHead<'a>, RecordError> {
        scan(buf).map(|s| s.head)
    }
}

/// What [`scan`] reads of a stored message.
struct Scanned<'a> {
    head: StoredHead<'a>,
    to: u64,
    from_kind: u32,
    from: &'a str,
}

impl Scanned<'_> {
    /// The checks [`StoredMessage::to_message`] makes beyond decoding: the
    /// recipient and the sender in range.
    fn check_addresses(&self) -> Result<(), RecordError> {
        let id = self.head.id;
        let number = |source| RecordError::Number { id, source };
        Msisdn::from_u64(self.to).map_err(number)?;
        match self.from_kind {
            0 | 2 => Ok(()),
            1 => Msisdn::parse(self.from).map(|_| ()).map_err(number),
            kind => Err(RecordError::SenderKind { id, kind }),
        }
    }
}

/// Walks one stored message in place, field by field, refusing what prost's
/// derived decoder of [`StoredMessage`] refuses (a malformed field, a known
/// field with another wire type, a string that is not UTF-8) and keeping
/// what the restart needs. Hand-written because replay reads this of every
/// message in the journal and prost allocates every string; the tag lists
/// follow [`StoredMessage`]'s fields, and a test holds the two to agreeing
/// on every field.
fn scan(mut buf: &[u8]) -> Result<Scanned<'_>, RecordError> {
    use prost::encoding::{
        DecodeContext, WireType, check_wire_type, decode_key, decode_varint, skip_field,
    };
    let (mut id, mut to, mut from_kind, mut priority, mut accepted_at_ms) = (0, 0, 0, 0, 0);
    let (mut tenant, mut client_ref, mut from) = ("", "", "");
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf)?;
        match tag {
            // Integers and the bool (prost reads a `uint32` as the low 32
            // bits of the varint, a `bool` as non-zero).
            1 | 4 | 5 | 10 | 11 | 13 | 14 | 16 | 17 | 20..=24 => {
                check_wire_type(WireType::Varint, wire)?;
                let v = decode_varint(&mut buf)?;
                match tag {
                    1 => id = v,
                    4 => to = v,
                    5 => from_kind = v as u32,
                    14 => priority = v as u32,
                    16 => accepted_at_ms = v,
                    _ => {}
                }
            }
            // Strings, single or repeated.
            2 | 3 | 6..=9 | 12 | 15 | 18 | 19 => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                let text = std::str::from_utf8(take_delimited(&mut buf)?)
                    .map_err(|_| RecordError::NotText { id })?;
                match tag {
                    2 => tenant = text,
                    3 => client_ref = text,
                    6 => from = text,
                    _ => {}
                }
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    let mut scanned = Scanned {
        head: StoredHead {
            id,
            tenant,
            client_ref,
            priority: stored_priority(priority),
            accepted_at_ms,
            decodes: false,
        },
        to,
        from_kind,
        from,
    };
    scanned.head.decodes = scanned.check_addresses().is_ok();
    Ok(scanned)
}

/// The queue priority a stored `priority` field means.
fn stored_priority(code: u32) -> Priority {
    if code == 1 {
        Priority::Transactional
    } else {
        Priority::Marketing
    }
}

/// Takes a length-delimited field's bytes off the front of `buf`.
fn take_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], RecordError> {
    let len = prost::encoding::decode_varint(buf)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= buf.len())
        .ok_or(RecordError::Truncated)?;
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

/// Calls `f` with each stored message of an `Accept` payload (what
/// [`encode_accept`] wrote), in place.
///
/// # Errors
/// [`RecordError`] when the payload is not well-formed, or what `f` returns.
pub fn for_each_stored<'a>(
    mut buf: &'a [u8],
    mut f: impl FnMut(&'a [u8]) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    use prost::encoding::{DecodeContext, WireType, check_wire_type, decode_key, skip_field};
    while !buf.is_empty() {
        match decode_key(&mut buf)? {
            (1, wire) => {
                check_wire_type(WireType::LengthDelimited, wire)?;
                f(take_delimited(&mut buf)?)?;
            }
            (tag, wire) => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(())
}

/// Appends stored messages, each already encoded, as an `Accept` payload
/// (what [`encode_accept`] writes for the same messages).
pub fn encode_accept_stored<'a>(dst: &mut BytesMut, stored: impl IntoIterator<Item = &'a [u8]>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    for m in stored {
        encode_key(1, WireType::LengthDelimited, dst);
        encode_varint(m.len() as u64, dst);
        dst.put_slice(m);
    }
}

/// Accepted messages, decoded whole (what the hand-written [`encode_accept`]
/// and [`for_each_stored`] are checked against).
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Accept {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<StoredMessage>,
}

/// One dispatched message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DispatchEntry {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Carrier name.
    #[prost(string, tag = "2")]
    pub carrier: String,
    /// Number of parts (segments) that will be written.
    #[prost(uint32, tag = "3")]
    pub parts: u32,
}

/// Messages about to be written to carriers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dispatch {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<DispatchEntry>,
}

/// Parts of messages about to be written to one carrier: entry `i` is
/// part `parts[i]` of `totals[i]` of message `ids[i]` (packed, so a batch of
/// a few hundred parts costs a few bytes each).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Written {
    /// Carrier name.
    #[prost(string, tag = "1")]
    pub carrier: String,
    #[prost(uint64, repeated, tag = "2")]
    pub ids: Vec<u64>,
    #[prost(uint32, repeated, tag = "3")]
    pub parts: Vec<u32>,
    #[prost(uint32, repeated, tag = "4")]
    pub totals: Vec<u32>,
}

/// Whether a carried message had a part written: 0 (carried before the
/// state was recorded: taken as written when it has a carrier),
/// [`WRITE_STATE_UNWRITTEN`] or [`WRITE_STATE_WRITTEN`].
///
/// No part of the dispatched message was written.
pub const WRITE_STATE_UNWRITTEN: u32 = 1;
/// At least one part was (or may have been) written.
pub const WRITE_STATE_WRITTEN: u32 = 2;

/// Message ids.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ids {
    #[prost(uint64, repeated, tag = "1")]
    pub ids: Vec<u64>,
}

/// One submitted part.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubmittedEntry {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint32, tag = "2")]
    pub part: u32,
    /// Carrier message id, normalised.
    #[prost(string, tag = "3")]
    pub carrier_id: String,
}

/// Submitted parts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Submitted {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<SubmittedEntry>,
}

/// An event waiting for upstream acknowledgement.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventEntry {
    #[prost(uint64, tag = "1")]
    pub event_id: u64,
    /// The message this event ends (0: none).
    #[prost(uint64, tag = "2")]
    pub message_id: u64,
    #[prost(string, tag = "3")]
    pub tenant: String,
    /// The encoded event, ready to send.
    #[prost(bytes = "bytes", tag = "4")]
    pub payload: bytes::Bytes,
    /// Where it goes: empty for the tenant's event stream, else the name of
    /// one of the tenant's webhook endpoints.
    #[prost(string, tag = "5")]
    pub sink: String,
    /// Wall-clock ms it was created (0 in records older than this field).
    #[prost(uint64, tag = "6")]
    pub created_ms: u64,
}

/// Events (one naming a message also ends it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Events {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<EventEntry>,
}

/// A live message rewritten by compaction, with its progress.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CarriedMessage {
    /// The message in its stored form (a [`StoredMessage`] encoding),
    /// left encoded: replay reads only its head ([`StoredHead::read`]).
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub message: Option<Bytes>,
    /// Carrier it was dispatched to (empty: still queued).
    #[prost(string, tag = "2")]
    pub carrier: String,
    #[prost(uint32, tag = "3")]
    pub parts: u32,
    /// Carrier ids per part (empty string: no answer yet).
    #[prost(string, repeated, tag = "4")]
    pub carrier_ids: Vec<String>,
    /// Whether a part was written (`WRITE_STATE_*`).
    #[prost(uint32, tag = "5")]
    pub write_state: u32,
}

/// Live messages rewritten by compaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Carry {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<CarriedMessage>,
}

/// A remembered `(tenant, client_ref)` (dedupe key).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DedupeEntry {
    #[prost(string, tag = "1")]
    pub tenant: String,
    #[prost(string, tag = "2")]
    pub client_ref: String,
    #[prost(uint64, tag = "3")]
    pub id: u64,
    #[prost(uint64, tag = "4")]
    pub accepted_at_ms: u64,
}

/// Dedupe keys rewritten by compaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Remember {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<DedupeEntry>,
}
