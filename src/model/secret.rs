//! A configured secret (password, token): a value type that never prints,
//! and the one comparison of a presented credential against it.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A string that must never be logged.
#[derive(Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether a presented credential is this secret (see [`secret_eq`]).
    pub fn matches(&self, given: &str) -> bool {
        secret_eq(given.as_bytes(), self.0.as_bytes())
    }
}

/// Compares a presented credential with the expected one in time that
/// depends neither on where they differ nor on their lengths: both are
/// hashed (SHA-256) and the digests compared with `subtle`.
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    Sha256::digest(given)
        .as_slice()
        .ct_eq(Sha256::digest(expected).as_slice())
        .into()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        let s = Secret::new("demo-token-0001");
        assert!(s.matches("demo-token-0001"));
        assert!(!s.matches("demo-token-0002"));
        assert!(!s.matches("demo-token-000"));
        assert!(!s.matches("demo-token-00010"));
        assert!(!s.matches(""));
        assert!(secret_eq(b"", b""));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
