//! Short-link codes: a link's number (its place in the link store, dense
//! from 0) through a keyed permutation of 64-bit values, written as 11
//! characters of base62 (`0-9A-Za-z`).
//!
//! # Why a permutation
//! A code must be unguessable (at least 64 bits of it are the key's) and
//! the store must find a link without an index in memory: millions of
//! links a day for 30 days would otherwise need gigabytes of RAM. A keyed
//! permutation gives both: the code decodes back to the link's number,
//! which is where its entry sits in the store, and without the key the
//! codes of links 0, 1, 2… look random. Guessing a valid code succeeds with
//! probability (links alive) / 2^64.
//!
//! The permutation is a 4-round balanced Feistel network over two 32-bit
//! halves whose round function is HMAC-SHA256 under a key of its own
//! (derived from the link secret, so it never shares outputs with the
//! landing-page codes). Four rounds of a pseudorandom function make a
//! strong pseudorandom permutation (Luby–Rackoff). No maintained crate
//! offers a keyed 64-bit permutation; this is ~40 lines over the `hmac`
//! crate already used for landing pages.
//!
//! # Why 11 characters
//! 62^10 < 2^64 (10 base62 characters hold 59.5 bits), so 64 bits take 11.
//! The link is `<base>/<code>`: with a base such as `https://acme.link` the
//! short link is 29 characters whatever the original.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Characters of a code.
pub const CODE_CHARS: usize = 11;
/// Feistel rounds.
const ROUNDS: u8 = 4;
/// The base62 alphabet, in value order.
const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Turns link numbers into codes and back. Cloning is cheap; `Debug` does
/// not show the key.
#[derive(Clone)]
pub struct Codec {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec keyed from the link secret (`media::link::load_or_create_secret`).
    pub fn new(secret: &[u8]) -> Codec {
        // HMAC takes keys of any length, so neither call can fail.
        let mut derive = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        derive.update(b"sluice short-link permutation v1");
        let key = derive.finalize().into_bytes();
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        Codec { mac }
    }

    fn round(&self, i: u8, half: u32) -> u32 {
        let mut mac = self.mac.clone();
        mac.update(&[i]);
        mac.update(&half.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]])
    }

    /// The permuted value of link number `n`.
    pub fn permute(&self, n: u64) -> u64 {
        let (mut l, mut r) = ((n >> 32) as u32, n as u32);
        for i in 0..ROUNDS {
            (l, r) = (r, l ^ self.round(i, r));
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    /// The link number whose permuted value is `v`.
    pub fn unpermute(&self, v: u64) -> u64 {
        let (mut l, mut r) = ((v >> 32) as u32, v as u32);
        for i in (0..ROUNDS).rev() {
            (l, r) = (r ^ self.round(i, l), l);
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    /// Link `n`'s code.
    pub fn encode(&self, n: u64) -> [u8; CODE_CHARS] {
        base62(self.permute(n))
    }

    /// The link number of `code`, or `None` when it is not 11 base62
    /// characters of a 64-bit value. (Whether a link has that number is the
    /// store's to say.)
    pub fn decode(&self, code: &str) -> Option<u64> {
        unbase62(code).map(|v| self.unpermute(v))
    }
}

/// `v` in base62, 11 characters, most significant first.
pub fn base62(mut v: u64) -> [u8; CODE_CHARS] {
    let mut out = [b'0'; CODE_CHARS];
    for c in out.iter_mut().rev() {
        *c = B62[(v % 62) as usize];
        v /= 62;
    }
    out
}

/// The value of an 11-character base62 code; `None` for another length, a
/// character outside the alphabet or a value past `u64::MAX`.
pub fn unbase62(code: &str) -> Option<u64> {
    if code.len() != CODE_CHARS {
        return None;
    }
    let mut v: u64 = 0;
    for b in code.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        v = v.checked_mul(62)?.checked_add(u64::from(d))?;
    }
    Some(v)
}
