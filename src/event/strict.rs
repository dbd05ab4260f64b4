//! Serde helpers that make parsing exactly as strict as the JSON Schema.
//!
//! Derived struct impls also accept a JSON array (fields by position) and
//! `Option` fields accept `null`; the schema allows neither. Derived unit
//! enums report a wrong type as a JSON syntax error; we want a field error.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeOwned, Visitor};

/// Forwards everything to `D`, except that structs must be JSON objects.
pub(crate) struct MapOnly<D>(pub(crate) D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A required struct field that must be a JSON object.
pub(crate) fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    T::deserialize(MapOnly(deserializer))
}

/// An optional struct field: absent is `None` (via `#[serde(default)]`),
/// present must be a JSON object, `null` is rejected.
pub(crate) fn opt_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    T::deserialize(MapOnly(deserializer)).map(Some)
}

/// An optional scalar field: absent is `None`, `null` is rejected.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Deserializes a unit enum from its string name, so a wrong JSON type is a
/// field error rather than a syntax error.
pub(crate) fn enum_from_str<'de, D, T>(
    deserializer: D,
    names: &'static [&'static str],
    from: fn(&str) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T> {
        names: &'static [&'static str],
        from: fn(&str) -> Option<T>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "one of {}", self.names.join(", "))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.from)(v).ok_or_else(|| E::unknown_variant(v, self.names))
        }
    }
    deserializer.deserialize_str(V { names, from })
}
