//! The one strict rule for every JSON artifact this crate reads (stored
//! entries, proofs, bundle manifests and events): the input is UTF-8
//! without a byte order mark, holds exactly one JSON value (nothing but
//! whitespace after it), and no object has two members of the same name
//! (compared decoded). `serde_json` alone keeps the last duplicate and so
//! would let two readers see two different documents.

use serde_json::Value;
use std::borrow::Cow;
use std::cell::Cell;

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

thread_local! {
    /// Member names of the open objects, kept between calls: verify checks
    /// every entry, and an allocation per entry costs ~3% of the check.
    static NAMES: Cell<Vec<Name>> = const { Cell::new(Vec::new()) };
}

/// [`check`] for a stored entry, where verify speed matters: also returns
/// the raw bytes of the entry's `event.time` (the top-level `event`
/// object's `time` member) when it is a string without escapes. One pass
/// over the bytes; the tests compare it with serde_json on a few hundred
/// thousand generated and mutated documents.
pub fn check_entry(bytes: &[u8]) -> Result<Option<&[u8]>, JsonError> {
    // `try_with`: no panic even from a thread-local destructor.
    let mut names = NAMES.try_with(Cell::take).unwrap_or_default();
    names.clear();
    let scanned = scan(bytes, &mut names);
    if names.capacity() <= 1024 {
        _ = NAMES.try_with(|cell| cell.set(names));
    }
    scanned.map_err(|stop| {
        // The scan checks UTF-8 only where bytes >= 0x80 are valid (in
        // strings): a failure is reported as if the whole input was checked first.
        if std::str::from_utf8(bytes).is_err() {
            return JsonError::NotUtf8;
        }
        if bytes.starts_with("\u{feff}".as_bytes()) {
            return JsonError::Bom;
        }
        JsonError::Syntax(match stop {
            Stop::Syntax(what, at) => format!("{what} at byte {at}"),
            Stop::Repeat(start, end) => format!(
                "repeats the member \"{}\" in one object",
                String::from_utf8_lossy(&bytes[start..end])
            ),
        })
    })
}

/// Why the scan stopped.
enum Stop {
    /// Invalid at this byte.
    Syntax(&'static str, usize),
    /// An object repeats the member written at `start..end`.
    Repeat(usize, usize),
}

/// A member name written at `start..end` (between the quotes): the first
/// eight bytes of its decoded form as a number (all of it for the usual
/// short names) and its decoded length.
struct Name {
    prefix: u64,
    len: usize,
    start: usize,
    end: usize,
    escaped: bool,
}

/// The decoded name (escapes are rare: decoded only when compared).
fn decoded(raw: &[u8], escaped: bool) -> Cow<'_, [u8]> {
    if !escaped {
        return Cow::Borrowed(raw);
    }
    let quoted = [&b"\""[..], raw, b"\""].concat();
    Cow::Owned(
        serde_json::from_slice::<String>(&quoted).map(String::into_bytes).unwrap_or_default(),
    )
}

/// What the value being read is to the entry's `event.time`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    /// The top-level object's `event` member.
    Event,
    /// That object's own `time` member.
    Time,
}

/// Bytes before the first `"`, `\\`, control character or non-ASCII byte
/// of `b`, eight at a time: the classic zero-byte test (`(v - 0x01..) & !v
/// & 0x80..`) on `v = x ^ '"'` and `v = x ^ '\\'`, and `(x - 0x20..) | x`
/// for bytes below 0x20 or above 0x7f. Borrows only run upward, so the
/// lowest flagged byte is a true match.
#[inline(always)]
fn plain_run(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut done = 0;
    while let Some(word) = b[done..].first_chunk::<8>() {
        let x = u64::from_le_bytes(*word);
        let hit = zero(x ^ (LO * u64::from(b'"')))
            | zero(x ^ (LO * u64::from(b'\\')))
            | ((x.wrapping_sub(LO * 0x20) | x) & HI);
        if hit != 0 {
            return done + (hit.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let rest = &b[done..];
    let special = |&c: &u8| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c);
    done + rest.iter().position(special).unwrap_or(rest.len())
}

#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    // Stored entries hold no whitespace: one compare in the usual case.
    if b.get(i).is_some_and(|&c| c > b' ') {
        return i;
    }
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The whole document, without recursion: `depth` open containers, bit
/// `d` of `objects` set when container `d` is an object, whose names start
/// at `names[firsts[d]]`. Returns the entry's `event.time` when it is a
/// string without escapes.
fn scan<'a>(b: &'a [u8], names: &mut Vec<Name>) -> Result<Option<&'a [u8]>, Stop> {
    let (mut i, mut time, mut role) = (ws(b, 0), None, Role::Other);
    let (mut depth, mut objects, mut firsts) = (0, 0u64, [0; MAX_DEPTH]);
    // The top-level `event` object is open (as container 1).
    let mut in_event = false;
    loop {
        // A value at `i`.
        match b.get(i) {
            Some(&open @ (b'{' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return Err(Stop::Syntax("nested too deeply", i));
                }
                i = ws(b, i + 1);
                // `{` + 2 is `}`, `[` + 2 is `]`.
                if b.get(i) != Some(&(open + 2)) {
                    let object = open == b'{';
                    objects = objects & !(1 << depth) | u64::from(object) << depth;
                    firsts[depth] = names.len();
                    in_event |= object && role == Role::Event;
                    depth += 1;
                    role = Role::Other;
                    if object {
                        role = member(b, &mut i, names, firsts[depth - 1], depth, in_event)?;
                    }
                    continue;
                }
                i += 1;
            }
            Some(b'"') => {
                let (end, escaped) = string(b, i)?;
                if role == Role::Time {
                    time = (!escaped).then(|| &b[i + 1..end - 1]);
                }
                i = end;
            }
            Some(b't') => i = literal(b, i, b"true")?,
            Some(b'f') => i = literal(b, i, b"false")?,
            Some(b'n') => i = literal(b, i, b"null")?,
            Some(b'-' | b'0'..=b'9') => i = number(b, i)?,
            _ => return Err(Stop::Syntax("expected a value", i)),
        }
        // After a value: `,` and the next member or element, or the end of containers.
        loop {
            i = ws(b, i);
            if depth == 0 {
                return match i == b.len() {
                    true => Ok(time),
                    false => Err(Stop::Syntax("trailing characters after the JSON value", i)),
                };
            }
            let object = objects >> (depth - 1) & 1 == 1;
            match b.get(i) {
                Some(b',') => {
                    i = ws(b, i + 1);
                    role = Role::Other;
                    if object {
                        role = member(b, &mut i, names, firsts[depth - 1], depth, in_event)?;
                    }
                    break;
                }
                Some(b'}') if object => names.truncate(firsts[depth - 1]),
                Some(b']') if !object => {}
                _ if object => return Err(Stop::Syntax("expected `,` or `}`", i)),
                _ => return Err(Stop::Syntax("expected `,` or `]`", i)),
            }
            i += 1;
            depth -= 1;
            in_event &= depth > 1;
        }
    }
}

/// A member name and `:` at `i` in an object at `depth` whose names start
/// at `names[first]`; returns what its value is to the event time.
#[inline(always)]
fn member(
    b: &[u8],
    i: &mut usize,
    names: &mut Vec<Name>,
    first: usize,
    depth: usize,
    in_event: bool,
) -> Result<Role, Stop> {
    if b.get(*i) != Some(&b'"') {
        return Err(Stop::Syntax("expected a member name", *i));
    }
    let (start, (end, escaped)) = (*i + 1, string(b, *i)?);
    let raw = &b[start..end - 1];
    // Little-endian, zero-padded; one load where the buffer allows.
    let (prefix, len) = match b[start..].first_chunk::<8>() {
        Some(w) if !escaped && raw.len() >= 8 => (u64::from_le_bytes(*w), raw.len()),
        Some(w) if !escaped => (u64::from_le_bytes(*w) & ((1 << (8 * raw.len())) - 1), raw.len()),
        _ => {
            let d = decoded(raw, escaped);
            (d.iter().take(8).rev().fold(0, |a, &c| (a << 8) | u64::from(c)), d.len())
        }
    };
    for seen in &names[first..] {
        if seen.prefix == prefix
            && seen.len == len
            && (len <= 8
                || decoded(&b[seen.start..seen.end], seen.escaped) == decoded(raw, escaped))
        {
            return Err(Stop::Repeat(start, end - 1));
        }
    }
    names.push(Name { prefix, len, start, end: end - 1, escaped });
    *i = ws(b, end);
    if b.get(*i) != Some(&b':') {
        return Err(Stop::Syntax("expected `:`", *i));
    }
    *i = ws(b, *i + 1);
    Ok(match (depth, raw) {
        (1, b"event") => Role::Event,
        (2, b"time") if in_event => Role::Time,
        _ => Role::Other,
    })
}

/// A string at `"`: the index after its closing quote, and whether it has escapes.
#[inline(always)]
fn string(b: &[u8], open: usize) -> Result<(usize, bool), Stop> {
    let (mut i, mut escaped, mut high) = (open + 1, false, false);
    loop {
        i += plain_run(&b[i..]);
        match b.get(i) {
            Some(b'"') => break,
            Some(b'\\') => {
                escaped = true;
                i = escape(b, i)?;
            }
            Some(0x80..) => {
                high = true;
                i += 1;
            }
            Some(_) => return Err(Stop::Syntax("control character in a string", i)),
            None => return Err(Stop::Syntax("unterminated string", i)),
        }
    }
    // Escapes and quotes are ASCII, so the raw body is UTF-8 exactly when the text is.
    if high && std::str::from_utf8(&b[open + 1..i]).is_err() {
        return Err(Stop::Syntax("not utf-8", open));
    }
    Ok((i + 1, escaped))
}

/// One escape at `\`; a `\u` surrogate must be a high-low pair. Returns
/// the index after it.
fn escape(b: &[u8], i: usize) -> Result<usize, Stop> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => match hex4(b, i + 1)? {
            0xD800..0xDC00 if b[i + 6..].starts_with(b"\\u") => match hex4(b, i + 7)? {
                0xDC00..0xE000 => Ok(i + 12),
                _ => Err(Stop::Syntax("lone surrogate", i + 12)),
            },
            0xD800..0xE000 => Err(Stop::Syntax("lone surrogate", i + 6)),
            _ => Ok(i + 6),
        },
        _ => Err(Stop::Syntax("invalid escape", i + 1)),
    }
}

/// The code unit of `uXXXX` at `u`.
fn hex4(b: &[u8], u: usize) -> Result<u32, Stop> {
    let bad = Stop::Syntax("invalid escape", u);
    let digits = b.get(u + 1..u + 5).ok_or(Stop::Syntax("invalid escape", u))?;
    digits.iter().try_fold(0, |unit, &d| Some(unit * 16 + char::from(d).to_digit(16)?)).ok_or(bad)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, Stop> {
    match b[i..].starts_with(word) {
        true => Ok(i + word.len()),
        false => Err(Stop::Syntax("expected a value", i)),
    }
}

/// A number at `start` (RFC 8259 §6); one beyond f64's range is refused,
/// as serde_json does. Returns the index after it.
fn number(b: &[u8], start: usize) -> Result<usize, Stop> {
    let digits = |i: usize| i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let invalid = |i| Err(Stop::Syntax("invalid number", i));
    let mut i = start + usize::from(b[start] == b'-');
    i = match b.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits(i),
        _ => return invalid(i),
    };
    let integer = i;
    if b.get(i) == Some(&b'.') {
        i = match digits(i + 1) {
            j if j == i + 1 => return invalid(j),
            j => j,
        };
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1 + usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        i = match digits(i) {
            j if j == i => return invalid(j),
            j => j,
        };
    }
    // The token is ASCII (digits, sign, `.`, `e`), so valid UTF-8.
    let token = std::str::from_utf8(&b[start..i]).unwrap_or_default();
    let short_integer = integer == i && token.len() <= 18;
    if !short_integer && token.parse::<f64>().map_or(true, f64::is_infinite) {
        return Err(Stop::Syntax("number out of range", i));
    }
    Ok(i)
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
            // Non-ASCII inside and across the eight-byte words of the string scan.
            "\"日本語のテキスト\"",
            "\"abcdefgé\"",
            "\"abcdefghijklmnö\\n😀xyz\"",
            "[]",
            "{}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
        ];
        const NAMES: &[&str] = &[
            "\"a\"",
            "\"b\"",
            "\"a\\u0062\"",
            "\"ab\"",
            "\"\\u0061\"",
            "\"event\"",
            "\"time\"",
            "\"é\"",
            "\"abcdefghi\"",
            "\"abcdefgh\\u0069\"",
        ];
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
        // Bytes >= 0x80 are checked as UTF-8 only inside strings: mutations
        // add stray lead and continuation bytes everywhere.
        const NOISE: &[u8] =
            b" \t\n\r{}[]\",:\\0123456789-+.eEutrfalsn\x00\x1f\x7f\x80\xbf\xc3\xe6\xed\xf0\xf4\xff";
        let mut disagree = Vec::new();
        for case in 0..200_000 {
            let mut bytes = doc(&mut next, 0).into_bytes();
            if case % 1000 == 7 {
                bytes.splice(0..0, "\u{feff}".bytes());
            }
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
                // The same kind of error: not UTF-8, a BOM, or the syntax.
                (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
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
