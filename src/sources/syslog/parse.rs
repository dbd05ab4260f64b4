//! Syslog message parsing: RFC 5424 and RFC 3164 (BSD syslog).
//!
//! A frame is parsed whole (the framing layer has already bounded its size).
//! The format is told apart after the PRI: version `1` followed by a space
//! means RFC 5424, anything else is read as RFC 3164, which is a loose
//! convention rather than a grammar, so its parser tolerates missing parts
//! (no timestamp, no hostname, no tag) instead of refusing the line.
//!
//! RFC 3164 timestamps carry neither year nor zone: the year is the one that
//! puts the instant nearest to the receiver's clock (so a December line read
//! in January lands in the previous year), and the zone is taken as UTC.

use crate::event::Timestamp;
use thiserror::Error;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Why a frame is not a syslog message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("message is not valid utf-8 (first bad byte at offset {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },
    #[error("not a syslog message: it does not start with <PRI>")]
    MissingPri,
    #[error("not a syslog message: malformed <PRI>")]
    MalformedPri,
    #[error("syslog priority {0} is out of range (0 to 191)")]
    PriOutOfRange(u32),
    #[error("rfc 5424 header: missing {0}")]
    MissingField(&'static str),
    #[error("rfc 5424 header: {field} is longer than {max} characters")]
    FieldTooLong { field: &'static str, max: usize },
    #[error("rfc 5424 header: {field} contains characters outside printable ascii")]
    FieldNotPrintable { field: &'static str },
    #[error("rfc 5424 header: timestamp {0:?} is not a valid rfc 3339 date-time")]
    BadTimestamp(String),
    #[error("rfc 5424 structured data: {0}")]
    StructuredData(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc5424 => "rfc5424",
            Format::Rfc3164 => "rfc3164",
        }
    }
}

/// One SD-ELEMENT: `[id name="value" ...]`, values unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

/// A parsed syslog message. NILVALUEs (`-`) and absent parts are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub format: Format,
    pub facility: u8,
    pub severity: u8,
    pub timestamp: Option<Timestamp>,
    pub hostname: Option<String>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164).
    pub app_name: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    pub structured_data: Vec<SdElement>,
    /// MSG, without a leading byte-order mark.
    pub msg: String,
}

/// RFC 5424 header field limits (section 6).
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_PROCID: usize = 128;
const MAX_MSGID: usize = 32;
const MAX_SD_NAME: usize = 32;

/// Parses one frame. `now` is the receiver's clock, used to infer the year of
/// RFC 3164 timestamps.
pub fn parse(frame: &[u8], now: OffsetDateTime) -> Result<Message, ParseError> {
    let text = std::str::from_utf8(frame).map_err(|e| ParseError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    // Trailers that senders add to datagrams and lines.
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    let (pri, rest) = parse_pri(text)?;
    let (facility, severity) = ((pri / 8) as u8, (pri % 8) as u8);
    // Only version 1 is defined; anything else (a BSD message may well
    // start with a number) is read as RFC 3164.
    match rest.strip_prefix("1 ") {
        Some(after) => parse_5424(facility, severity, after),
        None => Ok(parse_3164(facility, severity, rest, now)),
    }
}

fn parse_pri(text: &str) -> Result<(u32, &str), ParseError> {
    let rest = text.strip_prefix('<').ok_or(ParseError::MissingPri)?;
    let end = rest
        .find('>')
        .filter(|&e| e <= 3)
        .ok_or(ParseError::MalformedPri)?;
    let digits = &rest[..end];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::MalformedPri);
    }
    // At most three ASCII digits, so this parse cannot overflow.
    let pri: u32 = digits.parse().map_err(|_| ParseError::MalformedPri)?;
    if pri > 191 {
        return Err(ParseError::PriOutOfRange(pri));
    }
    Ok((pri, &rest[end + 1..]))
}

/// Splits off the next space-delimited header field.
fn field<'a>(rest: &mut &'a str, name: &'static str) -> Result<&'a str, ParseError> {
    let s = *rest;
    let (value, after) = match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    if value.is_empty() {
        return Err(ParseError::MissingField(name));
    }
    *rest = after;
    Ok(value)
}

/// A header field: NILVALUE becomes `None`; length and charset checked.
fn header_value(value: &str, name: &'static str, max: usize) -> Result<Option<String>, ParseError> {
    if value == "-" {
        return Ok(None);
    }
    if value.len() > max {
        return Err(ParseError::FieldTooLong { field: name, max });
    }
    if !value.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(ParseError::FieldNotPrintable { field: name });
    }
    Ok(Some(value.to_owned()))
}

fn parse_5424(facility: u8, severity: u8, mut rest: &str) -> Result<Message, ParseError> {
    let ts = field(&mut rest, "timestamp")?;
    let timestamp = if ts == "-" {
        None
    } else {
        Some(Timestamp::parse(ts).map_err(|_| ParseError::BadTimestamp(ts.to_owned()))?)
    };
    let hostname = header_value(field(&mut rest, "hostname")?, "hostname", MAX_HOSTNAME)?;
    let app_name = header_value(field(&mut rest, "app-name")?, "app-name", MAX_APP_NAME)?;
    let procid = header_value(field(&mut rest, "procid")?, "procid", MAX_PROCID)?;
    // A header that ends after MSGID (no SD, no MSG) is tolerated.
    let msgid = header_value(field(&mut rest, "msgid")?, "msgid", MAX_MSGID)?;
    let (structured_data, rest) = if rest.is_empty() {
        (Vec::new(), "")
    } else {
        parse_sd(rest)?
    };
    let msg = match rest.strip_prefix(' ') {
        Some(m) => m,
        None if rest.is_empty() => "",
        None => {
            return Err(ParseError::StructuredData(
                "expected a space between structured data and the message".into(),
            ));
        }
    };
    Ok(Message {
        format: Format::Rfc5424,
        facility,
        severity,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg: strip_bom(msg).to_owned(),
    })
}

fn strip_bom(msg: &str) -> &str {
    msg.strip_prefix('\u{feff}').unwrap_or(msg)
}

/// STRUCTURED-DATA: `-` or one or more SD-ELEMENTs. Returns the rest.
fn parse_sd(s: &str) -> Result<(Vec<SdElement>, &str), ParseError> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok((Vec::new(), rest));
    }
    let err = |m: &str| ParseError::StructuredData(m.to_owned());
    if !s.starts_with('[') {
        return Err(err("expected '-' or '['"));
    }
    let mut elements = Vec::new();
    let mut rest = s;
    while let Some(after) = rest.strip_prefix('[') {
        let (id, mut r) = sd_name(after, "sd-id")?;
        let mut params = Vec::new();
        loop {
            if let Some(after) = r.strip_prefix(']') {
                r = after;
                break;
            }
            r = r
                .strip_prefix(' ')
                .ok_or_else(|| err("expected ' ' or ']' in an sd-element"))?;
            let (name, after) = sd_name(r, "param-name")?;
            let after = after
                .strip_prefix("=\"")
                .ok_or_else(|| err("expected '=\"' after a param-name"))?;
            let (value, after) = sd_value(after)?;
            params.push((name.to_owned(), value));
            r = after;
        }
        elements.push(SdElement {
            id: id.to_owned(),
            params,
        });
        rest = r;
    }
    Ok((elements, rest))
}

/// SD-NAME: 1 to 32 printable ASCII except `=`, space, `]` and `"`.
fn sd_name<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str), ParseError> {
    let end = s
        .bytes()
        .position(|b| !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"'))
        .unwrap_or(s.len());
    if end == 0 {
        return Err(ParseError::StructuredData(format!("empty {what}")));
    }
    if end > MAX_SD_NAME {
        return Err(ParseError::StructuredData(format!(
            "{what} is longer than {MAX_SD_NAME} characters"
        )));
    }
    Ok((&s[..end], &s[end..]))
}

/// PARAM-VALUE up to the closing quote; `\"`, `\\` and `\]` are unescaped,
/// any other backslash is kept as written (RFC 5424 section 6.3.3).
fn sd_value(s: &str) -> Result<(String, &str), ParseError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.clone().next() {
                Some((_, e @ ('"' | '\\' | ']'))) => {
                    out.push(e);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            // An unescaped ']' is invalid per the RFC; tolerated as text.
            c => out.push(c),
        }
    }
    Err(ParseError::StructuredData(
        "unterminated param-value (missing '\"')".into(),
    ))
}

/// RFC 3164: `TIMESTAMP HOSTNAME TAG[PID]: MSG`, every part optional.
fn parse_3164(facility: u8, severity: u8, rest: &str, now: OffsetDateTime) -> Message {
    let (timestamp, rest) = match bsd_timestamp(rest, now) {
        Some((ts, after)) => (Some(ts), after),
        None => match rfc3339_prefix(rest) {
            Some((ts, after)) => (Some(ts), after),
            None => (None, rest),
        },
    };
    let mut hostname = None;
    let mut body = rest;
    // Without a timestamp the line is not in the conventional shape: only a
    // tag is looked for (as local `/dev/log` messages are written).
    if timestamp.is_some()
        && let Some((first, after)) = split_token(body)
        && tag(first).is_none()
    {
        hostname = Some(first.to_owned());
        body = after;
    }
    let (app_name, procid, msg) = match split_token(body).and_then(|(t, after)| {
        let (name, pid) = tag(t)?;
        Some((name, pid, after))
    }) {
        Some((name, pid, after)) => (Some(name), pid, after),
        None => (None, None, body),
    };
    Message {
        format: Format::Rfc3164,
        facility,
        severity,
        timestamp,
        hostname: hostname.filter(|h| h.len() <= MAX_HOSTNAME && h != "-"),
        app_name,
        procid,
        msgid: None,
        structured_data: Vec::new(),
        msg: strip_bom(msg).to_owned(),
    }
}

/// The next space-delimited token and what follows its space.
fn split_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    })
}

/// A TAG token: `name:`, `name[pid]:` or `name[pid]` (name 1..=48
/// characters, no `[`, `]` or `:`). Returns the name and pid.
fn tag(token: &str) -> Option<(String, Option<String>)> {
    let (t, colon) = match token.strip_suffix(':') {
        Some(t) => (t, true),
        None => (token, false),
    };
    if let Some(open) = t.find('[') {
        let name = &t[..open];
        let pid = t[open + 1..].strip_suffix(']')?;
        (valid_tag_name(name) && !pid.is_empty() && !pid.contains(['[', ']']))
            .then(|| (name.to_owned(), Some(pid.to_owned())))
    } else if colon && valid_tag_name(t) {
        Some((t.to_owned(), None))
    } else {
        None
    }
}

fn valid_tag_name(name: &str) -> bool {
    (1..=MAX_APP_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'[' | b']' | b':'))
}

/// `Mmm dd hh:mm:ss[.frac]` (day space- or zero-padded).
fn bsd_timestamp(s: &str, now: OffsetDateTime) -> Option<(Timestamp, &str)> {
    let month = match s.get(..3)? {
        "Jan" => Month::January,
        "Feb" => Month::February,
        "Mar" => Month::March,
        "Apr" => Month::April,
        "May" => Month::May,
        "Jun" => Month::June,
        "Jul" => Month::July,
        "Aug" => Month::August,
        "Sep" => Month::September,
        "Oct" => Month::October,
        "Nov" => Month::November,
        "Dec" => Month::December,
        _ => return None,
    };
    let b = s.as_bytes();
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let day = match (b.get(4)?, b.get(5)?) {
        (b' ', d) if d.is_ascii_digit() => d - b'0',
        (t, d) if t.is_ascii_digit() && d.is_ascii_digit() => (t - b'0') * 10 + (d - b'0'),
        _ => return None,
    };
    if b.get(6) != Some(&b' ') {
        return None;
    }
    let two = |i: usize| -> Option<u8> {
        let (t, d) = (b.get(i)?, b.get(i + 1)?);
        (t.is_ascii_digit() && d.is_ascii_digit()).then(|| (t - b'0') * 10 + (d - b'0'))
    };
    let (hh, mm, ss) = (two(7)?, two(10)?, two(13)?);
    if b.get(9) != Some(&b':') || b.get(12) != Some(&b':') {
        return None;
    }
    let mut end = 15;
    let mut nanos = 0u32;
    if b.get(15) == Some(&b'.') {
        let digits = b[16..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in b[16..16 + digits.min(9)].iter().enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        end = 16 + digits;
    }
    let rest = match s.get(end..)? {
        "" => "",
        r => r.strip_prefix(' ')?,
    };
    let time = Time::from_hms_nano(hh, mm, ss, nanos).ok()?;
    // The candidate year nearest to now wins; a day that exists in no
    // candidate year (29 February far from a leap year) is not a timestamp.
    let year = now.year();
    let best = [year - 1, year, year + 1]
        .into_iter()
        .filter_map(|y| Date::from_calendar_date(y, month, day).ok())
        .map(|d| PrimitiveDateTime::new(d, time).assume_utc())
        .min_by_key(|t| (*t - now).abs())?;
    Some((Timestamp::from_offset_date_time(best).ok()?, rest))
}

/// Some relays write an RFC 3339 timestamp in an otherwise BSD-style line.
fn rfc3339_prefix(s: &str) -> Option<(Timestamp, &str)> {
    let (token, rest) = match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    if token.len() < 20 || !token.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    Some((Timestamp::parse(token).ok()?, rest))
}

#[cfg(test)]
mod tests;
