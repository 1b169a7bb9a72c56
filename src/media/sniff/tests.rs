use super::*;

const PNG_SIG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let size = 16 + 4 * compatible.len();
    let mut v = (size as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b"ftyp");
    v.extend_from_slice(major);
    v.extend_from_slice(&0u32.to_be_bytes());
    for c in compatible {
        v.extend_from_slice(*c);
    }
    v.extend_from_slice(&[0, 0, 0, 8, b'm', b'd', b'a', b't']);
    v
}

#[test]
fn binary_signatures() {
    assert_eq!(
        sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
        Some(MediaType::Jpeg)
    );
    assert_eq!(sniff(&[0xFF, 0xD8, 0xFF]), Some(MediaType::Jpeg));
    let mut png = PNG_SIG.to_vec();
    png.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R']);
    assert_eq!(sniff(&png), Some(MediaType::Png));
    assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00"), Some(MediaType::Gif));
    assert_eq!(sniff(b"GIF87a"), Some(MediaType::Gif));
    for brand in [b"isom", b"mp41", b"mp42", b"avc1", b"iso6", b"M4V "] {
        assert_eq!(sniff(&ftyp(brand, &[])), Some(MediaType::Mp4), "{brand:?}");
    }
    // Unknown major brand, MP4 compatible brand.
    assert_eq!(
        sniff(&ftyp(b"XAVC", &[b"XAVC", b"mp42"])),
        Some(MediaType::Mp4)
    );
}

#[test]
fn truncated_signatures_are_not_recognised() {
    // A truncated binary signature is not a type (and not UTF-8 text).
    assert_eq!(sniff(&[0xFF, 0xD8]), None);
    assert_eq!(sniff(&PNG_SIG[..7]), None);
    assert_eq!(sniff(&[0xFF]), None);
    // "GIF8" is valid UTF-8: plain text, not a GIF.
    assert_eq!(sniff(b"GIF8"), Some(MediaType::Text));
    // ftyp box too short.
    let mp4 = ftyp(b"isom", &[]);
    assert_ne!(sniff(&mp4[..12]), Some(MediaType::Mp4));
    assert_eq!(sniff(&[]), None);
}

#[test]
fn other_iso_bmff_types_are_refused() {
    // QuickTime, 3GPP and audio-only are not MP4 video. Their ftyp bytes are
    // not UTF-8 text either thanks to the size prefix... unless they are; then
    // they would be Text, never Mp4.
    for (major, compat) in [
        (b"qt  ", vec![b"qt  "]),
        (b"3gp5", vec![b"3gp5"]),
        (b"M4A ", vec![b"M4A "]),
    ] {
        assert_ne!(sniff(&ftyp(major, &compat)), Some(MediaType::Mp4));
    }
    // qt with an isom compatible brand is still QuickTime.
    assert_ne!(sniff(&ftyp(b"qt  ", &[b"isom"])), Some(MediaType::Mp4));
    // A box claiming a size below 16 is malformed.
    let mut bad = ftyp(b"isom", &[]);
    bad[..4].copy_from_slice(&8u32.to_be_bytes());
    assert_ne!(sniff(&bad), Some(MediaType::Mp4));
}

#[test]
fn smil_and_text() {
    let smil = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE smil PUBLIC "-//W3C//DTD SMIL 1.0//EN" "http://www.w3.org/TR/REC-smil/SMIL10.dtd" [ <!ENTITY x "y"> ]>
<!-- layout -->
<smil xmlns="http://www.w3.org/2001/SMIL20/Language"><head/><body/></smil>"#;
    assert_eq!(sniff(smil.as_bytes()), Some(MediaType::Smil));
    assert_eq!(sniff(b"<smil><body/></smil>"), Some(MediaType::Smil));
    assert_eq!(sniff("\u{FEFF}  <smil>".as_bytes()), Some(MediaType::Smil));
    assert_eq!(sniff(b"<s:smil xmlns:s='x'/>"), Some(MediaType::Smil));
    // Not SMIL: other roots, text mentioning smil, unterminated constructs.
    assert_eq!(sniff(b"<smiley/>"), Some(MediaType::Text));
    assert_eq!(sniff(b"<html><smil/></html>"), Some(MediaType::Text));
    assert_eq!(sniff(b"hello <smil>"), Some(MediaType::Text));
    assert_eq!(sniff(b"<!-- <smil>"), Some(MediaType::Text));
    assert_eq!(sniff(b"<?xml <smil>"), Some(MediaType::Text));
    assert_eq!(sniff(b"<smil"), Some(MediaType::Text));
    assert_eq!(
        sniff("Hi 👋, see you at 8".as_bytes()),
        Some(MediaType::Text)
    );
    // NULs or invalid UTF-8: nothing.
    assert_eq!(sniff(b"text\0more"), None);
    assert_eq!(sniff(b"caf\xe9"), None);
    assert_eq!(sniff("é".as_bytes().split_at(1).0), None);
}

#[test]
fn garbage_never_panics() {
    // A cheap deterministic generator: every prefix of pseudo-random bytes,
    // and the interesting prefixes with random tails.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: [&[u8]; 6] = [
        b"",
        b"<?",
        b"<!",
        b"<!--",
        b"\x00\x00\x00\x18ftyp",
        b"<smil",
    ];
    for seed in seeds {
        for len in 0..64 {
            let mut v = seed.to_vec();
            v.extend((0..len).map(|_| (next() % 256) as u8));
            let _ = sniff(&v);
            // ASCII-only tails exercise the text paths.
            let mut t = seed.to_vec();
            t.extend((0..len).map(|_| b"<>![]?-smil \n"[(next() % 13) as usize]));
            let _ = sniff(&t);
        }
    }
}

#[test]
fn content_types() {
    for t in MediaType::ALL {
        assert_eq!(MediaType::from_content_type(t.content_type()), Some(t));
        assert_eq!(
            MediaType::from_content_type(t.content_type_header()),
            Some(t)
        );
    }
    assert_eq!(
        MediaType::from_content_type("image/jpg"),
        Some(MediaType::Jpeg)
    );
    assert_eq!(
        MediaType::from_content_type(" Image/JPEG "),
        Some(MediaType::Jpeg)
    );
    assert_eq!(
        MediaType::from_content_type("text/plain; charset=utf-8"),
        Some(MediaType::Text)
    );
    assert_eq!(
        MediaType::from_content_type("application/smil+xml;charset=\"utf-8\""),
        Some(MediaType::Smil)
    );
    assert_eq!(MediaType::from_content_type("image/webp"), None);
    assert_eq!(MediaType::from_content_type(""), None);
    assert_eq!(MediaType::from_content_type(";"), None);
    assert_eq!(MediaType::from_content_type("image/jpegx"), None);
    assert_eq!(MediaType::Gif.to_string(), "image/gif");
}
