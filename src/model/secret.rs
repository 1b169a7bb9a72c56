//! A configured secret (password, token): a value type that never prints,
//! and the one comparison of a presented credential against it.
//!
//! In a configuration file a secret may be a reference instead of the value
//! (`env:NAME`, `file:/path`); `crate::config` resolves every one at load,
//! before anything reads it.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A string that must never be logged.
///
/// Deserialized from a string, through `deserialize_newtype_struct` with
/// the name [`SERDE_NAME`], so that the configuration's key tracer can tell
/// which keys hold secrets (every one must be resolvable from `env:` or
/// `file:`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// The newtype name a [`Secret`] deserializes under.
pub const SERDE_NAME: &str = "Secret";

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (the secret, or env:NAME, or file:PATH)")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Secret, D::Error> {
                String::deserialize(d).map(Secret)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
        }
        d.deserialize_newtype_struct(SERDE_NAME, SecretVisitor)
    }
}

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
