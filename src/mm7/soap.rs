//! The MM7 SOAP messages: their types (named after TS 23.140), encoders
//! that write SOAP 1.1 envelopes with quick-xml and lay out the
//! `multipart/related` body, and one decoder ([`decode`]) for whatever an
//! MMSC or a VASP posts or answers.
//!
//! # What is written
//! The layout follows the examples of TS 23.140 (annex): the envelope
//! prefix `env`, `TransactionID` in the header in the version's namespace
//! (prefix `mm7`) with `env:mustUnderstand="1"`, the body element with the
//! version's namespace as default namespace, its children in the order of
//! the schema's sequence. Every encoder's output is validated against the
//! version's xsd by the tests.
//!
//! A `SubmitReq` body is `multipart/related; type="text/xml"` with the
//! envelope first and the content second; the content is a
//! `multipart/mixed` holding a `text/plain; charset=utf-8` part (the text,
//! left out when empty and there is media) and each media part
//! (`Content-Transfer-Encoding: binary`, or `base64`). With
//! [`Presentation::Smil`] the content is instead a `multipart/related;
//! type="application/smil"` led by a SMIL part ([`smil`]), every part
//! named by `Content-Location` and media identified `<…@sluice>`. `Content href` points at the
//! content part by `cid:`. Every part's `Content-Transfer-Encoding` tells
//! the truth about its bytes ([`mime::TransferEncoding`]): the envelope
//! declares `8bit` when it holds raw UTF-8 (a non-ASCII Subject) and
//! `binary` when a line passes 998 octets, and nothing (7bit) otherwise;
//! the text says `8bit`, or `binary` for bare line feeds or long lines.
//!
//! # What is read
//! - Any namespace and any prefix: elements are matched by local name; the
//!   namespace of the body element, when it is a supported one, gives
//!   [`Version`]. Unknown elements are ignored; `DeliveryReportReq` takes
//!   `Date` or `TimeStamp`.
//! - Bodies that are plain `text/xml` or `multipart/related` (the root part
//!   chosen by `start`, else the first); the content of `SubmitReq` and
//!   `DeliverReq` flattened to its leaves (nested multiparts, base64 and
//!   quoted-printable undone), the `text/plain` leaves joined as the text,
//!   SMIL (`application/smil`) left out.
//! - A SOAP Fault carrying `RSErrorRsp`/`VASPErrorRsp` (the status is looked
//!   for anywhere inside `detail`), and a bare `RSErrorRsp`/`VASPErrorRsp`
//!   in the body (some MMSCs skip the Fault).
//! - Malformed input gives an [`Mm7Error`], never a panic. Limits: at most
//!   [`MAX_XML_DEPTH`] levels and [`MAX_XML_NODES`] elements; no DTDs.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::error::Mm7Error;
use super::mime::{self, ContentType, Layout, Part, TransferEncoding};
use super::status::Status;
use super::version::{SOAP_ENV_NS, Version};
use crate::model::calendar::{civil_from_days, days_from_civil};

/// Deepest XML nesting accepted.
pub const MAX_XML_DEPTH: usize = 64;
/// Most XML elements accepted in one envelope.
pub const MAX_XML_NODES: usize = 20_000;

/// `Content-ID` of the SOAP part sluice writes.
const SOAP_CID: &str = "mm7-soap@sluice";
/// `Content-ID` of the content part sluice writes.
const CONTENT_CID: &str = "mm7-content@sluice";
/// `Content-ID` of the text part sluice writes.
const TEXT_CID: &str = "mm7-text@sluice";
/// `Content-ID` and `Content-Location` of the SMIL part sluice writes.
const SMIL_CID: &str = "mm7-smil@sluice";
const SMIL_LOCATION: &str = "presentation.smil";
/// `Content-Location` of the text part when there is a SMIL part.
const TEXT_LOCATION: &str = "text.txt";

// === addresses and small types ===

/// An MM7 address (`AddressGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    /// `Number`: an MSISDN (E.164, with or without `+`, as the carrier wants).
    Number(String),
    /// `ShortCode`.
    ShortCode(String),
    /// `RFC2822Address`: an e-mail address.
    Email(String),
}

impl Address {
    /// The address text.
    pub fn value(&self) -> &str {
        match self {
            Address::Number(s) | Address::ShortCode(s) | Address::Email(s) => s,
        }
    }

    /// The element name in `AddressGroup`.
    pub const fn element(&self) -> &'static str {
        match self {
            Address::Number(_) => "Number",
            Address::ShortCode(_) => "ShortCode",
            Address::Email(_) => "RFC2822Address",
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.value())
    }
}

/// `MessageClass` (`messageClassType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// `Personal`.
    Personal,
    /// `Informational` (the schema's default).
    Informational,
    /// `Advertisement`.
    Advertisement,
    /// `Auto`.
    Auto,
}

impl MessageClass {
    /// The schema's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageClass::Personal => "Personal",
            MessageClass::Informational => "Informational",
            MessageClass::Advertisement => "Advertisement",
            MessageClass::Auto => "Auto",
        }
    }
}

/// `ChargedParty` (`chargedPartyType`): who pays for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChargedParty {
    /// `Sender`.
    Sender,
    /// `Recipient`.
    Recipient,
    /// `Both`.
    Both,
    /// `Neither`.
    Neither,
}

impl ChargedParty {
    /// The schema's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChargedParty::Sender => "Sender",
            ChargedParty::Recipient => "Recipient",
            ChargedParty::Both => "Both",
            ChargedParty::Neither => "Neither",
        }
    }
}

/// `Priority` (`priorityType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// `Normal`.
    Normal,
    /// `High`.
    High,
    /// `Low`.
    Low,
}

impl Priority {
    /// The schema's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "Normal",
            Priority::High => "High",
            Priority::Low => "Low",
        }
    }
}

/// `ExpiryDate` (`relativeOrAbsoluteDateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Relative to the submission, written as `xs:duration` (`PT<n>S`).
    Relative(Duration),
    /// An absolute time, written as `xs:dateTime` in UTC.
    Absolute(SystemTime),
}

/// `MMStatus` of a delivery report (`mmDeliveryStatusType`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum MmStatus {
    /// `Expired`: the message expired before retrieval.
    Expired,
    /// `Retrieved`: the handset fetched it.
    Retrieved,
    /// `Rejected`: the recipient or the network refused it.
    Rejected,
    /// `Indeterminate`: the fate is unknown (e.g. delivered abroad); the
    /// default.
    #[default]
    Indeterminate,
    /// `Forwarded`: the recipient forwarded it without retrieving it.
    Forwarded,
    /// `Unrecognised` (REL-6-MM7-1-1 and later): the recipient is unknown.
    Unrecognised,
    /// `Deferred` (REL-6-MM7-1-1 and later): retrieval deferred by the user;
    /// not final. `DeferredRetrieval` is read as this too.
    Deferred,
    /// `DeliveryConditionNotMet` (REL-6-MM7-1-3 and later).
    DeliveryConditionNotMet,
    /// Any other value, as received.
    Other(String),
}

impl MmStatus {
    /// The schema's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            MmStatus::Expired => "Expired",
            MmStatus::Retrieved => "Retrieved",
            MmStatus::Rejected => "Rejected",
            MmStatus::Indeterminate => "Indeterminate",
            MmStatus::Forwarded => "Forwarded",
            MmStatus::Unrecognised => "Unrecognised",
            MmStatus::Deferred => "Deferred",
            MmStatus::DeliveryConditionNotMet => "DeliveryConditionNotMet",
            MmStatus::Other(s) => s,
        }
    }

    /// Parses a value (case-insensitive; `Unrecognized` and
    /// `DeferredRetrieval` accepted).
    pub fn parse(s: &str) -> MmStatus {
        let t = s.trim();
        let known = [
            MmStatus::Expired,
            MmStatus::Retrieved,
            MmStatus::Rejected,
            MmStatus::Indeterminate,
            MmStatus::Forwarded,
            MmStatus::Unrecognised,
            MmStatus::Deferred,
            MmStatus::DeliveryConditionNotMet,
        ];
        if let Some(k) = known
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
        {
            return k;
        }
        if t.eq_ignore_ascii_case("Unrecognized") {
            MmStatus::Unrecognised
        } else if t.eq_ignore_ascii_case("DeferredRetrieval") {
            MmStatus::Deferred
        } else {
            MmStatus::Other(t.to_owned())
        }
    }

    /// True when no further report is expected (all but `Deferred`).
    pub fn is_final(&self) -> bool {
        !matches!(self, MmStatus::Deferred)
    }

    /// The value to write for `version`: values its schema does not list
    /// become `Indeterminate`.
    pub fn for_version(&self, version: Version) -> MmStatus {
        match self {
            MmStatus::Unrecognised | MmStatus::Deferred
                if !version.has_unrecognised_and_deferred() =>
            {
                MmStatus::Indeterminate
            }
            MmStatus::DeliveryConditionNotMet if !version.has_delivery_condition_not_met() => {
                MmStatus::Indeterminate
            }
            MmStatus::Other(_) => MmStatus::Indeterminate,
            s => s.clone(),
        }
    }
}

impl fmt::Display for MmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An encoded message ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The HTTP `Content-Type`.
    pub content_type: String,
    /// The HTTP body; its length is what carriers' size limits apply to.
    pub body: Bytes,
}

impl Encoded {
    /// Size of the body in bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// True for an empty body (never for an encoded message).
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

// === SubmitReq ===

/// A media part of a [`SubmitReq`] (or of an encoded `DeliverReq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPart<'a> {
    /// `Content-Type`, e.g. `image/jpeg`.
    pub content_type: &'a str,
    /// `Content-ID`, with or without angle brackets; unique in the message
    /// and not one of sluice's own (`mm7-*@sluice`).
    pub content_id: &'a str,
    /// The bytes, copied once into the encoded body.
    pub bytes: Bytes,
}

/// How media parts are written in the MIME body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaEncoding {
    /// As they are (`Content-Transfer-Encoding: binary`): the smallest.
    #[default]
    Binary,
    /// `base64` in 76-character lines, for MMSCs and proxies that mangle
    /// binary bodies (a third larger).
    Base64,
}

/// `SubmitReq`: VASP → MMSC, an MM for one or more recipients. Fields in the
/// schema's order; `None` leaves an optional element out.
#[derive(Debug, Clone, Default)]
pub struct SubmitReq<'a> {
    /// `TransactionID` (SOAP header), echoed in the answer.
    pub transaction_id: &'a str,
    /// The schema version (namespace and `MM7Version`).
    pub version: Version,
    /// `SenderIdentification/VASPID`.
    pub vasp_id: Option<&'a str>,
    /// `SenderIdentification/VASID`.
    pub vas_id: Option<&'a str>,
    /// `SenderIdentification/SenderAddress`.
    pub sender: Option<&'a Address>,
    /// The recipients; the schema requires at least one (encoding does not
    /// check: an empty list is refused by the MMSC).
    pub recipients: &'a [Address],
    /// Whether they go in `Recipients/To` or `Recipients/Bcc`.
    pub recipient_field: RecipientField,
    /// `ServiceCode` (billing).
    pub service_code: Option<&'a str>,
    /// `LinkedID`: the MessageID of a DeliverReq this answers.
    pub linked_id: Option<&'a str>,
    /// `MessageClass`.
    pub message_class: Option<MessageClass>,
    /// `TimeStamp`.
    pub time_stamp: Option<SystemTime>,
    /// `ReplyCharging`: the VASP pays for the recipient's reply.
    pub reply_charging: Option<ReplyCharging>,
    /// `ExpiryDate`.
    pub expiry: Option<Expiry>,
    /// `EarliestDeliveryTime`: not delivered before.
    pub earliest_delivery: Option<Expiry>,
    /// `DeliveryReport`: ask for delivery reports (always written).
    pub delivery_report: bool,
    /// `ReadReply`: ask for a read report.
    pub read_reply: Option<bool>,
    /// `Priority`.
    pub priority: Option<Priority>,
    /// `Subject`.
    pub subject: Option<&'a str>,
    /// `ChargedParty`.
    pub charged_party: Option<ChargedParty>,
    /// `DistributionIndicator`: whether the recipient may forward it.
    pub distribution_indicator: Option<bool>,
    /// The message text (a `text/plain; charset=utf-8` part).
    pub text: &'a str,
    /// Media parts, after the text.
    pub media: &'a [MediaPart<'a>],
    /// How the media parts are written.
    pub media_encoding: MediaEncoding,
    /// How the content is laid out: a SMIL presentation or none.
    pub presentation: Presentation,
}

/// `ReplyCharging` of a SubmitReq: the VASP pays for one reply from each
/// recipient, up to a size and before a deadline (each left to the MMSC
/// when unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyCharging {
    /// `replyChargingSize`: the largest reply paid for, bytes (above 0).
    pub size: Option<u64>,
    /// `replyDeadline`: until when a reply is paid for.
    pub deadline: Option<Expiry>,
}

/// Where a SubmitReq names its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecipientField {
    /// `To`: each handset shows the others as fellow recipients (and a
    /// reply can go to all of them).
    #[default]
    To,
    /// `Bcc`: each recipient sees only the sender, as if the message were
    /// for them alone.
    Bcc,
}

/// How a SubmitReq's content is presented to the handset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Presentation {
    /// `multipart/mixed` of the text and the media, no layout.
    #[default]
    None,
    /// `multipart/related; type="application/smil"` led by a SMIL part
    /// ([`smil`]): a slide per media item, the text on the first, every
    /// part named by `Content-Location` and identified `<…@sluice>`.
    Smil,
}

impl SubmitReq<'_> {
    /// The SOAP envelope alone.
    pub fn envelope(&self) -> String {
        let v = self.version;
        envelope(v, Some(self.transaction_id), |x| {
            x.start_ns("SubmitReq", v);
            x.leaf("MM7Version", v.mm7_version());
            x.start("SenderIdentification");
            x.opt_leaf("VASPID", self.vasp_id);
            x.opt_leaf("VASID", self.vas_id);
            if let Some(sender) = self.sender {
                x.address("SenderAddress", sender);
            }
            x.end("SenderIdentification");
            x.start("Recipients");
            let field = match self.recipient_field {
                RecipientField::To => "To",
                RecipientField::Bcc => "Bcc",
            };
            x.start(field);
            for r in self.recipients {
                x.leaf(r.element(), r.value());
            }
            x.end(field);
            x.end("Recipients");
            x.opt_leaf("ServiceCode", self.service_code);
            x.opt_leaf("LinkedID", self.linked_id);
            x.opt_leaf("MessageClass", self.message_class.map(MessageClass::as_str));
            if let Some(t) = self.time_stamp {
                x.leaf("TimeStamp", &format_date_time(t));
            }
            if let Some(rc) = self.reply_charging {
                let size = rc.size.map(|n| n.max(1).to_string());
                let deadline = rc.deadline.map(|d| match d {
                    Expiry::Relative(d) => format_duration(d),
                    Expiry::Absolute(t) => format_date_time(t),
                });
                let mut attrs: Vec<(&str, &str)> = Vec::with_capacity(2);
                if let Some(n) = &size {
                    attrs.push(("replyChargingSize", n));
                }
                if let Some(d) = &deadline {
                    attrs.push(("replyDeadline", d));
                }
                x.empty("ReplyCharging", &attrs);
            }
            let time = |x: &mut Xml, name: &str, t: Option<Expiry>| match t {
                Some(Expiry::Relative(d)) => x.leaf(name, &format_duration(d)),
                Some(Expiry::Absolute(t)) => x.leaf(name, &format_date_time(t)),
                None => {}
            };
            time(x, "EarliestDeliveryTime", self.earliest_delivery);
            time(x, "ExpiryDate", self.expiry);
            let flag = |b: bool| if b { "true" } else { "false" };
            x.leaf("DeliveryReport", flag(self.delivery_report));
            x.opt_leaf("ReadReply", self.read_reply.map(flag));
            x.opt_leaf("Priority", self.priority.map(Priority::as_str));
            x.opt_leaf("Subject", self.subject);
            x.opt_leaf("ChargedParty", self.charged_party.map(ChargedParty::as_str));
            x.opt_leaf(
                "DistributionIndicator",
                self.distribution_indicator.map(flag),
            );
            x.empty("Content", &[("href", &format!("cid:{CONTENT_CID}"))]);
            x.end("SubmitReq");
        })
    }

    /// Encodes the whole HTTP body: the envelope and the content in one
    /// buffer of exactly the final size (media bytes are copied once).
    pub fn encode(&self) -> Encoded {
        encode_with_content(
            self.envelope(),
            self.text,
            self.media,
            self.media_encoding,
            self.presentation,
        )
    }
}

/// The body of a request with content: `multipart/related` holding the
/// envelope and a `multipart/mixed` of the text and the media.
fn encode_with_content(
    envelope: String,
    text: &str,
    media: &[MediaPart<'_>],
    encoding: MediaEncoding,
    presentation: Presentation,
) -> Encoded {
    let with_text = !text.is_empty() || media.is_empty();
    let smil_doc = match presentation {
        Presentation::None => None,
        Presentation::Smil => Some(smil(
            with_text,
            &media
                .iter()
                .enumerate()
                .map(|(i, m)| (m.content_type, location(i, m.content_type)))
                .collect::<Vec<_>>(),
        )),
    };
    // Base64 lines hold no `-`, so they cannot collide with a boundary.
    let base64: Vec<Vec<u8>> = match encoding {
        MediaEncoding::Binary => Vec::new(),
        MediaEncoding::Base64 => media
            .iter()
            .map(|m| super::base64::encode_lines(&m.bytes))
            .collect(),
    };
    let bodies: Vec<&[u8]> = std::iter::once(text.as_bytes())
        .chain(std::iter::once(envelope.as_bytes()))
        .chain(smil_doc.iter().map(|s| s.as_bytes()))
        .chain(media.iter().map(|m| m.bytes.as_ref()))
        .collect();
    let fresh = |tag: &str| loop {
        let b = mime::new_boundary(tag);
        if !bodies.iter().any(|body| mime::collides(body, &b)) {
            break b;
        }
    };
    let outer = fresh("rel");
    let inner = fresh("mix");

    let mut l = Layout::default();
    // Raw UTF-8 (a non-ASCII Subject) or a line past 998 octets is not the
    // 7bit a part without the header claims: say what it is.
    let soap_cid = format!("<{SOAP_CID}>");
    let mut soap_headers = vec![
        ("Content-Type", "text/xml; charset=utf-8"),
        ("Content-ID", soap_cid.as_str()),
    ];
    match TransferEncoding::of(envelope.as_bytes()) {
        TransferEncoding::SevenBit => {}
        te => soap_headers.push(("Content-Transfer-Encoding", te.as_str())),
    }
    l.begin_part(&outer, &soap_headers);
    l.bytes(envelope.as_bytes());
    l.end_part();
    let container = match &smil_doc {
        None => format!("multipart/mixed; boundary=\"{inner}\""),
        Some(_) => format!(
            "multipart/related; type=\"application/smil\"; start=\"<{SMIL_CID}>\"; boundary=\"{inner}\""
        ),
    };
    l.begin_part(
        &outer,
        &[
            ("Content-Type", &container),
            ("Content-ID", &format!("<{CONTENT_CID}>")),
        ],
    );
    if let Some(doc) = &smil_doc {
        l.begin_part(
            &inner,
            &[
                ("Content-Type", "application/smil; charset=utf-8"),
                ("Content-ID", &format!("<{SMIL_CID}>")),
                ("Content-Location", SMIL_LOCATION),
            ],
        );
        l.bytes(doc.as_bytes());
        l.end_part();
    }
    let smil_on = smil_doc.is_some();
    let text_cid = format!("<{TEXT_CID}>");
    if with_text {
        let mut headers = vec![
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-ID", text_cid.as_str()),
            (
                "Content-Transfer-Encoding",
                TransferEncoding::of(text.as_bytes())
                    .max(TransferEncoding::EightBit)
                    .as_str(),
            ),
        ];
        if smil_on {
            headers.push(("Content-Location", TEXT_LOCATION));
        }
        l.begin_part(&inner, &headers);
        l.bytes(text.as_bytes());
        l.end_part();
    }
    for (i, m) in media.iter().enumerate() {
        let id = m
            .content_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let id = if smil_on && !id.contains('@') {
            format!("<{id}@sluice>")
        } else {
            format!("<{id}>")
        };
        let name = location(i, m.content_type);
        let mut headers = vec![
            ("Content-Type", header_safe(m.content_type)),
            ("Content-ID", header_safe(&id)),
            (
                "Content-Transfer-Encoding",
                Cow::Borrowed(match encoding {
                    MediaEncoding::Binary => "binary",
                    MediaEncoding::Base64 => "base64",
                }),
            ),
        ];
        if smil_on {
            headers.push(("Content-Location", Cow::Borrowed(name.as_str())));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        l.begin_part(&inner, &headers);
        match base64.get(i) {
            // The lines end with CRLF already; `end_part` adds the one
            // before the delimiter.
            Some(lines) => l.bytes(lines.strip_suffix(b"\r\n").unwrap_or(lines)),
            None => l.bytes(&m.bytes),
        }
        l.end_part();
    }
    l.close(&inner);
    l.end_part();
    l.close(&outer);
    Encoded {
        content_type: format!(
            "multipart/related; type=\"text/xml\"; start=\"<{SOAP_CID}>\"; boundary=\"{outer}\""
        ),
        body: l.finish(),
    }
}

/// The `Content-Location` of media part `i`: `image1.jpg`, `video2.mp4`,
/// `audio3.amr`, `media4.bin`, named after its content type.
fn location(i: usize, content_type: &str) -> String {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (top, sub) = mime.split_once('/').unwrap_or(("", ""));
    let kind = match top {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "media",
    };
    let ext = match sub {
        "jpeg" | "jpg" | "pjpeg" => "jpg",
        "png" => "png",
        "gif" => "gif",
        "webp" => "webp",
        "bmp" | "x-ms-bmp" => "bmp",
        "mp4" => "mp4",
        "3gpp" => "3gp",
        "3gpp2" => "3g2",
        "quicktime" => "mov",
        "amr" => "amr",
        "mpeg" if top == "audio" => "mp3",
        "mpeg" => "mpg",
        "ogg" => "ogg",
        "aac" => "aac",
        "vcard" | "x-vcard" => "vcf",
        _ => "bin",
    };
    format!("{kind}{}.{ext}", i + 1)
}

/// The SMIL presentation (SMIL 2.0 as MMS handsets read it, OMA MMS
/// conformance layout): an image/video region above a text region; one
/// slide (`par`) per media item, the text on the first; a text-only
/// message has one slide. Every `src` is a part's `Content-Location`.
pub fn smil(with_text: bool, media: &[(&str, String)]) -> String {
    use std::fmt::Write as _;
    let has_visual = media
        .iter()
        .any(|(ct, _)| ct.starts_with("image/") || ct.starts_with("video/"));
    let mut s = String::with_capacity(512 + 96 * media.len());
    s.push_str("<smil>\r\n<head>\r\n<layout>\r\n");
    s.push_str("<root-layout width=\"100%\" height=\"100%\"/>\r\n");
    if has_visual {
        s.push_str("<region id=\"Image\" left=\"0%\" top=\"0%\" width=\"100%\" height=\"70%\" fit=\"meet\"/>\r\n");
        s.push_str("<region id=\"Text\" left=\"0%\" top=\"70%\" width=\"100%\" height=\"30%\" fit=\"scroll\"/>\r\n");
    } else {
        s.push_str("<region id=\"Text\" left=\"0%\" top=\"0%\" width=\"100%\" height=\"100%\" fit=\"scroll\"/>\r\n");
    }
    s.push_str("</layout>\r\n</head>\r\n<body>\r\n");
    let text = format!("<text src=\"{TEXT_LOCATION}\" region=\"Text\"/>\r\n");
    if media.is_empty() {
        s.push_str("<par dur=\"5000ms\">\r\n");
        s.push_str(&text);
        s.push_str("</par>\r\n");
    }
    for (i, (ct, loc)) in media.iter().enumerate() {
        s.push_str("<par dur=\"5000ms\">\r\n");
        let element = match ct.split('/').next().unwrap_or("") {
            "image" => "img",
            "video" => "video",
            "audio" => "audio",
            _ => "ref",
        };
        let region = if matches!(element, "img" | "video") {
            " region=\"Image\""
        } else {
            ""
        };
        // Locations are sluice's own names (letters, digits, a dot).
        let _ = write!(s, "<{element} src=\"{loc}\"{region}/>\r\n");
        if i == 0 && with_text {
            s.push_str(&text);
        }
        s.push_str("</par>\r\n");
    }
    s.push_str("</body>\r\n</smil>\r\n");
    s
}

/// Drops CR and LF from a header value (no header injection from a media
/// type or id).
fn header_safe(s: &str) -> Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        Cow::Owned(s.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// A `SubmitReq` as received (by the MMSC simulator, or any MMSC side).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceivedSubmitReq {
    /// `TransactionID` (empty when absent).
    pub transaction_id: String,
    /// The version named by the body's namespace, if supported.
    pub version: Option<Version>,
    /// The namespace of the body element.
    pub namespace: Option<String>,
    /// `MM7Version`.
    pub mm7_version: String,
    /// `VASPID`.
    pub vasp_id: Option<String>,
    /// `VASID`.
    pub vas_id: Option<String>,
    /// `SenderAddress`.
    pub sender: Option<Address>,
    /// Every `To`, `Cc` and `Bcc` address, in order.
    pub recipients: Vec<Address>,
    /// Whether each of `recipients` was under `Bcc`, in the same order.
    pub blind: Vec<bool>,
    /// `ServiceCode`.
    pub service_code: Option<String>,
    /// `LinkedID`.
    pub linked_id: Option<String>,
    /// `MessageClass`, `Priority`, `ReadReply`, `DistributionIndicator`,
    /// `EarliestDeliveryTime` and `ChargedParty` as written, then
    /// `ReplyCharging` as `size=… deadline=…` (its attributes as written,
    /// empty when absent); `None` when absent.
    pub service_fields: [Option<String>; 7],
    /// `DeliveryReport` (false when absent).
    pub delivery_report: bool,
    /// `ExpiryDate`, as written.
    pub expiry: Option<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// `Content href`.
    pub content_href: Option<String>,
    /// The `text/plain` leaves of the content, joined by newlines.
    pub text: String,
    /// The other leaves of the content.
    pub media: Vec<Part>,
}

// === SubmitRsp ===

/// `SubmitRsp`: MMSC → VASP, the answer to a `SubmitReq`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubmitRsp {
    /// `TransactionID`, echoed.
    pub transaction_id: String,
    /// The version named by the namespace (for encoding: `None` is the
    /// default version).
    pub version: Option<Version>,
    /// `MM7Version` (for encoding: empty, or one the version does not
    /// accept, writes the version's own).
    pub mm7_version: String,
    /// `Status`.
    pub status: Status,
    /// `MessageID` (mandatory in the schema; written empty when `None`).
    pub message_id: Option<String>,
}

impl SubmitRsp {
    /// Encodes as a plain `text/xml` body.
    pub fn encode(&self) -> Encoded {
        let v = self.version.unwrap_or_default();
        let xml = envelope(v, Some(&self.transaction_id), |x| {
            x.start_ns("SubmitRsp", v);
            x.leaf("MM7Version", mm7_version_for(v, &self.mm7_version));
            x.status(&self.status);
            x.leaf("MessageID", self.message_id.as_deref().unwrap_or(""));
            x.end("SubmitRsp");
        });
        plain(xml)
    }
}

// === generic responses ===

/// Which message a [`Rsp`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RspKind {
    /// `DeliveryReportRsp`.
    DeliveryReport,
    /// `DeliverRsp`.
    Deliver,
    /// `ReadReplyRsp`.
    ReadReply,
    /// `CancelRsp`.
    Cancel,
    /// `ReplaceRsp`.
    Replace,
}

impl RspKind {
    /// The element name.
    pub const fn element(self) -> &'static str {
        match self {
            RspKind::DeliveryReport => "DeliveryReportRsp",
            RspKind::Deliver => "DeliverRsp",
            RspKind::ReadReply => "ReadReplyRsp",
            RspKind::Cancel => "CancelRsp",
            RspKind::Replace => "ReplaceRsp",
        }
    }
}

/// A response that is just `MM7Version` and `Status` (`genericResponseType`,
/// and `DeliverRsp` whose `ServiceCode` is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rsp {
    /// Which response.
    pub kind: RspKind,
    /// `TransactionID`, echoed.
    pub transaction_id: String,
    /// The version named by the namespace (encoding: `None` is the default).
    pub version: Option<Version>,
    /// `MM7Version` (encoding: as for [`SubmitRsp::mm7_version`]).
    pub mm7_version: String,
    /// `Status`.
    pub status: Status,
}

impl Rsp {
    /// A `DeliveryReportRsp` with `status`, echoing `transaction_id`.
    pub fn delivery_report(transaction_id: &str, version: Version, status: Status) -> Rsp {
        Rsp {
            kind: RspKind::DeliveryReport,
            transaction_id: transaction_id.to_owned(),
            version: Some(version),
            mm7_version: String::new(),
            status,
        }
    }

    /// A `DeliverRsp` with `status`, echoing `transaction_id`.
    pub fn deliver(transaction_id: &str, version: Version, status: Status) -> Rsp {
        Rsp {
            kind: RspKind::Deliver,
            ..Rsp::delivery_report(transaction_id, version, status)
        }
    }

    /// Encodes as a plain `text/xml` body.
    pub fn encode(&self) -> Encoded {
        let v = self.version.unwrap_or_default();
        let name = self.kind.element();
        let xml = envelope(v, Some(&self.transaction_id), |x| {
            x.start_ns(name, v);
            x.leaf("MM7Version", mm7_version_for(v, &self.mm7_version));
            x.status(&self.status);
            x.end(name);
        });
        plain(xml)
    }
}

// === Fault ===

/// Which error response a Fault's `detail` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorRspKind {
    /// `RSErrorRsp`: from the MMSC (relay/server).
    Rs,
    /// `VASPErrorRsp`: from the VASP.
    Vasp,
}

impl ErrorRspKind {
    /// The element name.
    pub const fn element(self) -> &'static str {
        match self {
            ErrorRspKind::Rs => "RSErrorRsp",
            ErrorRspKind::Vasp => "VASPErrorRsp",
        }
    }
}

/// A SOAP 1.1 Fault, usually carrying an MM7 error response in `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fault {
    /// `TransactionID`, when the header had one.
    pub transaction_id: Option<String>,
    /// The version named by the error response's namespace (encoding:
    /// `None` is the default).
    pub version: Option<Version>,
    /// `faultcode`, e.g. `env:Server` (encoding: `Client` or `Server`, the
    /// `env:` prefix is added when missing).
    pub faultcode: String,
    /// `faultstring`.
    pub faultstring: String,
    /// The error response in `detail`, if any.
    pub error_rsp: Option<ErrorRspKind>,
    /// The MM7 status found in `detail`.
    pub status: Option<Status>,
}

impl Fault {
    /// A fault carrying `kind` with `status`; `faultcode` is `Server` for
    /// 3xxx and 4006 and `Client` otherwise.
    pub fn new(
        transaction_id: Option<&str>,
        version: Version,
        kind: ErrorRspKind,
        status: Status,
    ) -> Fault {
        let server = matches!(
            super::status::classify(status.code),
            super::status::Class::Temporary
        );
        Fault {
            transaction_id: transaction_id.map(str::to_owned),
            version: Some(version),
            faultcode: if server { "Server" } else { "Client" }.to_owned(),
            faultstring: status.text.clone(),
            error_rsp: Some(kind),
            status: Some(status),
        }
    }

    /// Encodes as a plain `text/xml` body (HTTP status 500 for SOAP 1.1).
    pub fn encode(&self) -> Encoded {
        let v = self.version.unwrap_or_default();
        let code = if self.faultcode.contains(':') {
            self.faultcode.clone()
        } else {
            format!("env:{}", self.faultcode)
        };
        let xml = envelope(v, self.transaction_id.as_deref(), |x| {
            x.start("env:Fault");
            x.leaf("faultcode", &code);
            x.leaf("faultstring", &self.faultstring);
            if let (Some(kind), Some(status)) = (self.error_rsp, &self.status) {
                x.start("detail");
                x.start_ns(kind.element(), v);
                x.leaf("MM7Version", v.mm7_version());
                x.status(status);
                x.end(kind.element());
                x.end("detail");
            }
            x.end("env:Fault");
        });
        plain(xml)
    }
}

// === DeliveryReportReq ===

/// `DeliveryReportReq`: MMSC → VASP, the fate of a message at one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryReportReq {
    /// `TransactionID` (empty when absent), to echo.
    pub transaction_id: String,
    /// The version named by the namespace (encoding: `None` is the default).
    pub version: Option<Version>,
    /// `MM7Version` (encoding: as for [`SubmitRsp::mm7_version`]).
    pub mm7_version: String,
    /// `MMSRelayServerID`.
    pub relay_server_id: Option<String>,
    /// `MessageID`: the id from the `SubmitRsp`.
    pub message_id: String,
    /// `Recipient`.
    pub recipient: Address,
    /// `Sender` (the submit's sender).
    pub sender: Address,
    /// `Date` (or `TimeStamp`), as written (see [`parse_date_time`]);
    /// encoding: `None` writes now.
    pub date: Option<String>,
    /// `MMStatus`.
    pub mm_status: MmStatus,
    /// `StatusText`.
    pub status_text: Option<String>,
}

impl Default for Address {
    fn default() -> Self {
        Address::Number(String::new())
    }
}

impl DeliveryReportReq {
    /// Encodes as a plain `text/xml` body, in the element names and values
    /// of the version's schema.
    pub fn encode(&self) -> Encoded {
        let v = self.version.unwrap_or_default();
        let date = self
            .date
            .clone()
            .unwrap_or_else(|| format_date_time(SystemTime::now()));
        let xml = envelope(v, Some(&self.transaction_id), |x| {
            x.start_ns("DeliveryReportReq", v);
            x.leaf("MM7Version", mm7_version_for(v, &self.mm7_version));
            x.opt_leaf("MMSRelayServerID", self.relay_server_id.as_deref());
            x.leaf("MessageID", &self.message_id);
            x.address("Recipient", &self.recipient);
            x.address("Sender", &self.sender);
            x.leaf(v.delivery_report_date_element(), &date);
            x.leaf("MMStatus", self.mm_status.for_version(v).as_str());
            x.opt_leaf("StatusText", self.status_text.as_deref());
            x.end("DeliveryReportReq");
        });
        plain(xml)
    }
}

// === DeliverReq ===

/// `DeliverReq`: MMSC → VASP, an inbound MM (which can carry a STOP).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliverReq {
    /// `TransactionID` (empty when absent), to echo.
    pub transaction_id: String,
    /// The version named by the namespace (encoding: `None` is the default).
    pub version: Option<Version>,
    /// `MM7Version` (encoding: as for [`SubmitRsp::mm7_version`]).
    pub mm7_version: String,
    /// `MMSRelayServerID`.
    pub relay_server_id: Option<String>,
    /// `LinkedID`: to be used as `LinkedID` of a reply.
    pub linked_id: Option<String>,
    /// `Sender`: the handset.
    pub sender: Address,
    /// Every `To`, `Cc` and `Bcc` address (usually the VASP's short code).
    pub recipients: Vec<Address>,
    /// `TimeStamp`, as written.
    pub time_stamp: Option<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// `Content href`.
    pub content_href: Option<String>,
    /// The `text/plain` leaves of the content, joined by newlines.
    pub text: String,
    /// The other leaves of the content (images, SMIL, …).
    pub media: Vec<Part>,
}

impl DeliverReq {
    /// Encodes as `multipart/related` (envelope, then the text and media in
    /// a `multipart/mixed`), like [`SubmitReq::encode`].
    pub fn encode(&self) -> Encoded {
        let v = self.version.unwrap_or_default();
        let xml = envelope(v, Some(&self.transaction_id), |x| {
            x.start_ns("DeliverReq", v);
            x.leaf("MM7Version", mm7_version_for(v, &self.mm7_version));
            x.opt_leaf("MMSRelayServerID", self.relay_server_id.as_deref());
            x.opt_leaf("LinkedID", self.linked_id.as_deref());
            x.address("Sender", &self.sender);
            if !self.recipients.is_empty() {
                x.start("Recipients");
                x.start("To");
                for r in &self.recipients {
                    x.leaf(r.element(), r.value());
                }
                x.end("To");
                x.end("Recipients");
            }
            x.opt_leaf("TimeStamp", self.time_stamp.as_deref());
            x.opt_leaf("Subject", self.subject.as_deref());
            x.empty("Content", &[("href", &format!("cid:{CONTENT_CID}"))]);
            x.end("DeliverReq");
        });
        let types: Vec<String> = self
            .media
            .iter()
            .map(|p| {
                p.header("content-type")
                    .unwrap_or("application/octet-stream")
                    .to_owned()
            })
            .collect();
        let ids: Vec<String> = self
            .media
            .iter()
            .enumerate()
            .map(|(i, p)| match p.content_id() {
                Some(id) => id.to_owned(),
                None => format!("media{i}@sluice"),
            })
            .collect();
        let media: Vec<MediaPart<'_>> = self
            .media
            .iter()
            .zip(types.iter().zip(&ids))
            .map(|(p, (t, id))| MediaPart {
                content_type: t,
                content_id: id,
                bytes: p.body.clone(),
            })
            .collect();
        encode_with_content(
            xml,
            &self.text,
            &media,
            MediaEncoding::Binary,
            Presentation::None,
        )
    }
}

// === decoding ===

/// Any decoded MM7 message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// `SubmitReq`.
    SubmitReq(Box<ReceivedSubmitReq>),
    /// `SubmitRsp`.
    SubmitRsp(SubmitRsp),
    /// `DeliverReq`.
    DeliverReq(Box<DeliverReq>),
    /// `DeliveryReportReq`.
    DeliveryReportReq(Box<DeliveryReportReq>),
    /// A generic response (`DeliveryReportRsp`, `DeliverRsp`, …).
    Rsp(Rsp),
    /// A SOAP Fault, or a bare `RSErrorRsp`/`VASPErrorRsp` (then
    /// `faultcode` is empty).
    Fault(Fault),
    /// Any other body element, unparsed.
    Other {
        /// `TransactionID`, if any.
        transaction_id: Option<String>,
        /// The body element's local name.
        name: String,
        /// The version named by its namespace.
        version: Option<Version>,
    },
}

impl Message {
    /// The body element's name.
    pub fn name(&self) -> &str {
        match self {
            Message::SubmitReq(_) => "SubmitReq",
            Message::SubmitRsp(_) => "SubmitRsp",
            Message::DeliverReq(_) => "DeliverReq",
            Message::DeliveryReportReq(_) => "DeliveryReportReq",
            Message::Rsp(r) => r.kind.element(),
            Message::Fault(_) => "Fault",
            Message::Other { name, .. } => name,
        }
    }

    /// The `TransactionID`, if there was one.
    pub fn transaction_id(&self) -> Option<&str> {
        match self {
            Message::SubmitReq(m) => Some(&m.transaction_id),
            Message::SubmitRsp(m) => Some(&m.transaction_id),
            Message::DeliverReq(m) => Some(&m.transaction_id),
            Message::DeliveryReportReq(m) => Some(&m.transaction_id),
            Message::Rsp(m) => Some(&m.transaction_id),
            Message::Fault(f) => f.transaction_id.as_deref(),
            Message::Other { transaction_id, .. } => transaction_id.as_deref(),
        }
    }

    /// The version named by the message's namespace, if supported.
    pub fn version(&self) -> Option<Version> {
        match self {
            Message::SubmitReq(m) => m.version,
            Message::SubmitRsp(m) => m.version,
            Message::DeliverReq(m) => m.version,
            Message::DeliveryReportReq(m) => m.version,
            Message::Rsp(m) => m.version,
            Message::Fault(f) => f.version,
            Message::Other { version, .. } => *version,
        }
    }
}

/// Decodes an HTTP body with its `Content-Type`. A body whose first line is
/// a MIME delimiter (`--boundary`) is parsed as multipart whatever the
/// header says, since some MMSCs label multipart bodies `text/xml`.
///
/// # Errors
/// [`Mm7Error::Mime`], [`Mm7Error::Xml`], [`Mm7Error::NotSoap`],
/// [`Mm7Error::Missing`], [`Mm7Error::BadValue`] or
/// [`Mm7Error::ContentNotFound`] for input that does not decode.
pub fn decode(content_type: Option<&str>, body: &Bytes) -> Result<Message, Mm7Error> {
    let ct = content_type.map(ContentType::parse).unwrap_or_default();
    let boundary = if ct.is_multipart() {
        ct.param("boundary")
            .ok_or(mime::MimeError::MissingBoundary)?
            .to_owned()
    } else {
        match sniff_boundary(body) {
            Some(b) => b,
            None => return decode_envelope(body, &[]),
        }
    };
    let parts = mime::parse_multipart(body, &boundary)?;
    let root = ct
        .param("start")
        .map(|s| {
            s.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .and_then(|start| {
            parts
                .iter()
                .position(|p| p.content_id() == Some(start.as_str()))
        })
        .unwrap_or(0);
    let rest: Vec<Part> = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != root)
        .map(|(_, p)| p.clone())
        .collect();
    decode_envelope(&parts[root].body, &rest)
}

/// The boundary of a multipart body sent without a multipart
/// `Content-Type` (it happens): a body whose first non-blank line is
/// `--<boundary>`.
fn sniff_boundary(body: &[u8]) -> Option<String> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = body[start..].strip_prefix(b"--")?;
    let end = rest.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let boundary = std::str::from_utf8(&rest[..end]).ok()?.trim_end();
    (!boundary.is_empty() && !boundary.contains('<')).then(|| boundary.to_owned())
}

/// Decodes a SOAP envelope; `parts` are the other MIME parts.
fn decode_envelope(xml: &[u8], parts: &[Part]) -> Result<Message, Mm7Error> {
    let root = parse_xml(xml)?;
    if root.name != "Envelope" {
        return Err(Mm7Error::NotSoap(format!(
            "root element is <{}>",
            root.name
        )));
    }
    let transaction_id = root
        .child("Header")
        .and_then(|h| h.child("TransactionID"))
        .map(|t| t.text.trim().to_owned());
    let tid_version = root
        .child("Header")
        .and_then(|h| h.child("TransactionID"))
        .and_then(Node::version);
    let body = root
        .child("Body")
        .ok_or(Mm7Error::NotSoap("no Body".into()))?;
    let msg = body
        .children
        .first()
        .ok_or(Mm7Error::NotSoap("empty Body".into()))?;
    let version = msg.version();
    let tid = || transaction_id.clone().unwrap_or_default();
    let mm7_version = || msg.text_of("MM7Version").unwrap_or_default();
    Ok(match msg.name.as_str() {
        "SubmitReq" => Message::SubmitReq(Box::new(decode_submit_req(msg, tid(), parts)?)),
        "SubmitRsp" => Message::SubmitRsp(SubmitRsp {
            transaction_id: tid(),
            version,
            mm7_version: mm7_version(),
            status: status_of(msg)?.ok_or(Mm7Error::Missing("Status"))?,
            message_id: msg.text_of("MessageID").filter(|s| !s.is_empty()),
        }),
        "DeliveryReportReq" => Message::DeliveryReportReq(Box::new(DeliveryReportReq {
            transaction_id: tid(),
            version,
            mm7_version: mm7_version(),
            relay_server_id: msg.text_of("MMSRelayServerID"),
            message_id: msg
                .text_of("MessageID")
                .ok_or(Mm7Error::Missing("MessageID"))?,
            recipient: msg
                .child("Recipient")
                .and_then(address_of)
                .ok_or(Mm7Error::Missing("Recipient"))?,
            sender: msg.child("Sender").and_then(address_of).unwrap_or_default(),
            date: msg.text_of("Date").or_else(|| msg.text_of("TimeStamp")),
            mm_status: MmStatus::parse(
                &msg.text_of("MMStatus")
                    .ok_or(Mm7Error::Missing("MMStatus"))?,
            ),
            status_text: msg.text_of("StatusText"),
        })),
        "DeliverReq" => {
            let (content_href, text, media) = content_of(msg, parts)?;
            Message::DeliverReq(Box::new(DeliverReq {
                transaction_id: tid(),
                version,
                mm7_version: mm7_version(),
                relay_server_id: msg.text_of("MMSRelayServerID"),
                linked_id: msg.text_of("LinkedID"),
                sender: msg
                    .child("Sender")
                    .and_then(address_of)
                    .ok_or(Mm7Error::Missing("Sender"))?,
                recipients: recipients_of(msg),
                time_stamp: msg.text_of("TimeStamp"),
                subject: msg.text_of("Subject"),
                content_href,
                text,
                media,
            }))
        }
        "DeliveryReportRsp" | "DeliverRsp" | "ReadReplyRsp" | "CancelRsp" | "ReplaceRsp" => {
            let kind = match msg.name.as_str() {
                "DeliveryReportRsp" => RspKind::DeliveryReport,
                "DeliverRsp" => RspKind::Deliver,
                "ReadReplyRsp" => RspKind::ReadReply,
                "CancelRsp" => RspKind::Cancel,
                _ => RspKind::Replace,
            };
            Message::Rsp(Rsp {
                kind,
                transaction_id: tid(),
                version,
                mm7_version: mm7_version(),
                status: status_of(msg)?.ok_or(Mm7Error::Missing("Status"))?,
            })
        }
        "Fault" => {
            let detail = msg.child("detail");
            let error_rsp = detail.and_then(|d| {
                d.children.iter().find_map(|c| match c.name.as_str() {
                    "RSErrorRsp" => Some((ErrorRspKind::Rs, c)),
                    "VASPErrorRsp" => Some((ErrorRspKind::Vasp, c)),
                    _ => None,
                })
            });
            let status = match detail {
                Some(d) => status_of(d)?,
                None => None,
            };
            Message::Fault(Fault {
                transaction_id,
                version: error_rsp.and_then(|(_, e)| e.version()).or(tid_version),
                faultcode: msg.text_of("faultcode").unwrap_or_default(),
                faultstring: msg.text_of("faultstring").unwrap_or_default(),
                error_rsp: error_rsp.map(|(k, _)| k),
                status,
            })
        }
        "RSErrorRsp" | "VASPErrorRsp" => Message::Fault(Fault {
            transaction_id,
            version,
            faultcode: String::new(),
            faultstring: String::new(),
            error_rsp: Some(if msg.name == "RSErrorRsp" {
                ErrorRspKind::Rs
            } else {
                ErrorRspKind::Vasp
            }),
            status: status_of(msg)?,
        }),
        other => Message::Other {
            transaction_id,
            name: other.to_owned(),
            version,
        },
    })
}

fn decode_submit_req(
    msg: &Node,
    transaction_id: String,
    parts: &[Part],
) -> Result<ReceivedSubmitReq, Mm7Error> {
    let sid = msg.child("SenderIdentification");
    let (content_href, text, media) = content_of(msg, parts)?;
    let delivery_report = match msg.text_of("DeliveryReport") {
        None => false,
        Some(v) => parse_bool(&v).ok_or_else(|| Mm7Error::bad_value("DeliveryReport", &v))?,
    };
    Ok(ReceivedSubmitReq {
        transaction_id,
        version: msg.version(),
        namespace: msg.ns.clone(),
        mm7_version: msg.text_of("MM7Version").unwrap_or_default(),
        vasp_id: sid.and_then(|s| s.text_of("VASPID")),
        vas_id: sid.and_then(|s| s.text_of("VASID")),
        sender: sid
            .and_then(|s| s.child("SenderAddress"))
            .and_then(address_of),
        recipients: recipients_of(msg),
        blind: msg
            .child("Recipients")
            .map(|r| {
                r.children
                    .iter()
                    .filter(|c| matches!(c.name.as_str(), "To" | "Cc" | "Bcc"))
                    .flat_map(|c| {
                        let bcc = c.name == "Bcc";
                        c.children
                            .iter()
                            .filter_map(address_element)
                            .map(move |_| bcc)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        service_code: msg.text_of("ServiceCode"),
        linked_id: msg.text_of("LinkedID"),
        service_fields: [
            "MessageClass",
            "Priority",
            "ReadReply",
            "DistributionIndicator",
            "EarliestDeliveryTime",
            "ChargedParty",
            "ReplyCharging",
        ]
        .map(|name| {
            if name != "ReplyCharging" {
                return msg.text_of(name);
            }
            msg.child(name).map(|rc| {
                format!(
                    "size={} deadline={}",
                    rc.attr("replyChargingSize").unwrap_or(""),
                    rc.attr("replyDeadline").unwrap_or("")
                )
            })
        }),
        delivery_report,
        expiry: msg.text_of("ExpiryDate"),
        subject: msg.text_of("Subject"),
        content_href,
        text,
        media,
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The content of a SubmitReq/DeliverReq: (href, text, other leaves). The
/// part named by `Content href`; without an href, every non-root part.
fn content_of(msg: &Node, parts: &[Part]) -> Result<(Option<String>, String, Vec<Part>), Mm7Error> {
    let href = msg
        .child("Content")
        .and_then(|c| c.attr("href"))
        .map(str::to_owned);
    let roots: Vec<Part> = match &href {
        Some(h) => vec![
            mime::find_part(parts, h)
                .ok_or_else(|| Mm7Error::ContentNotFound(h.chars().take(200).collect()))?
                .clone(),
        ],
        None => parts.to_vec(),
    };
    let mut texts = Vec::new();
    let mut media = Vec::new();
    for root in roots {
        for leaf in mime::leaves(root)? {
            let mime = leaf.content_type().mime;
            if mime == "text/plain" {
                texts.push(leaf.text());
            } else if mime == "application/smil" {
                // The layout, not content.
                continue;
            } else {
                media.push(leaf);
            }
        }
    }
    Ok((href, texts.join("\n"), media))
}

fn recipients_of(msg: &Node) -> Vec<Address> {
    msg.child("Recipients")
        .map(|r| {
            r.children
                .iter()
                .filter(|c| matches!(c.name.as_str(), "To" | "Cc" | "Bcc"))
                .flat_map(|c| c.children.iter().filter_map(address_element))
                .collect()
        })
        .unwrap_or_default()
}

/// The address inside an `addressType` element.
fn address_of(node: &Node) -> Option<Address> {
    node.children.iter().find_map(address_element).or_else(|| {
        let t = node.text.trim();
        (!t.is_empty()).then(|| Address::Number(t.to_owned()))
    })
}

/// An `AddressGroup` element itself.
fn address_element(node: &Node) -> Option<Address> {
    let v = node.text.trim().to_owned();
    match node.name.as_str() {
        "Number" => Some(Address::Number(v)),
        "ShortCode" => Some(Address::ShortCode(v)),
        "RFC2822Address" => Some(Address::Email(v)),
        _ => None,
    }
}

/// The `Status` found at or below `node`.
fn status_of(node: &Node) -> Result<Option<Status>, Mm7Error> {
    let Some(code_node) = node.descendant("StatusCode") else {
        return Ok(None);
    };
    let raw = code_node.text.trim();
    let code: u32 = raw
        .parse()
        .map_err(|_| Mm7Error::bad_value("StatusCode", raw))?;
    let status = node.descendant("Status");
    let text = status
        .and_then(|s| s.text_of("StatusText"))
        .or_else(|| {
            node.descendant("StatusText")
                .map(|t| t.text.trim().to_owned())
        })
        .unwrap_or_default();
    let details = status
        .and_then(|s| s.child("Details"))
        .or_else(|| node.descendant("Details"))
        .map(|d| d.all_text())
        .filter(|d| !d.is_empty());
    Ok(Some(Status {
        code,
        text,
        details,
    }))
}

// === the XML tree ===

/// A parsed element: enough of a DOM to read MM7 by local names.
#[derive(Debug, Default)]
struct Node {
    ns: Option<String>,
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The trimmed text of child `name`.
    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.trim().to_owned())
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first element named `name` at or below this one (depth first).
    fn descendant(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.descendant(name))
    }

    /// All text below this element, trimmed pieces joined by spaces.
    fn all_text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        let t = self.text.trim();
        if !t.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(t);
        }
        for c in &self.children {
            c.collect_text(out);
        }
    }

    fn version(&self) -> Option<Version> {
        self.ns.as_deref().and_then(Version::from_namespace)
    }
}

fn xml_err(e: impl fmt::Display) -> Mm7Error {
    Mm7Error::Xml(e.to_string())
}

/// Parses a whole XML document into its root element.
fn parse_xml(input: &[u8]) -> Result<Node, Mm7Error> {
    let text = std::str::from_utf8(input).map_err(|e| Mm7Error::Xml(format!("not UTF-8: {e}")))?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(xml_err)?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(n.0.to_owned()),
            _ => None,
        };
        if root.is_some() && matches!(event, Event::Start(_) | Event::Empty(_)) {
            return Err(Mm7Error::Xml("content after the root element".into()));
        }
        match event {
            Event::Start(e) => {
                nodes += 1;
                if stack.len() >= MAX_XML_DEPTH || nodes > MAX_XML_NODES {
                    return Err(Mm7Error::Xml("XML too deep or too large".into()));
                }
                stack.push(element(ns, &e)?);
            }
            Event::Empty(e) => {
                nodes += 1;
                if nodes > MAX_XML_NODES {
                    return Err(Mm7Error::Xml("XML too large".into()));
                }
                let node = element(ns, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or(Mm7Error::Xml("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                } else if !t.trim().is_empty() {
                    return Err(Mm7Error::Xml("text outside the root element".into()));
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let c: Cow<'_, str> = match r.resolve_char_ref().map_err(xml_err)? {
                    Some(c) => Cow::Owned(c.to_string()),
                    None => Cow::Borrowed(
                        quick_xml::escape::resolve_predefined_entity(&r)
                            .ok_or_else(|| Mm7Error::Xml(format!("unknown entity &{};", &*r)))?,
                    ),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::DocType(_) => return Err(Mm7Error::Xml("DTDs are not accepted".into())),
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(Mm7Error::Xml("document ends inside an element".into()));
    }
    root.ok_or(Mm7Error::Xml("no root element".into()))
}

fn element(ns: Option<String>, e: &BytesStart<'_>) -> Result<Node, Mm7Error> {
    let name = e.local_name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(xml_err)?;
        let key = a.key.0;
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let local = key.rsplit(':').next().unwrap_or(key).to_owned();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(xml_err)?
            .into_owned();
        attrs.push((local, value));
    }
    Ok(Node {
        ns,
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

// === the XML writer ===

/// quick-xml's writer over a `Vec`: writes cannot fail, so results are
/// dropped.
struct Xml {
    w: Writer<Vec<u8>>,
}

impl Xml {
    fn write(&mut self, e: Event<'_>) {
        // Writing into a Vec<u8> cannot fail.
        let _ = self.w.write_event(e);
    }

    fn start_with(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, xml_safe(v).as_ref()));
        }
        self.write(Event::Start(s));
    }

    fn start(&mut self, name: &str) {
        self.start_with(name, &[]);
    }

    /// Starts an element with the version's namespace as default namespace.
    fn start_ns(&mut self, name: &str, v: Version) {
        self.start_with(name, &[("xmlns", v.namespace())]);
    }

    fn end(&mut self, name: &str) {
        self.write(Event::End(BytesEnd::new(name)));
    }

    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, xml_safe(v).as_ref()));
        }
        self.write(Event::Empty(s));
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.start(name);
        let safe = xml_safe(text);
        self.write(Event::Text(BytesText::new(&safe)));
        self.end(name);
    }

    fn opt_leaf(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, t);
        }
    }

    fn address(&mut self, name: &str, a: &Address) {
        self.start(name);
        self.leaf(a.element(), a.value());
        self.end(name);
    }

    fn status(&mut self, s: &Status) {
        self.start("Status");
        self.leaf("StatusCode", &s.code.to_string());
        self.leaf("StatusText", &s.text);
        if let Some(d) = &s.details {
            // `Details` is element-only (anyDataType): wrap the text.
            self.start("Details");
            self.leaf("Detail", d);
            self.end("Details");
        }
        self.end("Status");
    }
}

/// Replaces characters XML 1.0 does not allow with U+FFFD.
fn xml_safe(s: &str) -> Cow<'_, str> {
    let ok = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if s.chars().all(ok) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if ok(c) {
                        c
                    } else {
                        char::REPLACEMENT_CHARACTER
                    }
                })
                .collect(),
        )
    }
}

/// Writes a SOAP 1.1 envelope: the declaration, a header with the
/// `TransactionID` (when given) and a body written by `body`.
fn envelope(v: Version, transaction_id: Option<&str>, body: impl FnOnce(&mut Xml)) -> String {
    let mut x = Xml {
        w: Writer::new(Vec::with_capacity(1024)),
    };
    x.write(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    x.start_with("env:Envelope", &[("xmlns:env", SOAP_ENV_NS)]);
    if let Some(tid) = transaction_id {
        x.start("env:Header");
        x.start_with(
            "mm7:TransactionID",
            &[("xmlns:mm7", v.namespace()), ("env:mustUnderstand", "1")],
        );
        let safe = xml_safe(tid);
        x.write(Event::Text(BytesText::new(&safe)));
        x.end("mm7:TransactionID");
        x.end("env:Header");
    }
    x.start("env:Body");
    body(&mut x);
    x.end("env:Body");
    x.end("env:Envelope");
    // Only valid UTF-8 was written.
    String::from_utf8(x.w.into_inner()).unwrap_or_default()
}

fn mm7_version_for(v: Version, requested: &str) -> &str {
    if v.accepts(requested) {
        requested.trim()
    } else {
        v.mm7_version()
    }
}

fn plain(xml: String) -> Encoded {
    Encoded {
        content_type: "text/xml; charset=utf-8".into(),
        body: Bytes::from(xml),
    }
}

// === dates ===

/// Formats a time as `xs:dateTime` in UTC, to the second:
/// `2024-05-06T07:08:09Z`. Times before 1970 are written as the epoch.
pub fn format_date_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Formats a duration as `xs:duration` in whole seconds (`PT3600S`).
pub fn format_duration(d: Duration) -> String {
    format!("PT{}S", d.as_secs())
}

/// Parses an `xs:dateTime` (`2024-05-06T07:08:09`, optional fraction,
/// optional `Z` or `±hh:mm`; no zone is taken as UTC). `None` when it does
/// not parse or lies before 1970.
pub fn parse_date_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 24 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let offset = match s.get(i..)? {
        "" | "Z" => 0,
        z if z.len() == 6
            && (z.starts_with('+') || z.starts_with('-'))
            && z.as_bytes()[3] == b':' =>
        {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if z.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    // Months and days were checked to be 1..=12 and 1..=31 above.
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}
