//! Base64 (RFC 4648, standard alphabet, padded): encoding for HTTP basic
//! auth, decoding for basic auth and MIME parts sent with
//! `Content-Transfer-Encoding: base64`. Small enough not to need a crate.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `input` with padding.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3F) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// Characters per line of MIME base64 (RFC 2045 §6.8), and the input bytes
/// each full line holds.
pub const LINE: usize = 76;
const LINE_INPUT: usize = LINE / 4 * 3;

/// Encodes `input` for a MIME body: padded, in lines of [`LINE`]
/// characters, each ended by CRLF.
pub fn encode_lines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_lines_len(input.len()));
    for chunk in input.chunks(LINE_INPUT) {
        out.extend_from_slice(encode(chunk).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of [`encode_lines`] of `n` bytes.
pub const fn encoded_lines_len(n: usize) -> usize {
    n.div_ceil(3) * 4 + n.div_ceil(LINE_INPUT) * 2
}

/// The most bytes whose [`encode_lines`] fits in `encoded` bytes.
pub const fn input_budget(encoded: usize) -> usize {
    let full = encoded / (LINE + 2);
    let rest = encoded % (LINE + 2);
    full * LINE_INPUT + rest.saturating_sub(2) / 4 * 3
}

fn value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Decodes `input`, skipping ASCII whitespace (MIME wraps lines). Padding
/// is optional; anything after it must be whitespace.
///
/// # Errors
/// `None` for a character outside the alphabet, data after the padding, or
/// a dangling single character.
pub fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padded = false;
    let mut count = 0usize;
    for &c in input {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padded = true;
            continue;
        }
        if padded {
            return None;
        }
        acc = (acc << 6) | value(c)?;
        bits += 6;
        count += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if count % 4 == 1 {
        return None;
    }
    Some(out)
}
