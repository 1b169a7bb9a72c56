//! The landing page of an SMS fallback as data: what a recipient outside
//! MMS reach sees in place of the MMS — the sender's display name, the
//! subject, the text and every media item in order ([`LandingPage`]) — and
//! its record on disk.
//!
//! A page is named by its content: its code is a keyed hash of the tenant
//! and the record ([`super::LinkSigner::landing_code`]), so the same message
//! sent to a million recipients is one page written once, and a personalised
//! text is a page of its own. The code is the only authority: it is
//! unguessable without the link secret and names nothing else.
//!
//! The record is JSON (`serde_json`: it is small, written once and read on a
//! page view, and a reader of the store can open it). Reading is strict and
//! bounded: [`MAX_RECORD_BYTES`], at most [`MAX_ITEMS`] media, every id a
//! media id.

use serde::{Deserialize, Serialize};

use super::store::MediaId;

/// Bytes of a record at most (a message text is far smaller).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Media items a page shows at most.
pub const MAX_ITEMS: usize = 64;

/// What a fallback's landing page shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandingPage {
    /// The tenant's display name (empty: none shown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// The MMS subject (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The message text, whole (the SMS may carry it trimmed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// The media, in the message's order, as lowercase hex ids.
    #[serde(default)]
    pub media: Vec<String>,
}

impl LandingPage {
    /// The record's bytes (the hash input of its code, and the file).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record read back, or `None` when the bytes are not one: too long,
    /// not this JSON shape, more than [`MAX_ITEMS`] media or an id that is
    /// not a media id.
    pub fn from_bytes(bytes: &[u8]) -> Option<LandingPage> {
        // An object, not serde's other spelling of a struct (an array).
        if bytes.len() > MAX_RECORD_BYTES || bytes.first() != Some(&b'{') {
            return None;
        }
        let page: LandingPage = serde_json::from_slice(bytes).ok()?;
        let valid = page.media.len() <= MAX_ITEMS
            && page
                .media
                .iter()
                .all(|id| MediaId::parse(id).is_ok_and(|parsed| parsed.to_hex() == *id));
        valid.then_some(page)
    }

    /// The media ids, parsed (every one is valid once read).
    pub fn media_ids(&self) -> impl Iterator<Item = MediaId> + '_ {
        self.media.iter().filter_map(|id| MediaId::parse(id).ok())
    }
}

/// Fuzz hook: a record from hostile bytes never panics.
#[doc(hidden)]
pub fn fuzz_record(bytes: &[u8]) -> usize {
    LandingPage::from_bytes(bytes).map_or(0, |p| p.media.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let page = LandingPage {
            from: "Acme \"Shoes\"".into(),
            subject: "Sale <today>".into(),
            text: "Hi Ann\nhttps://acme.example/x?a=1&b=2".into(),
            media: vec![id(1), id(2)],
        };
        assert_eq!(LandingPage::from_bytes(&page.to_bytes()), Some(page));
        let empty = LandingPage::default();
        assert_eq!(empty.to_bytes(), br#"{"media":[]}"#);
        assert_eq!(LandingPage::from_bytes(&empty.to_bytes()), Some(empty));
    }

    #[test]
    fn records_that_are_not_pages_are_refused() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"media":["zz"]}"#,
            br#"{"media":[],"extra":1}"#,
            br#"{"media":[1]}"#,
        ] {
            assert_eq!(LandingPage::from_bytes(bad), None, "{bad:?}");
        }
        // An id in another spelling is not this record.
        let upper = format!(r#"{{"media":["{}"]}}"#, id(0xab).to_uppercase());
        assert_eq!(LandingPage::from_bytes(upper.as_bytes()), None);
        let many = LandingPage {
            media: vec![id(3); MAX_ITEMS + 1],
            ..LandingPage::default()
        };
        assert_eq!(LandingPage::from_bytes(&many.to_bytes()), None);
        let long = LandingPage {
            text: "x".repeat(MAX_RECORD_BYTES),
            ..LandingPage::default()
        };
        assert_eq!(LandingPage::from_bytes(&long.to_bytes()), None);
    }
}
