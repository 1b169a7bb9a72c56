//! SMPP 3.4 message text: the choice between GSM 03.38 and UCS-2, the split
//! of long texts into concatenated parts, the decoding of received
//! `short_message`s and the reassembly of concatenated ones.
//!
//! This module owns bytes-of-text only. It knows no PDU types: the session
//! copies a [`Segment`]'s fields into `submit_sm` (`data_coding`, the UDHI bit
//! 0x40 of `esm_class`, `short_message`, the SAR TLVs 0x020C/0x020E/0x020F
//! and the `message_payload` TLV 0x0424), and builds an [`Incoming`] from a
//! received `deliver_sm` for [`Reassembler`]. Everything here is a pure
//! function on the hot path: [`plan`] allocates nothing, and [`encode`] makes
//! one buffer for all parts of a message (each `short_message` is a
//! zero-copy slice of it).
//!
//! # Encoding
//!
//! GSM 7-bit (`data_coding` 0x00) when every character is in the GSM 03.38
//! default alphabet or its extension table (3GPP TS 23.038 §6.2.1, §6.2.1.1);
//! extension characters (`^ { } \ [ ~ ] | €` and form feed) are sent as the
//! escape 0x1B plus a code and count two septets. Anything else makes the
//! whole text UCS-2 (`data_coding` 0x08), written as UTF-16BE so characters
//! outside the BMP (emoji) travel as surrogate pairs.
//!
//! # Limits
//!
//! | units per part       | single | [`Concat::Udh8`] | [`Concat::Udh16`] | [`Concat::Sar`] | [`Concat::Payload`] |
//! |----------------------|--------|------------------|-------------------|-----------------|---------------------|
//! | GSM-7 septets        | 160    | 153              | 152               | 153             | whole text, one TLV |
//! | UCS-2 UTF-16 units   | 70     | 67               | 66                | 67              | whole text, one TLV |
//!
//! A part never ends inside an escape pair or a surrogate pair; it is one
//! unit short instead. At most [`MAX_SEGMENTS`] parts; texts longer than
//! [`MAX_TEXT_CHARS`] Unicode scalar values are refused before anything else.
//!
//! # Decisions
//!
//! - **SAR parts are sized like 8-bit UDH parts (153 / 67), not 160 / 70.**
//!   Departure from the brief that asked for 160: the SAR TLVs carry no UDH
//!   on the SMPP link, but the SMSC turns them into a concatenation UDH on
//!   the air interface (at least 6 octets of the 140), so a 160-septet part
//!   would be rejected or truncated there. Jasmin sizes SAR parts the same
//!   way. [`Concat::Payload`] leaves the split to the SMSC entirely.
//! - **Empty text is allowed**: it yields one segment with an empty
//!   `short_message` (and, for [`Concat::Payload`], no `message_payload` TLV,
//!   since some SMSCs refuse a zero-length TLV).
//! - **Packed GSM-7** ([`TextOptions::gsm7_packed`]) packs eight septets into
//!   seven octets, with fill bits after a UDH so the text starts on a septet
//!   boundary (3GPP TS 23.040 §9.2.3.24). When the last octet has seven spare
//!   bits they hold CR, and a decoder drops a CR found in that position
//!   (TS 23.038 §6.1.2.3.1); [`decode`] does so. Hence, in packed mode only:
//!   a part other than the last never ends with a CR that exactly fills its
//!   last octet (the CR moves to the next part), and a text whose *last*
//!   character is such a CR loses that trailing CR at the receiver. The
//!   spec's alternative (send CR CR) cannot fit a full part; a trailing CR is
//!   invisible either way.
//! - **Decoding is strict about encodings and lenient about content**: an
//!   unknown `data_coding` or an octet above 0x7F in GSM-7/IA5 is an error,
//!   an odd UCS-2 length is an error, but a lone surrogate becomes U+FFFD,
//!   an unknown extension code shows the default-alphabet character (as
//!   TS 23.038 asks) and a dangling escape shows a space. Decoding never
//!   panics on arbitrary bytes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::model::MAX_TEXT_CHARS;

#[cfg(test)]
mod tests;

/// Most parts one concatenated message may have (the UDH and SAR counters
/// are one octet).
pub const MAX_SEGMENTS: usize = 255;

/// Septets in a single (unconcatenated) GSM-7 message.
pub const GSM7_SINGLE_SEPTETS: usize = 160;

/// UTF-16 code units in a single (unconcatenated) UCS-2 message.
pub const UCS2_SINGLE_UNITS: usize = 70;

/// The escape septet that switches to the GSM 03.38 extension table.
const ESC: u8 = 0x1B;

/// CR, the padding septet of packed GSM-7.
const CR: u8 = 0x0D;

/// Marks an extension-table code in [`gsm7_code`]'s result.
const EXT: u8 = 0x80;

/// [`gsm7_code`]'s result for a character outside GSM 03.38.
const NOT_GSM7: u8 = 0xFF;

/// The GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), indexed by
/// septet. 0x1B is the escape to the extension table; it is never produced
/// from a character and decodes as a space when it cannot be an escape.
const GSM7_DEFAULT: [char; 128] = [
    // 0x00
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    // 0x10
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É',
    // 0x20
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    // 0x30
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    // 0x40
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    // 0x50
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    // 0x60
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    // 0x70
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The GSM 03.38 extension table (3GPP TS 23.038 §6.2.1.1): code after the
/// escape 0x1B, and its character.
const GSM7_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// [`gsm7_code`] for ASCII, built from the two tables above.
const ASCII_TO_GSM7: [u8; 128] = ascii_to_gsm7();

/// Septets an ASCII character takes in GSM 03.38: 1, 2 for an extension
/// character, 0 for one outside it. ASCII texts (most marketing) are
/// measured and written byte by byte from these two tables, without
/// decoding UTF-8 (`cargo bench --bench text`).
const ASCII_SEPTETS: [u8; 128] = ascii_septets();

const fn ascii_septets() -> [u8; 128] {
    let mut septets = [0; 128];
    let mut i = 0;
    while i < 128 {
        septets[i] = match ASCII_TO_GSM7[i] {
            NOT_GSM7 => 0,
            code if code & EXT != 0 => 2,
            _ => 1,
        };
        i += 1;
    }
    septets
}

const fn ascii_to_gsm7() -> [u8; 128] {
    let mut map = [NOT_GSM7; 128];
    let mut i = 0;
    while i < 128 {
        let c = GSM7_DEFAULT[i] as u32;
        if i != ESC as usize && c < 128 {
            map[c as usize] = i as u8;
        }
        i += 1;
    }
    let mut j = 0;
    while j < GSM7_EXTENSION.len() {
        let (code, c) = GSM7_EXTENSION[j];
        if (c as u32) < 128 {
            map[c as usize] = EXT | code;
        }
        j += 1;
    }
    map
}

/// The GSM 03.38 code of `c`: a default-alphabet septet, `EXT | code` for an
/// extension character, or [`NOT_GSM7`].
#[inline]
fn gsm7_code(c: char) -> u8 {
    if c.is_ascii() {
        return ASCII_TO_GSM7[c as usize];
    }
    match c {
        '£' => 0x01,
        '¥' => 0x03,
        'è' => 0x04,
        'é' => 0x05,
        'ù' => 0x06,
        'ì' => 0x07,
        'ò' => 0x08,
        'Ç' => 0x09,
        'Ø' => 0x0B,
        'ø' => 0x0C,
        'Å' => 0x0E,
        'å' => 0x0F,
        'Δ' => 0x10,
        'Φ' => 0x12,
        'Γ' => 0x13,
        'Λ' => 0x14,
        'Ω' => 0x15,
        'Π' => 0x16,
        'Ψ' => 0x17,
        'Σ' => 0x18,
        'Θ' => 0x19,
        'Ξ' => 0x1A,
        'Æ' => 0x1C,
        'æ' => 0x1D,
        'ß' => 0x1E,
        'É' => 0x1F,
        '¤' => 0x24,
        '¡' => 0x40,
        'Ä' => 0x5B,
        'Ö' => 0x5C,
        'Ñ' => 0x5D,
        'Ü' => 0x5E,
        '§' => 0x5F,
        '¿' => 0x60,
        'ä' => 0x7B,
        'ö' => 0x7C,
        'ñ' => 0x7D,
        'ü' => 0x7E,
        'à' => 0x7F,
        '€' => EXT | 0x65,
        _ => NOT_GSM7,
    }
}

/// Septets a GSM 03.38 code takes: two for an extension character.
#[inline]
fn gsm7_septets(code: u8) -> usize {
    if code & EXT != 0 { 2 } else { 1 }
}

/// The character an extension code stands for; an unknown code shows the
/// default-alphabet character (TS 23.038 §6.2.1.1), 0x1B (a further escape)
/// a space.
fn gsm7_extension_char(code: u8) -> char {
    GSM7_EXTENSION
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(GSM7_DEFAULT[usize::from(code & 0x7F)], |(_, ch)| *ch)
}

// === impl TextError ===

/// Why a text cannot be encoded, or received bytes cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// The text has more than [`MAX_TEXT_CHARS`] characters. Returned by
    /// [`plan`], [`plan_with`] and [`encode`].
    #[error("text is too long: {chars} characters, at most {max} are allowed")]
    TooLong {
        /// Unicode scalar values in the text.
        chars: usize,
        /// The limit, [`MAX_TEXT_CHARS`].
        max: usize,
    },
    /// The text needs more than [`MAX_SEGMENTS`] parts. Returned by
    /// [`plan`], [`plan_with`] and [`encode`] (unreachable while
    /// [`MAX_TEXT_CHARS`] is 1,600).
    #[error("text needs {segments} parts, at most 255 fit in a concatenated message")]
    TooManySegments {
        /// Parts the text would need.
        segments: usize,
    },
    /// The `data_coding` is not one this gateway decodes (0x00, 0x01, 0x03,
    /// 0x08). Returned by [`decode`], [`decode_user_data`],
    /// [`Incoming::decode`] and [`Reassembler::push`].
    #[error("unsupported data_coding 0x{data_coding:02X}")]
    InvalidEncoding {
        /// The `data_coding` received.
        data_coding: u8,
    },
    /// The bytes are not valid for their encoding or header. Returned by the
    /// decoding functions, [`split_udh`] and [`Reassembler::push`].
    #[error("malformed message text: {0}")]
    Malformed(&'static str),
}

// === impl Encoding ===

/// The alphabet a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 default alphabet plus extension table, `data_coding` 0x00.
    Gsm7,
    /// UCS-2 (in practice UTF-16BE, surrogate pairs included),
    /// `data_coding` 0x08.
    Ucs2,
}

impl Encoding {
    /// The SMPP `data_coding` value: 0x00 for GSM-7 (SMSC default
    /// alphabet), 0x08 for UCS-2.
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0x00,
            Encoding::Ucs2 => 0x08,
        }
    }

    /// Units that fit in one unconcatenated message.
    fn single_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_SINGLE_SEPTETS,
            Encoding::Ucs2 => UCS2_SINGLE_UNITS,
        }
    }

    /// Units one character takes: septets or UTF-16 code units.
    #[inline]
    fn units(self, c: char) -> usize {
        match self {
            Encoding::Gsm7 => gsm7_septets(gsm7_code(c)),
            Encoding::Ucs2 => c.len_utf16(),
        }
    }
}

// === impl Concat ===

/// How a long text is split into linked parts; a per-carrier setting.
///
/// # Defaults
///
/// [`Concat::Udh8`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Concat {
    /// UDH with an 8-bit reference: `05 00 03 ref total seq`, UDHI set.
    #[default]
    Udh8,
    /// UDH with a 16-bit reference: `06 08 04 refhi reflo total seq`, UDHI
    /// set. One unit less per part than [`Concat::Udh8`].
    Udh16,
    /// No UDH; [`Segment::sar`] carries what the session sends as the TLVs
    /// `sar_msg_ref_num` (0x020C), `sar_total_segments` (0x020E) and
    /// `sar_segment_seqnum` (0x020F). Parts are sized like [`Concat::Udh8`]
    /// because the SMSC adds a UDH on the air interface.
    Sar,
    /// One segment whose `message_payload` TLV (0x0424) holds the whole
    /// encoded text, `short_message` empty; the SMSC splits it.
    Payload,
}

impl Concat {
    /// Octets of UDH in each part.
    fn udh_len(self) -> usize {
        match self {
            Concat::Udh8 => 6,
            Concat::Udh16 => 7,
            Concat::Sar | Concat::Payload => 0,
        }
    }

    /// Units in each part of a concatenated message.
    fn part_limit(self, encoding: Encoding) -> usize {
        match (encoding, self) {
            (Encoding::Gsm7, Concat::Udh16) => 152,
            (Encoding::Gsm7, _) => 153,
            (Encoding::Ucs2, Concat::Udh16) => 66,
            (Encoding::Ucs2, _) => 67,
        }
    }
}

/// Per-carrier choices for [`encode`].
///
/// # Defaults
///
/// 8-bit UDH concatenation, unpacked GSM-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TextOptions {
    /// How long texts are split.
    pub concat: Concat,
    /// Pack GSM-7 septets 8 into 7 octets. Default `false`: one septet per
    /// octet, as most SMSCs expect with `data_coding` 0.
    pub gsm7_packed: bool,
}

/// What a text will cost, without encoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextPlan {
    /// The alphabet the text will be sent in.
    pub encoding: Encoding,
    /// GSM-7 septets (extension characters count two) or UTF-16 code units.
    pub units: usize,
    /// [`Segment`]s [`encode`] returns: parts of a concatenated message, or
    /// 1 for [`Concat::Payload`].
    pub segments: usize,
}

/// Concatenation header values of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConcatInfo {
    /// Reference shared by all parts; an 8-bit UDH carries its low octet.
    pub reference: u16,
    /// Number of parts, 1..=255.
    pub total: u8,
    /// This part's number, 1..=`total`.
    pub seq: u8,
}

/// One `submit_sm`'s worth of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `data_coding`: 0x00 (GSM-7) or 0x08 (UCS-2).
    pub data_coding: u8,
    /// Set the UDHI bit (0x40) in `esm_class`: `short_message` starts with a
    /// UDH.
    pub esm_class_udhi: bool,
    /// UDH (if any) followed by the encoded text; empty with
    /// [`Concat::Payload`].
    pub short_message: Bytes,
    /// SAR TLV values, for [`Concat::Sar`] with more than one part.
    pub sar: Option<ConcatInfo>,
    /// The `message_payload` TLV, for [`Concat::Payload`] (`None` when the
    /// text is empty).
    pub message_payload: Option<Bytes>,
}

impl Segment {
    /// This segment seen as received, e.g. by the SMSC simulator.
    pub fn as_incoming(&self, gsm7_packed: bool) -> Incoming<'_> {
        Incoming {
            data_coding: self.data_coding,
            esm_class_udhi: self.esm_class_udhi,
            short_message: &self.short_message,
            sar: self.sar,
            message_payload: self.message_payload.as_deref(),
            gsm7_packed,
        }
    }
}

// === planning ===

/// Encoding and unit count of a text, in one pass.
#[derive(Debug, Clone, Copy)]
struct Analysis {
    encoding: Encoding,
    units: usize,
}

fn analyze(text: &str) -> Result<Analysis, TextError> {
    if text.is_ascii() {
        analyze_ascii(text.as_bytes())
    } else {
        analyze_chars(text)
    }
}

/// [`analyze`] character by character, for any text.
fn analyze_chars(text: &str) -> Result<Analysis, TextError> {
    let mut chars = 0usize;
    let mut septets = 0usize;
    let mut utf16 = 0usize;
    let mut gsm7 = true;
    for c in text.chars() {
        chars += 1;
        utf16 += c.len_utf16();
        if gsm7 {
            match gsm7_code(c) {
                NOT_GSM7 => gsm7 = false,
                code => septets += gsm7_septets(code),
            }
        }
    }
    if chars > MAX_TEXT_CHARS {
        return Err(TextError::TooLong {
            chars,
            max: MAX_TEXT_CHARS,
        });
    }
    Ok(if gsm7 {
        Analysis {
            encoding: Encoding::Gsm7,
            units: septets,
        }
    } else {
        Analysis {
            encoding: Encoding::Ucs2,
            units: utf16,
        }
    })
}

/// [`analyze`] for an ASCII text: one character, one byte, one UTF-16 unit.
fn analyze_ascii(text: &[u8]) -> Result<Analysis, TextError> {
    debug_assert!(text.is_ascii());
    if text.len() > MAX_TEXT_CHARS {
        return Err(TextError::TooLong {
            chars: text.len(),
            max: MAX_TEXT_CHARS,
        });
    }
    // Counted with comparisons, not looked up in `ASCII_SEPTETS`: the
    // compiler can run comparisons over a vector of bytes at once (a
    // table lookup per byte it cannot). `analyze` went from 1,396 to 780
    // instructions per call on the bench's mix, other texts included
    // (callgrind of the gateway alone, `docs/PERFORMANCE.md`). Blocks of
    // 240 bytes (a multiple of 16, the SSE2 width) keep the `u8` counts
    // from overflowing. A test holds both predicates to the table.
    let mut extension = 0usize;
    let mut outside = false;
    for block in text.chunks(240) {
        let (mut ext, mut out) = (0u8, 0u8);
        for &b in block {
            ext += u8::from(is_ascii_extension(b));
            out |= u8::from(is_ascii_outside_gsm7(b));
        }
        extension += usize::from(ext);
        outside |= out != 0;
    }
    let septets = text.len() + extension;
    Ok(if outside {
        Analysis {
            encoding: Encoding::Ucs2,
            units: text.len(),
        }
    } else {
        Analysis {
            encoding: Encoding::Gsm7,
            units: septets,
        }
    })
}

/// True for an ASCII character of GSM 03.38's extension table (two
/// septets: the escape and its code).
#[inline]
fn is_ascii_extension(b: u8) -> bool {
    matches!(
        b,
        0x0C | b'^' | b'{' | b'}' | b'\\' | b'[' | b'~' | b']' | b'|'
    )
}

/// True for an ASCII character GSM 03.38 lacks: the control characters
/// but line feed, carriage return and form feed, the grave accent, DEL.
#[inline]
fn is_ascii_outside_gsm7(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\n' | b'\r' | 0x0C)) || b == b'`' || b == 0x7F
}

/// Fill bits after a UDH of `udh_len` octets so packed septets start on a
/// septet boundary (TS 23.040 §9.2.3.24).
#[inline]
fn fill_bits(udh_len: usize) -> usize {
    (7 - (udh_len * 8) % 7) % 7
}

/// Octets of encoded text (UDH excluded) for `units` units.
#[inline]
fn payload_len(encoding: Encoding, units: usize, udh_len: usize, packed: bool) -> usize {
    match encoding {
        Encoding::Ucs2 => 2 * units,
        Encoding::Gsm7 if packed => (fill_bits(udh_len) + 7 * units).div_ceil(8),
        Encoding::Gsm7 => units,
    }
}

/// The parts of a concatenated message: `(start, end, units)` with byte
/// offsets into the text.
#[derive(Debug, Clone)]
struct Parts<'a> {
    text: &'a str,
    pos: usize,
    encoding: Encoding,
    limit: usize,
    /// Fill bits when the parts are packed GSM-7.
    packed_fill: Option<usize>,
    /// The text is ASCII: measured byte by byte.
    ascii: bool,
}

impl<'a> Parts<'a> {
    fn new(text: &'a str, encoding: Encoding, opts: &TextOptions) -> Self {
        let packed = opts.gsm7_packed && encoding == Encoding::Gsm7;
        Parts {
            text,
            pos: 0,
            encoding,
            limit: opts.concat.part_limit(encoding),
            packed_fill: packed.then(|| fill_bits(opts.concat.udh_len())),
            ascii: text.is_ascii(),
        }
    }

    /// The end of the part that starts at `start` (`rest` is the text from
    /// there), its units, and whether its last character is a CR.
    fn measure(&self, rest: &str, start: usize) -> (usize, usize, bool) {
        let (mut end, mut units, mut ends_with_cr) = (start, 0, false);
        if self.ascii {
            for &b in rest.as_bytes() {
                let cost = match self.encoding {
                    Encoding::Gsm7 => usize::from(ASCII_SEPTETS[usize::from(b)]),
                    Encoding::Ucs2 => 1,
                };
                if units + cost > self.limit {
                    break;
                }
                units += cost;
                end += 1;
                ends_with_cr = b == b'\r';
            }
            return (end, units, ends_with_cr);
        }
        for c in rest.chars() {
            let cost = self.encoding.units(c);
            if units + cost > self.limit {
                break;
            }
            units += cost;
            end += c.len_utf8();
            ends_with_cr = c == '\r';
        }
        (end, units, ends_with_cr)
    }
}

impl Iterator for Parts<'_> {
    type Item = (usize, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        let rest = self.text.get(start..).filter(|r| !r.is_empty())?;
        let (mut end, mut units, ends_with_cr) = self.measure(rest, start);
        // Packed: a CR exactly filling the last octet reads as padding, so a
        // part that is not the last leaves it to the next part.
        if let Some(fill) = self.packed_fill
            && ends_with_cr
            && end < self.text.len()
            && units > 1
            && (fill + 7 * units).is_multiple_of(8)
        {
            end -= 1;
            units -= 1;
        }
        self.pos = end;
        Some((start, end, units))
    }
}

/// How [`encode`] will lay a text out.
enum Shape<'a> {
    /// One segment, no concatenation: `short_message` or `message_payload`.
    Single,
    /// Several parts: the parts, their count and total octets (UDHs
    /// included).
    Multi {
        parts: Parts<'a>,
        count: usize,
        octets: usize,
    },
}

fn shape<'a>(text: &'a str, a: Analysis, opts: &TextOptions) -> Result<Shape<'a>, TextError> {
    if opts.concat == Concat::Payload || a.units <= a.encoding.single_limit() {
        return Ok(Shape::Single);
    }
    let packed = opts.gsm7_packed && a.encoding == Encoding::Gsm7;
    let udh_len = opts.concat.udh_len();
    let parts = Parts::new(text, a.encoding, opts);
    let (count, octets) = parts.clone().fold((0, 0), |(n, len), (_, _, units)| {
        (
            n + 1,
            len + udh_len + payload_len(a.encoding, units, udh_len, packed),
        )
    });
    if count > MAX_SEGMENTS {
        return Err(TextError::TooManySegments { segments: count });
    }
    Ok(Shape::Multi {
        parts,
        count,
        octets,
    })
}

/// Counts for admission with the default [`TextOptions`] (8-bit UDH,
/// unpacked): encoding, units and parts. Encodes nothing, allocates nothing.
///
/// # Errors
///
/// [`TextError::TooLong`] above [`MAX_TEXT_CHARS`] characters.
pub fn plan(text: &str) -> Result<TextPlan, TextError> {
    plan_with(text, &TextOptions::default())
}

/// [`plan`] for a carrier's options: `segments` is exactly the number of
/// [`Segment`]s [`encode`] returns with `opts`.
///
/// # Errors
///
/// [`TextError::TooLong`] above [`MAX_TEXT_CHARS`] characters,
/// [`TextError::TooManySegments`] above [`MAX_SEGMENTS`] parts.
pub fn plan_with(text: &str, opts: &TextOptions) -> Result<TextPlan, TextError> {
    let a = analyze(text)?;
    let segments = match shape(text, a, opts)? {
        Shape::Single => 1,
        Shape::Multi { count, .. } => count,
    };
    Ok(TextPlan {
        encoding: a.encoding,
        units: a.units,
        segments,
    })
}

// === encoding ===

/// Packs septets LSB first, 8 into 7 octets (TS 23.038 §6.1.2.1.1).
struct Packer {
    acc: u16,
    bits: usize,
}

impl Packer {
    /// Starts after `fill` zero bits.
    fn new(fill: usize) -> Self {
        Packer { acc: 0, bits: fill }
    }

    #[inline]
    fn push(&mut self, buf: &mut BytesMut, septet: u8) {
        self.acc |= u16::from(septet) << self.bits;
        self.bits += 7;
        if self.bits >= 8 {
            buf.put_u8(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// Flushes the last octet; seven spare bits hold CR (TS 23.038 §6.1.2.3.1).
    fn finish(mut self, buf: &mut BytesMut) {
        if self.bits == 1 {
            self.push(buf, CR);
        } else if self.bits > 0 {
            buf.put_u8(self.acc as u8);
        }
    }
}

/// Writes `text` (already known to fit `encoding`) after a UDH of `udh_len`
/// octets.
fn write_text(buf: &mut BytesMut, text: &str, encoding: Encoding, udh_len: usize, packed: bool) {
    match encoding {
        Encoding::Ucs2 => write_ucs2(buf, text),
        Encoding::Gsm7 if packed => {
            let mut packer = Packer::new(fill_bits(udh_len));
            for c in text.chars() {
                let code = gsm7_code(c);
                if code & EXT != 0 {
                    packer.push(buf, ESC);
                }
                packer.push(buf, code & 0x7F);
            }
            packer.finish(buf);
        }
        Encoding::Gsm7 if text.is_ascii() => write_ascii_gsm7(buf, text),
        Encoding::Gsm7 => write_gsm7_chars(buf, text),
    }
}

/// Writes an ASCII text known to be GSM-7, one septet per octet: mapped in
/// one pass when it holds no extension character, else as any text is.
fn write_ascii_gsm7(buf: &mut BytesMut, text: &str) {
    debug_assert!(text.is_ascii());
    let start = buf.len();
    buf.resize(start + text.len(), 0);
    let mut codes = 0u8;
    for (out, &b) in buf[start..].iter_mut().zip(text.as_bytes()) {
        let code = ASCII_TO_GSM7[usize::from(b)];
        codes |= code;
        *out = code;
    }
    if codes & EXT == 0 {
        return;
    }
    buf.truncate(start);
    write_gsm7_chars(buf, text);
}

/// Writes a GSM-7 text character by character, one septet per octet (into
/// the capacity `encode` sized exactly).
fn write_gsm7_chars(buf: &mut BytesMut, text: &str) {
    for c in text.chars() {
        let code = gsm7_code(c);
        if code & EXT != 0 {
            buf.put_u8(ESC);
        }
        buf.put_u8(code & 0x7F);
    }
}

/// Writes a text as UTF-16BE, surrogate pairs included.
fn write_ucs2(buf: &mut BytesMut, text: &str) {
    let mut units = [0u16; 2];
    for c in text.chars() {
        for unit in c.encode_utf16(&mut units) {
            buf.put_u16(*unit);
        }
    }
}

/// Encodes `text` into the segments to submit, choosing GSM-7 or UCS-2 and
/// splitting per `opts` (see the module doc for the limits). `reference`
/// links the parts of one message (an 8-bit UDH carries its low octet); the
/// caller picks it, e.g. from a per-destination counter.
///
/// Single-part messages carry no UDH and no SAR values. Empty text gives one
/// segment with an empty `short_message`.
///
/// # Errors
///
/// [`TextError::TooLong`] above [`MAX_TEXT_CHARS`] characters,
/// [`TextError::TooManySegments`] above [`MAX_SEGMENTS`] parts.
pub fn encode(text: &str, opts: &TextOptions, reference: u16) -> Result<Vec<Segment>, TextError> {
    let a = analyze(text)?;
    let encoding = a.encoding;
    let data_coding = encoding.data_coding();
    let packed = opts.gsm7_packed && encoding == Encoding::Gsm7;
    match shape(text, a, opts)? {
        Shape::Single => {
            let mut buf = BytesMut::with_capacity(payload_len(encoding, a.units, 0, packed));
            write_text(&mut buf, text, encoding, 0, packed);
            let encoded = buf.freeze();
            let (short_message, message_payload) = if opts.concat == Concat::Payload {
                (Bytes::new(), Some(encoded).filter(|p| !p.is_empty()))
            } else {
                (encoded, None)
            };
            Ok(vec![Segment {
                data_coding,
                esm_class_udhi: false,
                short_message,
                sar: None,
                message_payload,
            }])
        }
        Shape::Multi {
            parts,
            count,
            octets,
        } => {
            // `count <= MAX_SEGMENTS` was checked by `shape`.
            let total = count as u8;
            let udh_len = opts.concat.udh_len();
            let mut buf = BytesMut::with_capacity(octets);
            let mut segments = Vec::with_capacity(count);
            for (seq, (start, end, _)) in (1..=total).zip(parts) {
                let info = ConcatInfo {
                    reference,
                    total,
                    seq,
                };
                match opts.concat {
                    Concat::Udh8 => {
                        buf.put_slice(&[0x05, 0x00, 0x03, reference as u8, total, seq]);
                    }
                    Concat::Udh16 => {
                        let [hi, lo] = reference.to_be_bytes();
                        buf.put_slice(&[0x06, 0x08, 0x04, hi, lo, total, seq]);
                    }
                    Concat::Sar | Concat::Payload => {}
                }
                write_text(&mut buf, &text[start..end], encoding, udh_len, packed);
                segments.push(Segment {
                    data_coding,
                    esm_class_udhi: udh_len > 0,
                    // Shares `buf`'s allocation: one buffer per message.
                    short_message: buf.split().freeze(),
                    sar: (opts.concat == Concat::Sar).then_some(info),
                    message_payload: None,
                });
            }
            Ok(segments)
        }
    }
}

// === decoding ===

/// Reads a User Data Header (the `short_message` or `message_payload` of a
/// PDU with the UDHI bit set): the concatenation IE, if any, and the offset
/// where the text starts. Understands IEI 0x00 (8-bit reference) and 0x08
/// (16-bit reference) and skips other IEs; a concatenation IE with a zero
/// total or a sequence number outside 1..=total is ignored, and of several
/// the last one counts (TS 23.040 §9.2.3.24).
///
/// # Errors
///
/// [`TextError::Malformed`] when the header is empty or an IE overruns it.
pub fn split_udh(user_data: &[u8]) -> Result<(Option<ConcatInfo>, usize), TextError> {
    let Some((&udhl, rest)) = user_data.split_first() else {
        return Err(TextError::Malformed(
            "UDHI is set but the user data is empty",
        ));
    };
    let udhl = usize::from(udhl);
    let Some(mut ies) = rest.get(..udhl) else {
        return Err(TextError::Malformed("UDH length exceeds the user data"));
    };
    let mut concat = None;
    while let [iei, iel, tail @ ..] = ies {
        let iel = usize::from(*iel);
        let Some(data) = tail.get(..iel) else {
            return Err(TextError::Malformed(
                "UDH information element overruns the header",
            ));
        };
        let info = match (*iei, data) {
            (0x00, &[reference, total, seq]) => Some(ConcatInfo {
                reference: u16::from(reference),
                total,
                seq,
            }),
            (0x08, &[hi, lo, total, seq]) => Some(ConcatInfo {
                reference: u16::from_be_bytes([hi, lo]),
                total,
                seq,
            }),
            _ => None,
        };
        if let Some(info) = info.filter(|i| i.seq >= 1 && i.seq <= i.total) {
            concat = Some(info);
        }
        ies = &tail[iel..];
    }
    if !ies.is_empty() {
        return Err(TextError::Malformed("truncated UDH information element"));
    }
    Ok((concat, 1 + udhl))
}

/// The concatenation IE of a UDH and the offset where the text starts;
/// `None` when the header is malformed or has no concatenation IE. See
/// [`split_udh`] for the rules.
pub fn parse_udh(short_message: &[u8]) -> Option<(ConcatInfo, usize)> {
    match split_udh(short_message) {
        Ok((Some(info), offset)) => Some((info, offset)),
        _ => None,
    }
}

/// Decodes text that has no UDH; see [`decode_user_data`].
///
/// # Errors
///
/// As [`decode_user_data`].
pub fn decode(data_coding: u8, bytes: &[u8], gsm7_packed: bool) -> Result<String, TextError> {
    decode_user_data(data_coding, bytes, 0, gsm7_packed)
}

/// Decodes the text of `user_data` after its first `udh_len` octets (the
/// offset [`parse_udh`] or [`split_udh`] returns, 0 without UDH). The UDH
/// length matters for packed GSM-7, whose fill bits depend on it.
///
/// `data_coding`: 0x00 GSM-7 (packed per `gsm7_packed`), 0x01 IA5/ASCII,
/// 0x03 Latin-1, 0x08 UCS-2 read as UTF-16BE, a lone surrogate becoming
/// U+FFFD. Never panics.
///
/// # Errors
///
/// [`TextError::InvalidEncoding`] for another `data_coding`;
/// [`TextError::Malformed`] for an odd UCS-2 length, an octet above 0x7F in
/// unpacked GSM-7 or IA5, or `udh_len` beyond the data.
pub fn decode_user_data(
    data_coding: u8,
    user_data: &[u8],
    udh_len: usize,
    gsm7_packed: bool,
) -> Result<String, TextError> {
    let Some(data) = user_data.get(udh_len..) else {
        return Err(TextError::Malformed("UDH longer than the user data"));
    };
    match data_coding {
        0x00 if gsm7_packed => Ok(decode_gsm7(unpack(data, fill_bits(udh_len)))),
        0x00 => {
            check_7bit(data, "octet above 0x7F in unpacked GSM 7-bit text")?;
            Ok(decode_gsm7(data.iter().copied()))
        }
        0x01 => {
            check_7bit(data, "octet above 0x7F in IA5/ASCII text")?;
            Ok(data.iter().map(|&b| char::from(b)).collect())
        }
        0x03 => Ok(data.iter().map(|&b| char::from(b)).collect()),
        0x08 => decode_ucs2(data),
        _ => Err(TextError::InvalidEncoding { data_coding }),
    }
}

fn check_7bit(data: &[u8], what: &'static str) -> Result<(), TextError> {
    if data.iter().any(|&b| b > 0x7F) {
        return Err(TextError::Malformed(what));
    }
    Ok(())
}

fn decode_ucs2(data: &[u8]) -> Result<String, TextError> {
    if !data.len().is_multiple_of(2) {
        return Err(TextError::Malformed("odd number of octets in UCS-2 text"));
    }
    let units = data
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    Ok(char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect())
}

/// Septets (one per item) to text.
fn decode_gsm7(mut septets: impl Iterator<Item = u8>) -> String {
    let mut out = String::with_capacity(septets.size_hint().0);
    while let Some(s) = septets.next() {
        if s == ESC {
            // A dangling escape shows as a space (TS 23.038 §6.2.1).
            out.push(septets.next().map_or(' ', gsm7_extension_char));
        } else {
            out.push(GSM7_DEFAULT[usize::from(s & 0x7F)]);
        }
    }
    out
}

/// The septet starting `bit` bits into `data` (LSB first).
#[inline]
fn septet_at(data: &[u8], bit: usize) -> u8 {
    let byte = bit / 8;
    let lo = u16::from(data.get(byte).copied().unwrap_or(0));
    let hi = u16::from(data.get(byte + 1).copied().unwrap_or(0));
    (((hi << 8 | lo) >> (bit % 8)) & 0x7F) as u8
}

/// Unpacks packed GSM-7 that starts after `fill` bits, dropping a CR that
/// exactly fills the last octet (padding, TS 23.038 §6.1.2.3.1).
fn unpack(data: &[u8], fill: usize) -> impl Iterator<Item = u8> + '_ {
    let bits = (data.len() * 8).saturating_sub(fill);
    let mut n = bits / 7;
    if n > 0 && bits.is_multiple_of(7) && septet_at(data, fill + 7 * (n - 1)) == CR {
        n -= 1;
    }
    (0..n).map(move |i| septet_at(data, fill + 7 * i))
}

// === impl Incoming ===

/// The text-bearing fields of a received `deliver_sm` / `submit_sm` /
/// `data_sm`, borrowed from the PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Incoming<'a> {
    /// `data_coding`.
    pub data_coding: u8,
    /// The UDHI bit (0x40) of `esm_class`.
    pub esm_class_udhi: bool,
    /// `short_message`.
    pub short_message: &'a [u8],
    /// The SAR TLVs (0x020C, 0x020E, 0x020F), when all three are present.
    pub sar: Option<ConcatInfo>,
    /// The `message_payload` TLV; when present it is the text and
    /// `short_message` is ignored.
    pub message_payload: Option<&'a [u8]>,
    /// Whether this carrier packs GSM-7.
    pub gsm7_packed: bool,
}

/// A decoded part: its concatenation values and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPart {
    /// From the UDH, else from the SAR TLVs; `None` for a single message.
    pub concat: Option<ConcatInfo>,
    /// The part's text.
    pub text: String,
}

impl<'a> Incoming<'a> {
    /// The text-bearing fields of a received `submit_sm`, `deliver_sm` or
    /// `data_sm` (read as a [`SubmitSm`](super::pdu::SubmitSm)): the UDHI
    /// bit, the SAR TLVs (when all three are there) and `message_payload`.
    pub fn of(sm: &'a super::pdu::SubmitSm, gsm7_packed: bool) -> Incoming<'a> {
        use super::pdu::{Tlv, tag};
        let sar = match (
            sm.tlv(tag::SAR_MSG_REF_NUM).and_then(Tlv::as_u16),
            sm.tlv(tag::SAR_TOTAL_SEGMENTS).and_then(Tlv::as_u8),
            sm.tlv(tag::SAR_SEGMENT_SEQNUM).and_then(Tlv::as_u8),
        ) {
            (Some(reference), Some(total), Some(seq)) => Some(ConcatInfo {
                reference,
                total,
                seq,
            }),
            _ => None,
        };
        Incoming {
            data_coding: sm.data_coding,
            esm_class_udhi: sm.esm_class & 0x40 != 0,
            short_message: &sm.short_message,
            sar,
            message_payload: sm.tlv(tag::MESSAGE_PAYLOAD).map(|t| &t.value[..]),
            gsm7_packed,
        }
    }

    /// `message_payload` if present, else `short_message`.
    fn user_data(&self) -> &'a [u8] {
        self.message_payload.unwrap_or(self.short_message)
    }

    /// Concatenation values (UDH first, then SAR) and the text offset.
    fn split(&self) -> Result<(Option<ConcatInfo>, usize), TextError> {
        let (udh, offset) = if self.esm_class_udhi {
            split_udh(self.user_data())?
        } else {
            (None, 0)
        };
        Ok((udh.or(self.sar), offset))
    }

    /// The concatenation values of this part (UDH first, then SAR), `None`
    /// for a message on its own.
    ///
    /// # Errors
    ///
    /// As [`split_udh`].
    pub fn concat(&self) -> Result<Option<ConcatInfo>, TextError> {
        Ok(self.split()?.0)
    }

    /// Decodes this part on its own.
    ///
    /// # Errors
    ///
    /// As [`split_udh`] and [`decode_user_data`].
    pub fn decode(&self) -> Result<DecodedPart, TextError> {
        let (concat, offset) = self.split()?;
        let text = decode_user_data(self.data_coding, self.user_data(), offset, self.gsm7_packed)?;
        Ok(DecodedPart { concat, text })
    }

    /// The part's text as units that concatenate safely: septets for GSM-7
    /// (unpacked), raw octets otherwise. Joining units before decoding
    /// repairs senders that split an escape pair, a surrogate pair or even
    /// a UCS-2 code unit across parts.
    fn units(&self, offset: usize) -> Result<Cow<'a, [u8]>, TextError> {
        let Some(data) = self.user_data().get(offset..) else {
            return Err(TextError::Malformed("UDH longer than the user data"));
        };
        match self.data_coding {
            0x00 if self.gsm7_packed => Ok(Cow::Owned(unpack(data, fill_bits(offset)).collect())),
            0x00 | 0x01 | 0x03 | 0x08 => Ok(Cow::Borrowed(data)),
            data_coding => Err(TextError::InvalidEncoding { data_coding }),
        }
    }
}

// === impl Reassembler ===

/// Collects the parts of concatenated messages and returns each text once
/// all its parts have arrived. Used for MO traffic and by the SMSC simulator.
///
/// Parts are grouped by the caller's key (e.g. source and destination
/// address) together with the concatenation reference and total. Duplicate
/// parts are ignored. At most `capacity` incomplete messages are held; a new
/// one beyond that evicts the oldest (counted by [`Reassembler::evicted`]).
/// Nothing expires by time: callers wanting that recreate or drain it.
#[derive(Debug)]
pub struct Reassembler<K> {
    capacity: usize,
    pending: HashMap<PendingKey<K>, Pending>,
    /// Insertion order of `pending`, oldest first.
    order: BTreeMap<u64, PendingKey<K>>,
    next_generation: u64,
    evicted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PendingKey<K> {
    key: K,
    reference: u16,
    total: u8,
}

#[derive(Debug)]
struct Pending {
    generation: u64,
    received: usize,
    /// Per part: `data_coding` and units (see [`Incoming::units`]).
    parts: Vec<Option<(u8, Vec<u8>)>>,
}

impl<K: Eq + Hash + Clone> Reassembler<K> {
    /// Holds at most `capacity` incomplete messages (at least one).
    pub fn new(capacity: usize) -> Self {
        Reassembler {
            capacity: capacity.max(1),
            pending: HashMap::new(),
            order: BTreeMap::new(),
            next_generation: 0,
            evicted: 0,
        }
    }

    /// Adds one received part. Returns the whole text when this part
    /// completes its message (at once for an unconcatenated one), `None`
    /// while parts are missing.
    ///
    /// # Errors
    ///
    /// [`TextError::InvalidEncoding`] or [`TextError::Malformed`] for a part
    /// that cannot be read (it is not stored), or for a completed message
    /// that does not decode (it is dropped).
    pub fn push(&mut self, key: K, part: &Incoming<'_>) -> Result<Option<String>, TextError> {
        let (concat, offset) = part.split()?;
        let info = match concat {
            Some(info) if info.total > 1 => info,
            _ => {
                let text =
                    decode_user_data(part.data_coding, part.user_data(), offset, part.gsm7_packed)?;
                return Ok(Some(text));
            }
        };
        if info.seq == 0 || info.seq > info.total {
            return Err(TextError::Malformed(
                "concatenation sequence number outside 1..=total",
            ));
        }
        let units = part.units(offset)?.into_owned();
        let pk = PendingKey {
            key,
            reference: info.reference,
            total: info.total,
        };
        if !self.pending.contains_key(&pk) {
            if self.pending.len() >= self.capacity
                && let Some((_, oldest)) = self.order.pop_first()
            {
                self.pending.remove(&oldest);
                self.evicted += 1;
            }
            let generation = self.next_generation;
            self.next_generation += 1;
            self.order.insert(generation, pk.clone());
            self.pending.insert(
                pk.clone(),
                Pending {
                    generation,
                    received: 0,
                    parts: vec![None; usize::from(info.total)],
                },
            );
        }
        let Some(entry) = self.pending.get_mut(&pk) else {
            return Ok(None);
        };
        let slot = &mut entry.parts[usize::from(info.seq) - 1];
        if slot.is_none() {
            *slot = Some((part.data_coding, units));
            entry.received += 1;
        }
        if entry.received < entry.parts.len() {
            return Ok(None);
        }
        let Some(done) = self.pending.remove(&pk) else {
            return Ok(None);
        };
        self.order.remove(&done.generation);
        assemble(done.parts).map(Some)
    }

    /// Drops the parts held of the message `key` with this reference and
    /// total (e.g. when its sender gave up on it); whether any were held.
    pub fn discard(&mut self, key: K, reference: u16, total: u8) -> bool {
        let pk = PendingKey {
            key,
            reference,
            total,
        };
        match self.pending.remove(&pk) {
            Some(p) => {
                self.order.remove(&p.generation);
                true
            }
            None => false,
        }
    }

    /// Whether parts of the message `key` with this reference and total are
    /// held (a completed or discarded message is not).
    pub fn holds(&self, key: K, reference: u16, total: u8) -> bool {
        self.pending.contains_key(&PendingKey {
            key,
            reference,
            total,
        })
    }

    /// Incomplete messages held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// No incomplete message is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Incomplete messages dropped to stay within capacity, since creation.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// Joins complete parts: one decode over the joined units when all parts
/// share a `data_coding`, else part by part.
fn assemble(parts: Vec<Option<(u8, Vec<u8>)>>) -> Result<String, TextError> {
    let parts: Vec<(u8, Vec<u8>)> = parts.into_iter().flatten().collect();
    let Some(&(first, _)) = parts.first() else {
        return Ok(String::new());
    };
    if parts.iter().all(|(dc, _)| *dc == first) {
        let joined: Vec<u8> = parts.into_iter().flat_map(|(_, units)| units).collect();
        // GSM-7 units are already unpacked septets.
        decode(first, &joined, false)
    } else {
        let mut text = String::new();
        for (dc, units) in parts {
            text.push_str(&decode(dc, &units, false)?);
        }
        Ok(text)
    }
}
