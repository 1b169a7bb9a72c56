//! The `Sluice-Signature` header: HMAC-SHA256, keyed with the endpoint's
//! secret, over `"<t>.<body>"` where `t` is the Unix time in seconds when
//! the request was signed (each attempt is signed afresh):
//!
//! For the secret `whsec_0123456789abcdef` and the body `{"events":[]}`
//! signed at `t = 1733330000`:
//!
//! ```text
//! Sluice-Signature: t=1733330000,v1=c61280df593cecdd32a51544a5fd514043269d77b458f8030c8c6dca3e260ad3
//! ```
//!
//! A receiver recomputes `v1` over the raw body it received, compares in
//! constant time, and refuses a `t` further than its replay window (we
//! suggest 5 minutes) from its clock; it then drops events whose `id` it has
//! already seen (delivery is at least once).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Name of the header.
pub const HEADER: &str = "sluice-signature";

/// The replay window receivers are told to allow, in seconds.
pub const REPLAY_WINDOW_SECS: u64 = 300;

/// The header value for `body` signed at Unix second `t` with `secret`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, body)))
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    m.update(itoa::Buffer::new().format(t).as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not `t=<seconds>,v1=<64 hex digits>`.
    #[error("malformed signature header")]
    Malformed,
    /// `t` is further than the window from now.
    #[error("signed {0} s from now, outside the replay window")]
    Stale(u64),
    /// The HMAC does not match.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a `Sluice-Signature` header over `body` (what a receiver does;
/// the tests and the documentation use it).
///
/// # Errors
/// Malformed, outside `window_secs` of `now_secs`, or not matching.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: u64,
    window_secs: u64,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(VerifyError::Malformed);
    };
    let given = unhex(v1).ok_or(VerifyError::Malformed)?;
    let skew = now_secs.abs_diff(t);
    if skew > window_secs {
        return Err(VerifyError::Stale(skew));
    }
    if crate::model::secret::secret_eq(&given, &mac(secret, t, body)) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}
