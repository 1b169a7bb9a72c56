//! Content sniffing: the media type of a byte string from its magic numbers,
//! never from what a client declares.
//!
//! Binary formats are recognised by their signatures (JPEG `FF D8 FF`, PNG
//! `89 50 4E 47 0D 0A 1A 0A`, GIF `GIF87a`/`GIF89a`, MP4 by an ISO-BMFF `ftyp`
//! box with an MP4 brand). Text is checked last: SMIL is UTF-8 XML whose root
//! element is `smil`; anything else that is valid UTF-8 without NULs is plain
//! text. The order matters only for text, as the binary signatures are not
//! valid UTF-8 (JPEG, PNG) or cannot be mistaken (GIF, `ftyp`).

use std::fmt;

/// The media types sluice accepts for MMS (DOMAIN.md, MM7: JPEG, PNG, GIF,
/// MP4, text and SMIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaType {
    /// `image/jpeg`.
    Jpeg,
    /// `image/png`.
    Png,
    /// `image/gif` (still or animated).
    Gif,
    /// `video/mp4` (ISO base media file with an MP4 brand).
    Mp4,
    /// `application/smil` (the MMS presentation layout).
    Smil,
    /// `text/plain`, UTF-8.
    Text,
}

// === impl MediaType ===

impl MediaType {
    /// Every supported type, in a fixed order.
    pub const ALL: [MediaType; 6] = [
        MediaType::Jpeg,
        MediaType::Png,
        MediaType::Gif,
        MediaType::Mp4,
        MediaType::Smil,
        MediaType::Text,
    ];

    /// The canonical MIME type, without parameters (`image/jpeg`, …,
    /// `application/smil`, `text/plain`).
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Gif => "image/gif",
            MediaType::Mp4 => "video/mp4",
            MediaType::Smil => "application/smil",
            MediaType::Text => "text/plain",
        }
    }

    /// The value for a `Content-Type` header: [`content_type`] plus
    /// `; charset=utf-8` for the text types (sniffing guarantees UTF-8).
    ///
    /// [`content_type`]: MediaType::content_type
    pub fn content_type_header(self) -> &'static str {
        match self {
            MediaType::Smil => "application/smil; charset=utf-8",
            MediaType::Text => "text/plain; charset=utf-8",
            other => other.content_type(),
        }
    }

    /// Parses a declared MIME type, tolerantly: case-insensitive, parameters
    /// (`; charset=utf-8`) and surrounding whitespace ignored, and the common
    /// aliases accepted (`image/jpg`, `image/pjpeg`, `image/x-png`,
    /// `video/x-m4v`, `application/smil+xml`). `None` for anything else.
    pub fn from_content_type(value: &str) -> Option<MediaType> {
        let essence = value.split(';').next().unwrap_or("").trim();
        let t = |names: &[&str]| names.iter().any(|n| essence.eq_ignore_ascii_case(n));
        if t(&["image/jpeg", "image/jpg", "image/pjpeg"]) {
            Some(MediaType::Jpeg)
        } else if t(&["image/png", "image/x-png"]) {
            Some(MediaType::Png)
        } else if t(&["image/gif"]) {
            Some(MediaType::Gif)
        } else if t(&["video/mp4", "video/x-m4v", "video/m4v"]) {
            Some(MediaType::Mp4)
        } else if t(&["application/smil", "application/smil+xml"]) {
            Some(MediaType::Smil)
        } else if t(&["text/plain"]) {
            Some(MediaType::Text)
        } else {
            None
        }
    }

    /// A file-name extension (`jpg`, `png`, `gif`, `mp4`, `smil`, `txt`),
    /// e.g. for MM7 `Content-Location`.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpg",
            MediaType::Png => "png",
            MediaType::Gif => "gif",
            MediaType::Mp4 => "mp4",
            MediaType::Smil => "smil",
            MediaType::Text => "txt",
        }
    }

    /// Whether this is a still or animated image (JPEG, PNG, GIF).
    pub fn is_image(self) -> bool {
        matches!(self, MediaType::Jpeg | MediaType::Png | MediaType::Gif)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.content_type())
    }
}

/// The type of `bytes` from their content, or `None` when they are empty or
/// of no supported type. Never panics, whatever the input.
pub fn sniff(bytes: &[u8]) -> Option<MediaType> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(MediaType::Jpeg);
    }
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        return Some(MediaType::Png);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some(MediaType::Gif);
    }
    if is_mp4(bytes) {
        return Some(MediaType::Mp4);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if text.contains('\0') {
        return None;
    }
    if is_smil(text) {
        Some(MediaType::Smil)
    } else {
        Some(MediaType::Text)
    }
}

/// Brands (major or compatible) that make an ISO-BMFF file an MP4 we accept.
/// QuickTime (`qt  `) and 3GPP (`3gp*`) are other types; audio-only `M4A `
/// is not video.
fn is_mp4_brand(brand: &[u8]) -> bool {
    matches!(
        brand,
        b"isom" | b"mp41" | b"mp42" | b"avc1" | b"M4V " | b"M4VH" | b"M4VP" | b"mmp4" | b"dash"
    ) || (brand.len() == 4 && brand.starts_with(b"iso") && brand[3].is_ascii_alphanumeric())
}

/// `size:u32 "ftyp" major:4 minor:u32 compatible:4*` at offset 0, with an MP4
/// major or compatible brand.
fn is_mp4(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    // A ftyp box holds at least the major brand and minor version.
    if size < 16 {
        return false;
    }
    let major = &bytes[8..12];
    if major == b"qt  " {
        return false;
    }
    if is_mp4_brand(major) {
        return true;
    }
    let end = size.min(bytes.len());
    bytes[16..end].chunks_exact(4).any(is_mp4_brand)
}

/// How much of a document the prolog scan looks at before giving up.
const MAX_PROLOG: usize = 64 * 1024;

/// Whether `text` is XML whose root element is `smil` (any namespace
/// prefix): skips a BOM, whitespace, the XML declaration, processing
/// instructions, comments and a DOCTYPE (with an internal subset).
fn is_smil(text: &str) -> bool {
    let mut rest = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let budget_end = text.len().saturating_sub(MAX_PROLOG);
    loop {
        if rest.len() < budget_end {
            return false;
        }
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if let Some(after) = rest.strip_prefix("<?") {
            match after.find("?>") {
                Some(i) => rest = &after[i + 2..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix("<!--") {
            match after.find("-->") {
                Some(i) => rest = &after[i + 3..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix("<!") {
            // DOCTYPE, possibly with an internal subset in brackets.
            let mut depth = 0usize;
            let mut end = None;
            for (i, c) in after.char_indices() {
                match c {
                    '[' => depth += 1,
                    ']' => depth = depth.saturating_sub(1),
                    '>' if depth == 0 => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            match end {
                Some(i) => rest = &after[i + 1..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix('<') {
            let name_len = after
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(after.len());
            if name_len == after.len() {
                // The start tag never ends.
                return false;
            }
            let name = &after[..name_len];
            let local = name.rsplit(':').next().unwrap_or(name);
            return local == "smil";
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests;
