//! Settings written as text in the file and parsed once, at load, into their
//! typed values (an MM7 version, quiet hours, a network): a bad one is a
//! parse problem on its line, like a bad duration, and no room parses a
//! setting again later.
//!
//! `#[serde(deserialize_with = "text::one")]` (or `text::opt`, `text::list`)
//! on a field whose type implements [`TextValue`].

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A value read from its text (`FromStr`).
pub trait TextValue: FromStr<Err: fmt::Display> {
    /// What the text is, with an example between backquotes (the example is
    /// also what the configuration key tracer fills in).
    const EXPECTING: &'static str;
}

impl TextValue for crate::mm7::Version {
    const EXPECTING: &'static str = "an MM7 schema version such as `REL-6-MM7-1-4`";
}

impl TextValue for crate::mm7::IpNet {
    const EXPECTING: &'static str = "a network such as `10.0.0.0/8`";
}

impl TextValue for crate::model::quiet::QuietHours {
    const EXPECTING: &'static str = "quiet hours such as `21:00-08:00`";
}

/// One value read through its text; a wrong type says what was expected.
struct Text<T>(T);

impl<'de, T: TextValue> Deserialize<'de> for Text<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor(PhantomData))
    }
}

struct TextVisitor<T>(PhantomData<T>);

impl<T: TextValue> Visitor<'_> for TextVisitor<T> {
    type Value = Text<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        // The parse errors name the input and what was expected.
        v.parse().map(Text).map_err(E::custom)
    }
}

/// A required value.
pub fn one<'de, D: Deserializer<'de>, T: TextValue>(d: D) -> Result<T, D::Error> {
    Text::deserialize(d).map(|t| t.0)
}

/// A value that may be absent (with `#[serde(default)]`).
pub fn opt<'de, D: Deserializer<'de>, T: TextValue>(d: D) -> Result<Option<T>, D::Error> {
    Text::deserialize(d).map(|t| Some(t.0))
}

/// A list of values.
pub fn list<'de, D: Deserializer<'de>, T: TextValue>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Text<T>>::deserialize(d).map(|v| v.into_iter().map(|t| t.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::quiet::QuietHours;

    #[derive(Debug, serde::Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "opt")]
        quiet: Option<QuietHours>,
        #[serde(default, deserialize_with = "list")]
        nets: Vec<crate::mm7::IpNet>,
        #[serde(deserialize_with = "one")]
        version: crate::mm7::Version,
    }

    #[test]
    fn text_settings_are_typed_at_load_and_bad_ones_say_what_was_expected() {
        let s: Sample = toml::from_str(
            "quiet = \"21:00-08:00\"\nnets = [\"10.0.0.0/8\"]\nversion = \"REL-5-MM7-1-2\"\n",
        )
        .unwrap();
        assert_eq!(s.quiet, Some(QuietHours::new((21, 0), (8, 0))));
        assert_eq!(s.nets.len(), 1);
        assert_eq!(s.version, crate::mm7::Version::Rel5Mm7_1_2);
        let s: Sample = toml::from_str("version = \"REL-6-MM7-1-4\"\n").unwrap();
        assert_eq!((s.quiet, s.nets.len()), (None, 0));

        for (text, needle) in [
            (
                "quiet = \"9-5\"\nversion = \"REL-6-MM7-1-4\"",
                "invalid quiet hours \"9-5\"",
            ),
            (
                "nets = [\"10.0.0.0/33\"]\nversion = \"REL-6-MM7-1-4\"",
                "bad address or network `10.0.0.0/33`",
            ),
            ("version = \"REL-9\"", "REL-9"),
            ("version = 3", "an MM7 schema version"),
        ] {
            let e = toml::from_str::<Sample>(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
