//! The set of configuration keys, read from the config structs themselves:
//! a deserializer that answers every `deserialize_struct` by recording the
//! struct's field names and descending into each with a placeholder value.
//!
//! One source of truth for `sluice check-config`'s "did you mean" (a key
//! placed in the wrong table is found by its name elsewhere) and for the test
//! that keeps `deploy/sluice.toml` complete: a field added to a struct is a
//! key here the moment it compiles.
//!
//! Keys are dotted paths without array indices (`carriers.binds.window`);
//! free-form tables (`tenants.programs.keywords`) are keys whose children are
//! not listed. Keys holding a [`crate::model::Secret`] are also listed apart
//! ([`secret_keys`]), so a test can hold the resolution of `env:`/`file:`
//! references (`super::secrets`) to every one of them.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Every key of [`super::Config`], as dotted paths.
pub fn known_keys() -> BTreeSet<String> {
    // Tracing fails only when a field type cannot take a placeholder value,
    // which `trace`'s test would show; the keys seen so far are still right.
    trace().unwrap_or_else(|(keys, _)| keys).0
}

/// The keys whose value is a [`crate::model::Secret`] (tokens, passwords,
/// webhook secrets), as dotted paths.
pub fn secret_keys() -> BTreeSet<String> {
    trace().unwrap_or_else(|(keys, _)| keys).1
}

type Traced = (BTreeSet<String>, BTreeSet<String>);

/// [`known_keys`] and [`secret_keys`], or those seen before a field type
/// refused its placeholder, with the reason.
fn trace() -> Result<Traced, (Traced, String)> {
    let mut keys = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let tracer = Tracer {
        path: String::new(),
        keys: &mut keys,
        secrets: &mut secrets,
    };
    match super::Config::deserialize(tracer) {
        Ok(_) => Ok((keys, secrets)),
        Err(e) => Err(((keys, secrets), e.to_string())),
    }
}

/// Keys whose values are free-form tables (their children are user data).
pub fn is_free_form(key: &str) -> bool {
    key == "tenants.programs.keywords"
}

#[derive(Debug)]
struct TraceError(String);

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        TraceError(msg.to_string())
    }
}

struct Tracer<'a> {
    path: String,
    keys: &'a mut BTreeSet<String>,
    secrets: &'a mut BTreeSet<String>,
}

impl Tracer<'_> {
    fn child(&mut self, field: &str) -> Tracer<'_> {
        let path = if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        };
        self.keys.insert(path.clone());
        Tracer {
            path,
            keys: self.keys,
            secrets: self.secrets,
        }
    }

    fn same(&mut self) -> Tracer<'_> {
        Tracer {
            path: self.path.clone(),
            keys: self.keys,
            secrets: self.secrets,
        }
    }
}

/// A string the visitor will accept, judged by what it says it expects
/// (addresses and durations parse their strings; values read from text
/// give an example between backquotes).
fn placeholder(expecting: &str) -> &str {
    if let Some(example) = expecting
        .split_once('`')
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(example, _)| example)
    {
        example
    } else if expecting.contains("address") {
        "127.0.0.1:1"
    } else if expecting.contains("duration") {
        "1s"
    } else {
        "x"
    }
}

struct Expecting<'v, V>(&'v V);

impl<'de, V: Visitor<'de>> std::fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_u64(0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_bool(false)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let expecting = Expecting(&visitor).to_string();
        visitor.visit_str(placeholder(&expecting))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if name == crate::model::secret::SERDE_NAME {
            self.secrets.insert(self.path.clone());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_seq(OneElement(Some(self.same())))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(de::value::MapDeserializer::new(std::iter::empty::<(
            &str,
            &str,
        )>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Fields {
            tracer: self,
            fields: fields.iter(),
            current: None,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let first = variants
            .first()
            .ok_or_else(|| TraceError("enum without variants".into()))?;
        visitor.visit_enum(FirstVariant(first))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct tuple tuple_struct identifier ignored_any
    }
}

struct OneElement<'a>(Option<Tracer<'a>>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        match self.0.take() {
            Some(t) => seed.deserialize(t).map(Some),
            None => Ok(None),
        }
    }
}

struct Fields<'a> {
    tracer: Tracer<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.fields.next() {
            Some(f) => {
                self.current = Some(f);
                seed.deserialize((*f).into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let field = self.current.take().unwrap_or_default();
        seed.deserialize(self.tracer.child(field))
    }
}

struct FirstVariant(&'static str);

impl<'de> de::EnumAccess<'de> for FirstVariant {
    type Error = TraceError;
    type Variant = UnitOnly;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let v = seed.deserialize(self.0.into_deserializer())?;
        Ok((v, UnitOnly))
    }
}

struct UnitOnly;

impl<'de> de::VariantAccess<'de> for UnitOnly {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, Self::Error> {
        Err(TraceError("only unit variants are traced".into()))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Self::Error> {
        Err(TraceError("only unit variants are traced".into()))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        Err(TraceError("only unit variants are traced".into()))
    }
}

#[cfg(test)]
mod tests;
