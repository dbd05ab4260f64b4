//! The one parsing rule for JSON in ledger artifacts (docs/LEDGER.md §12):
//! entries, proofs and bundle lines are refused when they start with a
//! byte-order mark, are not UTF-8, repeat a member name in any object, or
//! have anything but JSON whitespace after the value.
//!
//! `serde_json` keeps the last of duplicate members and a hand-written scan
//! may keep the first, so two readers could see two different documents
//! under one hash: refusing duplicates removes the ambiguity. No allocation
//! per value; member names of one object are collected to find repeats.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Why bytes are not a strict JSON text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StrictJsonError {
    #[error("starts with a byte-order mark")]
    Bom,
    #[error("is not UTF-8 (invalid byte at offset {offset})")]
    Utf8 { offset: usize },
    #[error("repeats the member {name:?} in one object")]
    Duplicate { name: String },
    #[error("is not one JSON value: {reason}")]
    Syntax { reason: String },
    #[error("does not fit: {reason}")]
    Shape { reason: String },
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Checks `bytes` against the rule without building anything.
pub fn check(bytes: &[u8]) -> Result<(), StrictJsonError> {
    if bytes.starts_with(BOM) {
        return Err(StrictJsonError::Bom);
    }
    std::str::from_utf8(bytes).map_err(|e| StrictJsonError::Utf8 {
        offset: e.valid_up_to(),
    })?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Strict::deserialize(&mut de).map_err(|e| syntax_or_duplicate(&e))?;
    // `end` accepts trailing JSON whitespace only.
    de.end().map_err(|e| StrictJsonError::Syntax {
        reason: e.to_string(),
    })
}

/// [`check`], then deserializes `T` from the same bytes.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StrictJsonError> {
    check(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| StrictJsonError::Shape {
        reason: e.to_string(),
    })
}

/// Marker message that carries a duplicate out of the visitor.
const DUP_PREFIX: &str = "\u{0}duplicate member ";

fn syntax_or_duplicate(e: &serde_json::Error) -> StrictJsonError {
    let msg = e.to_string();
    match msg.strip_prefix(DUP_PREFIX) {
        Some(rest) => StrictJsonError::Duplicate {
            // serde_json appends " at line L column C".
            name: rest
                .rsplit_once(" at line ")
                .map_or(rest, |(n, _)| n)
                .into(),
        },
        None => StrictJsonError::Syntax { reason: msg },
    }
}

/// Visits any value; fails on the first object with a repeated member.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(|()| Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
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
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            map.next_value::<Strict>()?;
            names.push(name);
        }
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(de::Error::custom(format_args!("{DUP_PREFIX}{}", w[0])));
        }
        Ok(())
    }
}

/// A member name, borrowed unless it had escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
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

    fn err(s: &[u8]) -> StrictJsonError {
        check(s).expect_err(&String::from_utf8_lossy(s))
    }

    #[test]
    fn accepts_plain_json_with_surrounding_whitespace() {
        for ok in [
            &b"{\"a\":1,\"b\":[1,2.5,\"x\",null,true,{\"a\":2}]}"[..],
            b"{\"a\":{\"a\":{\"a\":1}}}\n",
            b" [] ",
            b"\"\\u00e9\"",
            b"{\"a\\u0062\":1,\"ab \":2}",
        ] {
            check(ok).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(ok)));
        }
    }

    #[test]
    fn refuses_duplicate_members_at_any_depth() {
        assert_eq!(
            err(b"{\"index\":1,\"index\":2}"),
            StrictJsonError::Duplicate {
                name: "index".into()
            }
        );
        assert!(matches!(
            err(b"{\"a\":[{\"x\":1,\"y\":2,\"x\":3}]}"),
            StrictJsonError::Duplicate { name } if name == "x"
        ));
        // The same name spelled with an escape is still the same name.
        assert!(matches!(
            err(b"{\"ab\":1,\"a\\u0062\":2}"),
            StrictJsonError::Duplicate { name } if name == "ab"
        ));
    }

    #[test]
    fn refuses_bom_bad_utf8_and_trailing_data() {
        assert_eq!(err(b"\xEF\xBB\xBF{}"), StrictJsonError::Bom);
        assert_eq!(
            err(b"{\"a\":\"\xff\"}"),
            StrictJsonError::Utf8 { offset: 6 }
        );
        assert!(matches!(err(b"{} {}"), StrictJsonError::Syntax { .. }));
        assert!(matches!(err(b"{}x"), StrictJsonError::Syntax { .. }));
        assert!(matches!(err(b"{}\0"), StrictJsonError::Syntax { .. }));
        assert!(matches!(err(b""), StrictJsonError::Syntax { .. }));
        // A lone surrogate escape is not a Unicode string.
        assert!(matches!(
            err(b"{\"a\":\"\\ud800\"}"),
            StrictJsonError::Syntax { .. }
        ));
    }

    #[test]
    fn from_slice_checks_first_then_deserializes() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct P {
            #[allow(dead_code)]
            index: u64,
        }
        assert!(from_slice::<P>(b"{\"index\":1}").is_ok());
        assert!(matches!(
            from_slice::<P>(b"{\"index\":1,\"index\":2}"),
            Err(StrictJsonError::Duplicate { .. })
        ));
        assert!(matches!(
            from_slice::<P>(b"{\"index\":1.5}"),
            Err(StrictJsonError::Shape { .. })
        ));
    }
}
