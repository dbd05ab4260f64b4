//! The one strict rule for every JSON artifact this crate reads (proofs,
//! bundle manifests' events, entries when a full parse is needed): the
//! input is UTF-8 without a byte order mark, holds exactly one JSON value
//! (nothing but whitespace after it), and no object has two members of the
//! same name. `serde_json` alone keeps the last duplicate and so would let
//! two readers see two different documents.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// Nesting deeper than this is refused (serde_json's own limit is 128).
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("not utf-8")]
    NotUtf8,
    #[error("starts with a byte order mark")]
    Bom,
    #[error("{0}")]
    Syntax(String),
}

/// Parses `bytes` under the strict rule.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    if text.starts_with('\u{feff}') {
        return Err(JsonError::Bom);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict(0).deserialize(&mut de).map_err(|e| JsonError::Syntax(e.to_string()))?;
    // Trailing data (anything but whitespace) is refused.
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Builds a `Value`, refusing duplicate members; the field is the depth.
struct Strict(usize);

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict(self.0 + 1))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("repeats the member {key:?} in one object")));
            }
            let v = map.next_value_seed(Strict(self.0 + 1))?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// [`parse_strict`] without building the value: the rule as applied to
/// every stored entry, where verify speed matters.
pub fn check(bytes: &[u8]) -> Result<(), JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    if text.starts_with('\u{feff}') {
        return Err(JsonError::Bom);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Check(0).deserialize(&mut de).map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Visits a value, failing on a repeated member; the field is the depth.
struct Check(usize);

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        while seq.next_element_seed(Check(self.0 + 1))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        // Entries have a few members per object: the first SMALL names
        // stay on the stack and are compared directly (no allocation, no
        // sort); larger objects spill into a sorted check.
        const SMALL: usize = 16;
        let mut small: [Cow<'de, str>; SMALL] = std::array::from_fn(|_| Cow::Borrowed(""));
        let mut n = 0usize;
        let mut spill: Vec<Cow<'de, str>> = Vec::new();
        let dup =
            |name: &str| de::Error::custom(format!("repeats the member {name:?} in one object"));
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            map.next_value_seed(Check(self.0 + 1))?;
            if n < SMALL {
                if small[..n].contains(&name) {
                    return Err(dup(&name));
                }
                small[n] = name;
                n += 1;
            } else {
                spill.push(name);
            }
        }
        if !spill.is_empty() {
            spill.extend(small);
            spill.sort_unstable();
            if let Some(w) = spill.windows(2).find(|w| w[0] == w[1]) {
                return Err(dup(&w[0]));
            }
        }
        Ok(())
    }
}

/// A member name.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(V).map(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_document() {
        assert_eq!(
            parse_strict(br#" {"a":[1,{"b":"c"}]} "#).unwrap(),
            serde_json::json!({"a":[1,{"b":"c"}]})
        );
        for bad in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":{"a":1,"a":1}}"#,
            br#"[{"a":1,"b":2,"a":3}]"#,
            b"\xef\xbb\xbf{}",
            b"{\"a\":\"\xff\"}",
            b"{} {}",
            b"{}x",
            b"{",
            b"",
        ] {
            assert!(parse_strict(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
            assert!(check(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_strict(deep.as_bytes()).is_err());
        assert!(check(deep.as_bytes()).is_err());
        // An escaped name is the same name; distinct names pass.
        assert!(check(br#"{"ab":1,"a\u0062":2}"#).is_err());
        assert_eq!(check(br#" {"a":[1,{"b":"c","a":null}],"b":2.5} "#), Ok(()));
        // Objects larger than the inline names: a repeat in the spill, and
        // across the inline names and the spill, is found too.
        let wide = |extra: &str| {
            let members: Vec<String> = (0..20).map(|i| format!("\"m{i}\":{i}")).collect();
            format!("{{{},{extra}}}", members.join(","))
        };
        assert_eq!(check(wide("\"x\":1").as_bytes()), Ok(()));
        assert!(check(wide("\"m3\":1").as_bytes()).is_err());
        assert!(check(wide("\"m18\":1").as_bytes()).is_err());
    }
}
