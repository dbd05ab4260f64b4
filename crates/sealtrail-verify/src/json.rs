//! The one strict rule for every JSON artifact this crate reads (stored
//! entries, proofs, bundle manifests and events): the input is UTF-8
//! without a byte order mark, holds exactly one JSON value (nothing but
//! whitespace after it), and no object has two members of the same name
//! (compared decoded). `serde_json` alone keeps the last duplicate and so
//! would let two readers see two different documents.

use serde_json::Value;

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
    check(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Checks `bytes` under the strict rule without building a value.
pub fn check(bytes: &[u8]) -> Result<(), JsonError> {
    check_entry(bytes).map(|_| ())
}

/// [`check`] for a stored entry, where verify speed matters: also returns
/// the raw bytes of the entry's `event.time` (the top-level `event`
/// object's `time` member) when it is a string without escapes. One pass
/// over the bytes; the tests compare it with serde_json on a few hundred
/// thousand generated and mutated documents.
pub fn check_entry(bytes: &[u8]) -> Result<Option<&[u8]>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    if text.starts_with('\u{feff}') {
        return Err(JsonError::Bom);
    }
    let mut s = Scan { b: bytes, i: 0, names: Vec::with_capacity(32), time: None };
    match s.document() {
        Ok(()) => Ok(s.time),
        Err(Stop::Syntax(what)) => Err(JsonError::Syntax(format!("{what} at byte {}", s.i))),
        Err(Stop::Repeat(name)) => Err(JsonError::Syntax(format!(
            "repeats the member \"{}\" in one object",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// Why the scan stopped; small, as it is returned through every call.
enum Stop<'a> {
    /// Invalid at byte `Scan::i`.
    Syntax(&'static str),
    /// An object repeats this member name (as written).
    Repeat(&'a [u8]),
}

/// A member name: where it is written (`raw`, between the quotes), the
/// first eight bytes of its decoded form as a number (all of it for the
/// usual short names), and its decoded length.
struct Name<'a> {
    raw: &'a [u8],
    escaped: bool,
    prefix: u64,
    len: usize,
}

impl Name<'_> {
    /// The decoded name (escapes are rare: decoded only when compared).
    fn decoded(&self) -> Vec<u8> {
        let quoted = [&b"\""[..], self.raw, b"\""].concat();
        serde_json::from_slice::<String>(&quoted).map(String::into_bytes).unwrap_or_default()
    }
}

/// Where an object sits, to find the entry's `event.time` on the way.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Event,
    Other,
}

/// The scanner: `i` is the next byte of `b`; the names of the open objects
/// share `names`, innermost last.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    names: Vec<Name<'a>>,
    time: Option<&'a [u8]>,
}

/// Bytes before the first `"`, `\\` or control character of `b`, eight at
/// a time: the classic zero-byte test (`(v - 0x01..) & !v & 0x80..`) on
/// `v = x ^ '"'`, `v = x ^ '\\'`, and `x - 0x20..` for bytes below 0x20.
/// Borrows only run upward, so the lowest flagged byte is a true match.
fn plain_run(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut done = 0;
    while let Some(word) = b[done..].first_chunk::<8>() {
        let x = u64::from_le_bytes(*word);
        let hit = zero(x ^ (LO * u64::from(b'"')))
            | zero(x ^ (LO * u64::from(b'\\')))
            | (x.wrapping_sub(LO * 0x20) & !x & HI);
        if hit != 0 {
            return done + (hit.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let rest = &b[done..];
    done + rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).unwrap_or(rest.len())
}

impl<'a> Scan<'a> {
    fn document(&mut self) -> Result<(), Stop<'a>> {
        self.ws();
        self.value(0, Place::Top)?;
        self.ws();
        if self.i != self.b.len() {
            return Err(Stop::Syntax("trailing characters after the JSON value"));
        }
        Ok(())
    }
    #[inline(always)]
    fn ws(&mut self) {
        // Stored entries hold no whitespace: one compare in the usual case.
        if self.b.get(self.i).is_some_and(|&c| c <= b' ') {
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }
    }
    fn value(&mut self, depth: usize, place: Place) -> Result<(), Stop<'a>> {
        match self.b.get(self.i) {
            Some(b'{') => self.object(depth, place),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Stop::Syntax("expected a value")),
        }
    }
    fn literal(&mut self, word: &[u8]) -> Result<(), Stop<'a>> {
        if !self.b[self.i..].starts_with(word) {
            return Err(Stop::Syntax("expected a value"));
        }
        self.i += word.len();
        Ok(())
    }
    /// Skips ASCII digits; false if there were none.
    fn digits(&mut self) -> bool {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        self.i > start
    }
    /// RFC 8259 §6; a number beyond f64's range is refused, as serde_json does.
    fn number(&mut self) -> Result<(), Stop<'a>> {
        let start = self.i;
        self.i += usize::from(self.b[self.i] == b'-');
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => _ = self.digits(),
            _ => return Err(Stop::Syntax("invalid number")),
        }
        let integer = self.i;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.digits() {
                return Err(Stop::Syntax("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if !self.digits() {
                return Err(Stop::Syntax("invalid number"));
            }
        }
        // The token is ASCII (digits, sign, `.`, `e`), so valid UTF-8.
        let token = std::str::from_utf8(&self.b[start..self.i]).unwrap_or_default();
        let short_integer = integer == self.i && token.len() <= 18;
        if !short_integer && token.parse::<f64>().map_or(true, f64::is_infinite) {
            return Err(Stop::Syntax("number out of range"));
        }
        Ok(())
    }
    /// Skips a string at `"`; returns its content and whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a [u8], bool), Stop<'a>> {
        self.i += 1;
        let open = self.i;
        let mut escaped = false;
        loop {
            self.i += plain_run(&self.b[self.i..]);
            match self.b.get(self.i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(_) => return Err(Stop::Syntax("control character in a string")),
                None => return Err(Stop::Syntax("unterminated string")),
            }
        }
        self.i += 1;
        Ok((&self.b[open..self.i - 1], escaped))
    }
    /// One escape at `\`; a `\u` surrogate must be a high-low pair.
    fn escape(&mut self) -> Result<(), Stop<'a>> {
        self.i += 1;
        match self.b.get(self.i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => match self.hex4()? {
                0xD800..0xDC00 if self.b[self.i..].starts_with(b"\\u") => {
                    self.i += 1;
                    match self.hex4()? {
                        0xDC00..0xE000 => Ok(()),
                        _ => Err(Stop::Syntax("lone surrogate")),
                    }
                }
                0xD800..0xE000 => Err(Stop::Syntax("lone surrogate")),
                _ => Ok(()),
            },
            _ => Err(Stop::Syntax("invalid escape")),
        }
    }
    /// At `u`: reads `uXXXX`, returns the code unit.
    fn hex4(&mut self) -> Result<u32, Stop<'a>> {
        let digits = self.b.get(self.i + 1..self.i + 5).ok_or(Stop::Syntax("invalid escape"))?;
        let mut unit = 0;
        for &d in digits {
            unit = unit * 16 + char::from(d).to_digit(16).ok_or(Stop::Syntax("invalid escape"))?;
        }
        self.i += 5;
        Ok(unit)
    }
    /// At `[` or `{`: steps in; false if the container is empty.
    fn open(&mut self, depth: usize, end: u8) -> Result<bool, Stop<'a>> {
        if depth >= MAX_DEPTH {
            return Err(Stop::Syntax("nested too deeply"));
        }
        self.i += 1;
        self.ws();
        let empty = self.b.get(self.i) == Some(&end);
        self.i += usize::from(empty);
        Ok(!empty)
    }
    /// After a member or element: `,` (true), or the closing `end` (false).
    fn next(&mut self, end: u8, what: &'static str) -> Result<bool, Stop<'a>> {
        self.ws();
        match self.b.get(self.i) {
            Some(b',') => {
                self.i += 1;
                self.ws();
                Ok(true)
            }
            Some(&c) if c == end => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Stop::Syntax(what)),
        }
    }
    fn array(&mut self, depth: usize) -> Result<(), Stop<'a>> {
        if self.open(depth, b']')? {
            self.value(depth + 1, Place::Other)?;
            while self.next(b']', "expected `,` or `]`")? {
                self.value(depth + 1, Place::Other)?;
            }
        }
        Ok(())
    }
    fn object(&mut self, depth: usize, place: Place) -> Result<(), Stop<'a>> {
        if !self.open(depth, b'}')? {
            return Ok(());
        }
        let first = self.names.len();
        loop {
            if self.b.get(self.i) != Some(&b'"') {
                return Err(Stop::Syntax("expected a member name"));
            }
            let (name, escaped) = self.string()?;
            self.remember(first, name, escaped)?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(Stop::Syntax("expected `:`"));
            }
            self.i += 1;
            self.ws();
            let string_value = self.b.get(self.i) == Some(&b'"');
            match place {
                // Most member values are strings: skipped here, not through `value`.
                Place::Other if string_value => _ = self.string()?,
                Place::Top if name == b"event" => self.value(depth + 1, Place::Event)?,
                Place::Event if string_value && name == b"time" => {
                    self.time = match self.string()? {
                        (time, false) => Some(time),
                        (_, true) => None,
                    }
                }
                _ => self.value(depth + 1, Place::Other)?,
            }
            if !self.next(b'}', "expected `,` or `}`")? {
                break;
            }
        }
        self.names.truncate(first);
        Ok(())
    }
    /// Records a member name of the object whose names start at
    /// `names[first]`; a repeat is an error.
    #[inline(always)]
    fn remember(&mut self, first: usize, raw: &'a [u8], escaped: bool) -> Result<(), Stop<'a>> {
        let mut name = Name { raw, escaped, prefix: 0, len: raw.len() };
        let decoded = if escaped { name.decoded() } else { Vec::new() };
        // Little-endian, zero-padded; one load where the buffer allows.
        let start = self.i - 1 - raw.len();
        name.prefix = match self.b[start..].first_chunk::<8>() {
            Some(w) if !escaped && raw.len() >= 8 => u64::from_le_bytes(*w),
            Some(w) if !escaped => u64::from_le_bytes(*w) & ((1 << (8 * raw.len())) - 1),
            _ => {
                let bytes = if escaped { &decoded[..] } else { raw };
                name.len = bytes.len();
                bytes.iter().take(8).rev().fold(0, |a, &c| (a << 8) | u64::from(c))
            }
        };
        for seen in &self.names[first..] {
            let same = seen.prefix == name.prefix
                && seen.len == name.len
                && (name.len <= 8
                    || match (seen.escaped, escaped) {
                        (false, false) => seen.raw == raw,
                        _ => seen.decoded() == name.decoded(),
                    });
            if same {
                return Err(Stop::Repeat(raw));
            }
        }
        self.names.push(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::Map;
    use std::fmt;

    /// The rule written with serde_json alone (the first implementation),
    /// the reference the scanner is compared with.
    fn reference(bytes: &[u8]) -> Result<Value, JsonError> {
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
                    return Err(de::Error::custom(format!(
                        "repeats the member {key:?} in one object"
                    )));
                }
                let v = map.next_value_seed(Strict(self.0 + 1))?;
                out.insert(key, v);
            }
            Ok(Value::Object(out))
        }
    }

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
        // Wide objects.
        let wider = |extra: &str| {
            let members: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
            format!("{{{},{extra}}}", members.join(","))
        };
        assert_eq!(check(wider("\"x\":1").as_bytes()), Ok(()));
        assert!(check(wider("\"m39\":1").as_bytes()).is_err());
        // Names equal in their first eight bytes; a short name read near the
        // end of the buffer (folded byte by byte) equals the same name read
        // as a masked word.
        assert_eq!(check(br#"{"abcdefghX":1,"abcdefghY":2}"#), Ok(()));
        assert!(check(br#"{"abcdefghX":1,"abcdefghX":2}"#).is_err());
        assert!(check(br#"{"ab":1,"ab":2}"#).is_err());
        assert!(check(br#"{"abcdefgh":1,"abcdefgh":2}"#).is_err());
        // The event time is the top-level `event` object's own `time`.
        for (doc, want) in [
            (
                &br#"{"x":{"event":{"time":"A"}},"event":{"id":"1","time":"B"}}"#[..],
                Some(&b"B"[..]),
            ),
            (br#"{"event":{"actor":{"time":"A"},"time":"B"}}"#, Some(b"B")),
            (br#"{"event":{"time":1}}"#, None),
            (br#"[{"event":{"time":"A"}}]"#, None),
            (br#"{"time":"A","event":{}}"#, None),
        ] {
            assert_eq!(check_entry(doc), Ok(want), "{}", String::from_utf8_lossy(doc));
        }
        assert!(check(wide("\"m3\":1").as_bytes()).is_err());
        assert!(check(wide("\"m18\":1").as_bytes()).is_err());
    }

    /// `check_entry` (the hand scanner) and `reference` (serde_json with the
    /// duplicate rule) must agree on every input: generated documents and
    /// byte-level mutations of them, from a fixed seed.
    #[test]
    fn the_scanner_agrees_with_serde_json_on_generated_and_mutated_documents() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        const ATOMS: &[&str] = &[
            "0",
            "-0",
            "1",
            "-12",
            "3.25",
            "1e5",
            "2E-3",
            "-0.5e+2",
            "1e400",
            "-1e400",
            "1e-400",
            "123456789012345678901234567890",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "true",
            "false",
            "null",
            "tru",
            "\"\"",
            "\"a\"",
            "\"\\u0062\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud83d\"",
            "\"\\ude00\"",
            "\"\\udc00\"",
            "\"\\udbff\\udfff\"",
            "\"\\ud800\\ud800\"",
            "\"\\uDFFF\"",
            "\"\\ud83dx\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\/\\b\\f\\n\\r\\t\"",
            "\"\t\"",
            "\"\u{7f}\"",
            "\"é\"",
            "[]",
            "{}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
        ];
        const NAMES: &[&str] =
            &["\"a\"", "\"b\"", "\"a\\u0062\"", "\"ab\"", "\"\\u0061\"", "\"event\"", "\"time\""];
        fn doc(next: &mut dyn FnMut() -> u64, depth: u32) -> String {
            match next() % if depth > 4 { 1 } else { 4 } {
                0 => ATOMS[(next() % ATOMS.len() as u64) as usize].to_owned(),
                1 => {
                    let n = next() % 4;
                    let items: Vec<String> = (0..n).map(|_| doc(next, depth + 1)).collect();
                    format!("[{}]", items.join(","))
                }
                _ => {
                    let n = next() % if next().is_multiple_of(8) { 20 } else { 4 };
                    let items: Vec<String> = (0..n)
                        .map(|i| {
                            let name = if next().is_multiple_of(3) {
                                NAMES[(next() % NAMES.len() as u64) as usize].to_owned()
                            } else {
                                format!("\"m{i}\"")
                            };
                            format!("{name} : {}", doc(next, depth + 1))
                        })
                        .collect();
                    format!("{{{}}}", items.join(", "))
                }
            }
        }
        const NOISE: &[u8] = b" \t\n\r{}[]\",:\\0123456789-+.eEutrfalsn\x00\x1f\xff";
        let mut disagree = Vec::new();
        for case in 0..200_000 {
            let mut bytes = doc(&mut next, 0).into_bytes();
            if case % 2 == 1 && !bytes.is_empty() {
                for _ in 0..1 + next() % 3 {
                    let at = (next() % (bytes.len() as u64 + 1)) as usize;
                    let c = NOISE[(next() % NOISE.len() as u64) as usize];
                    match next() % 3 {
                        0 => bytes.insert(at, c),
                        1 if at < bytes.len() => bytes[at] = c,
                        _ if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => {}
                    }
                }
            }
            let (a, b) = (check_entry(&bytes), reference(&bytes));
            // Where both accept, the event time found on the way is serde's.
            let time = |v: &Value| Some(v.get("event")?.get("time")?.as_str()?.to_owned());
            let same = match (&a, &b) {
                (Ok(Some(raw)), Ok(v)) => time(v).as_deref().map(str::as_bytes) == Some(*raw),
                (Ok(None), Ok(v)) => time(v).is_none() || bytes.contains(&b'\\'),
                (Err(_), Err(_)) => true,
                _ => false,
            };
            if !same && disagree.len() < 10 {
                let (a, b) = (a.is_ok(), b.is_ok());
                disagree
                    .push(format!("check {a}, serde {b}: {:?}", String::from_utf8_lossy(&bytes)));
            }
        }
        assert!(disagree.is_empty(), "{}", disagree.join("\n"));
    }
}
