//! The one strict rule for every JSON artifact this crate reads (proofs,
//! bundle manifests' events, entries when a full parse is needed): the
//! input is UTF-8 without a byte order mark, holds exactly one JSON value
//! (nothing but whitespace after it), and no object has two members of the
//! same name. `serde_json` alone keeps the last duplicate and so would let
//! two readers see two different documents.

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
/// every stored entry, where verify speed matters. A single pass over the
/// bytes (no tokenizer, no number conversion except where a number could be
/// out of range); it accepts exactly what [`parse_strict`] accepts, which the
/// tests check on a few hundred thousand generated and mutated documents.
pub fn check(bytes: &[u8]) -> Result<(), JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    if text.starts_with('\u{feff}') {
        return Err(JsonError::Bom);
    }
    let mut s = Scan { text, b: bytes, i: 0, names: Vec::new() };
    s.ws();
    s.value(0)?;
    s.ws();
    if s.i != bytes.len() {
        return Err(s.err("trailing characters after the JSON value"));
    }
    Ok(())
}

/// Bytes before the first `"`, `\\` or control character of `b`, eight at
/// a time: the classic zero-byte test (`(v - 0x01..) & !v & 0x80..`) on
/// `v = x ^ '"'`, `v = x ^ '\\'`, and `x - 0x20..` for bytes below 0x20.
/// Borrows only run upward, so the lowest flagged byte is a true match.
fn plain_run(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut chunks = b.chunks_exact(8);
    let mut done = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hit = zero(x ^ (LO * u64::from(b'"')))
            | zero(x ^ (LO * u64::from(b'\\')))
            | (x.wrapping_sub(LO * 0x20) & !x & HI);
        if hit != 0 {
            return done + (hit.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    done + chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(chunks.remainder().len())
}

/// The scanner of [`check`]: `i` is the next byte of `b` (= `text`).
struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    /// Member names of the objects being read, innermost last.
    names: Vec<Cow<'a, str>>,
}

impl<'a> Scan<'a> {
    fn err(&self, what: &str) -> JsonError {
        JsonError::Syntax(format!("{what} at byte {}", self.i))
    }
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Result<(), JsonError> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", char::from(c))))
        }
    }
    fn value(&mut self, depth: usize) -> Result<(), JsonError> {
        match self.b.get(self.i) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.skip_string().map(|_| ()),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("expected a value")),
        }
    }
    fn literal(&mut self, word: &str) -> Result<(), JsonError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }
    /// RFC 8259 §6; a number beyond f64's range is refused, as serde_json does.
    fn number(&mut self) -> Result<(), JsonError> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        let mut plain = true;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            plain = false;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            plain = false;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let token = &self.text[start..self.i];
        if (!plain || token.len() > 18) && token.parse::<f64>().map_or(true, f64::is_infinite) {
            return Err(self.err("number out of range"));
        }
        Ok(())
    }
    /// Skips a string starting at `"`; returns whether it held an escape.
    #[inline(always)]
    fn skip_string(&mut self) -> Result<bool, JsonError> {
        self.i += 1;
        let mut escaped = false;
        loop {
            self.i += plain_run(&self.b[self.i..]);
            match self.b.get(self.i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(_) => return Err(self.err("control character in a string")),
                None => return Err(self.err("unterminated string")),
            }
        }
        self.i += 1;
        Ok(escaped)
    }
    /// A member name: borrowed, or decoded when it holds escapes (rare;
    /// serde_json decodes what `escape` has already checked).
    fn name(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let open = self.i;
        if !self.skip_string()? {
            return Ok(Cow::Borrowed(&self.text[open + 1..self.i - 1]));
        }
        serde_json::from_str::<String>(&self.text[open..self.i])
            .map(Cow::Owned)
            .map_err(|e| JsonError::Syntax(e.to_string()))
    }
    /// One escape at `\`; a `\u` surrogate must be a high-low pair.
    fn escape(&mut self) -> Result<(), JsonError> {
        self.i += 1;
        match self.b.get(self.i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4()?;
                if (0xDC00..0xE000).contains(&unit) {
                    return Err(self.err("lone surrogate"));
                }
                if (0xD800..0xDC00).contains(&unit) {
                    if !self.b[self.i..].starts_with(b"\\u") {
                        return Err(self.err("lone surrogate"));
                    }
                    self.i += 1;
                    if !(0xDC00..0xE000).contains(&self.hex4()?) {
                        return Err(self.err("lone surrogate"));
                    }
                }
                Ok(())
            }
            _ => Err(self.err("invalid escape")),
        }
    }
    /// At `u`: reads `uXXXX`, returns the code unit.
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits =
            self.b.get(self.i + 1..self.i + 5).ok_or_else(|| self.err("invalid escape"))?;
        let mut unit = 0u32;
        for &d in digits {
            let v = char::from(d).to_digit(16).ok_or_else(|| self.err("invalid escape"))?;
            unit = unit * 16 + v;
        }
        self.i += 5;
        Ok(unit)
    }
    fn array(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }
    fn object(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        // Member names of every open object share one stack; an object's
        // names are compared directly while few (entries have a handful per
        // object), else sorted.
        let first = self.names.len();
        let dup =
            |name: &str| JsonError::Syntax(format!("repeats the member {name:?} in one object"));
        loop {
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a member name"));
            }
            let name = self.name()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.value(depth + 1)?;
            let mine = &self.names[first..];
            if mine.len() < 16 && mine.contains(&name) {
                return Err(dup(&name));
            }
            self.names.push(name);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
        if self.names.len() - first > 16 {
            let mut mine: Vec<&str> = self.names[first..].iter().map(|n| n.as_ref()).collect();
            mine.sort_unstable();
            if let Some(w) = mine.windows(2).find(|w| w[0] == w[1]) {
                return Err(dup(w[0]));
            }
        }
        self.names.truncate(first);
        Ok(())
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

    /// `check` (the hand scanner) and `parse_strict` (serde_json with the
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
        const NAMES: &[&str] = &["\"a\"", "\"b\"", "\"a\\u0062\"", "\"ab\"", "\"\\u0061\""];
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
            let (a, b) = (check(&bytes).is_ok(), parse_strict(&bytes).is_ok());
            if a != b && disagree.len() < 10 {
                disagree
                    .push(format!("check {a}, serde {b}: {:?}", String::from_utf8_lossy(&bytes)));
            }
        }
        assert!(disagree.is_empty(), "{}", disagree.join("\n"));
    }
}
