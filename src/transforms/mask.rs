//! PHI masking: replaces protected values in an event's free text before it
//! is sealed.
//!
//! Only `message` and the strings inside `attrs` (at any depth; keys are left
//! alone) are free text. The structured identifier fields (`patient.id`,
//! `actor.user`, `actor.session`, `actor.device`, `target_user`,
//! `resource.id`) are what rules group by and reports join on, so they are
//! kept, except a whole value shaped like an SSN (`123-45-6789`) or a card
//! number (the `card` test below): that becomes the same `[ssn:…]` /
//! `[card:…]` token the free text gets. The token is deterministic, so joins
//! and groupings still work; a report on such a patient is asked for by the
//! token (`Masker::token_for`). Enrichment runs before masking and joins on
//! the value as sent.
//!
//! Each match becomes a token `[name:HASH]`: `name` is the pattern's name,
//! `HASH` the first 16 hex digits of HMAC-SHA-256(key, name || 0x00 ||
//! normalized value). Equal values give equal tokens under one key, so
//! analysts can still join on them, but nobody without the key can confirm
//! a guess. Normalization: digits only for `ssn` and `card`; digits without
//! the leading country code 1 for `phone`; lowercase for `email`; the ISO
//! date for `dob`, so every spelling of one birth date gives one token
//! (numeric dates are read month first, as in the US, unless the first
//! number cannot be a month; two-digit years 00-29 are 20xx, 30-99 19xx);
//! custom patterns choose (`normalize = "none" | "digits" | "lowercase" |
//! "phone" | "date"`).
//!
//! Built-in patterns (all on by default, `[masking] builtins = [...]`):
//!
//! | name | matches |
//! | --- | --- |
//! | `ssn` | `123-45-6789`; 9 digits (`123456789`, `123 45 6789`) only after a label such as `SSN`, `social security number` |
//! | `card` | 13-19 digits, contiguous or grouped 4-4-4-4(-3) or 4-6-5/4-6-4 with one kind of separator (space or dash), starting with a card network's prefix (4, 51-55, 2221-2720, 34/37, 300-305/36/38/39, 35, 6011/644-649/65, 62) and passing the Luhn check (so MRNs, order numbers and millisecond timestamps stay) |
//! | `email` | `name@example.org` |
//! | `phone` | North American numbers: `(555) 123-4567`, `555-123-4567`, `555.123.4567`, `+1 555 123 4567`, `1-555-123-4567`, `+15551234567`, and a bare `5551234567` (ten digits, the first 2-9) |
//! | `dob` | a date after a birth-date label: `DOB: 1980-02-29`, `date of birth 02/29/1980`, `born Feb 29, 1980`; plain dates are kept |
//!
//! Inside `attrs`, a string under a key that names the thing (`dob`,
//! `date_of_birth`, `birthDate`, `ssn`, ...) counts as labelled, so
//! `{"dob": "1980-02-29"}` and `{"ssn": "123456789"}` are masked too.
//!
//! A label is kept, only the value is replaced (`DOB: [dob:…]`). Custom
//! patterns can do the same with a capture group named `v`.
//!
//! Masking keeps an event valid: a masked string never passes its field's
//! length limit, and one event grows by at most
//! [`MAX_MASK_GROWTH_BYTES`]; past either, the masked string is cut and
//! ends in `[truncated]` (cutting never reveals a masked value).
//!
//! Cost: one [`RegexSet`] scan per string; only strings with a candidate run
//! the individual patterns. A string without candidates is not copied.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use thiserror::Error;

use crate::event::Event;
use crate::event::limits::{MAX_ATTRS_STRING_CHARS, MAX_MASK_GROWTH_BYTES, MAX_MESSAGE_CHARS};

/// Bytes of a generated masking key; also the least a key may have.
pub const MASK_KEY_BYTES: usize = 32;
/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 4096;
/// Longest pattern name, so tokens stay short.
pub const MAX_PATTERN_NAME_CHARS: usize = 32;
/// Ends a masked string that had to be cut to fit.
pub const TRUNCATED_MARKER: &str = "[truncated]";
/// Most masking passes over one string (see `Masker::mask_text`).
const MAX_MASK_PASSES: usize = 4;
/// Hex digits of the HMAC in a token.
const HASH_HEX_DIGITS: usize = 16;

#[derive(Debug, Error)]
pub enum MaskError {
    #[error("masking: unknown built-in pattern `{name}` (known: ssn, card, email, phone, dob)")]
    UnknownBuiltin { name: String },
    #[error(
        "masking pattern name `{name}`: must be lowercase snake_case, at most {MAX_PATTERN_NAME_CHARS} characters"
    )]
    InvalidName { name: String },
    #[error("masking pattern name `{name}` is used twice (built-in names are reserved)")]
    DuplicateName { name: String },
    #[error("masking pattern `{name}`: invalid regex: {reason}")]
    InvalidRegex { name: String, reason: String },
    #[error("masking pattern `{name}` matches the empty string")]
    EmptyMatch { name: String },
    #[error("masking patterns together are too complex: {reason}")]
    TooComplex { reason: String },
    #[error("masking key is {len} bytes, fewer than the {min} required")]
    KeyTooShort { len: usize, min: usize },
    #[error(
        "masking key file {path}: {len} bytes, fewer than the {min} required", path = path.display()
    )]
    KeyFileTooShort {
        path: PathBuf,
        len: usize,
        min: usize,
    },
    #[error("masking key file {path}: larger than {max} bytes", path = path.display())]
    KeyFileTooLarge { path: PathBuf, max: u64 },
    #[error("masking key file {path}: {source}", path = path.display())]
    KeyIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `[masking]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    /// Built-in patterns to use, by name: `ssn`, `card`, `email`, `phone`,
    /// `dob` (default: all). `[]` turns them all off.
    pub builtins: Vec<String>,
    /// Extra patterns, `[[masking.patterns]]`.
    pub patterns: Vec<PatternConfig>,
    /// The HMAC key of the tokens (created, mode 0600, when missing). Empty
    /// (the default) means `masking.key` beside the signing key; relative
    /// paths are from the working directory, like `ledger.key_file`. Keep it out of the data directory so a copy of the
    /// data cannot be used to test guesses against the tokens. Losing it
    /// changes every token from then on.
    pub key_file: PathBuf,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            builtins: Builtin::ALL.iter().map(|b| b.name().to_owned()).collect(),
            patterns: Vec::new(),
            key_file: PathBuf::new(),
        }
    }
}

/// One custom pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// Lowercase snake_case; the token is `[name:HASH]`.
    pub name: String,
    /// Rust `regex` syntax. With a capture group named `v`, only that group
    /// is replaced (keep a label: `legacy mrn:? (?P<v>[0-9]{8})`).
    pub regex: String,
    /// How the value is normalized before hashing.
    #[serde(default)]
    pub normalize: Normalize,
}

/// How a matched value is normalized before hashing, so that spellings of
/// one value give one token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// As matched.
    #[default]
    None,
    /// Only the ASCII digits.
    Digits,
    /// Lowercase.
    Lowercase,
    /// Digits, without a leading North American country code `1`.
    Phone,
    /// The ISO date (`1980-03-07`) when the value reads as a date, else
    /// lowercase.
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Ssn,
    Card,
    Email,
    Phone,
    Dob,
}

/// ASCII word boundary (a Unicode one would slow every scan of non-ASCII
/// text).
const B: &str = r"(?-u:\b)";
/// Between a label and its value: `SSN 1`, `dob: 1`, `"dob":"1`, `DOB - 1`.
const SEP: &str = r#""?[ \t]*(?:[:=#-][ \t]*)?"?"#;
const SSN_DIGITS: &str = r"[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}";
const MONTH: &str = r"(?i:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?)";

fn date() -> String {
    format!(
        r"(?:[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}|[0-9]{{1,2}}[/.-][0-9]{{1,2}}[/.-](?:[0-9]{{4}}|[0-9]{{2}})|{MONTH}[ \t]+[0-9]{{1,2}}(?i:st|nd|rd|th)?,?[ \t]+[0-9]{{4}}|[0-9]{{1,2}}[ \t]+{MONTH},?[ \t]+[0-9]{{4}})"
    )
}

impl Builtin {
    const ALL: [Builtin; 5] = [
        Builtin::Ssn,
        Builtin::Card,
        Builtin::Email,
        Builtin::Phone,
        Builtin::Dob,
    ];

    fn name(self) -> &'static str {
        match self {
            Builtin::Ssn => "ssn",
            Builtin::Card => "card",
            Builtin::Email => "email",
            Builtin::Phone => "phone",
            Builtin::Dob => "dob",
        }
    }

    fn regex(self) -> String {
        match self {
            Builtin::Ssn => format!(
                r"{B}[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}{B}|{B}(?i:ssn|social[ _-]?security(?:[ _-]?(?:number|num|no))?)\.?{SEP}(?P<v>{SSN_DIGITS}){B}"
            ),
            Builtin::Card => format!(
                r"{B}(?:[0-9]{{13,19}}|[0-9]{{4}}(?:[ -][0-9]{{4}}){{2}}[ -][0-9]{{1,4}}(?:[ -][0-9]{{1,3}})?|[0-9]{{4}}[ -][0-9]{{6}}[ -][0-9]{{4,5}}){B}"
            ),
            Builtin::Email => format!(
                r"{B}[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}}{B}"
            ),
            Builtin::Phone => format!(
                r"\+1[0-9]{{10}}{B}|{B}[2-9][0-9]{{9}}{B}|(?:\+1[ .-]?|{B}1[ .-])?(?:\([0-9]{{3}}\)[ .-]?|{B}[0-9]{{3}}[ .-])[0-9]{{3}}[ .-][0-9]{{4}}{B}"
            ),
            Builtin::Dob => format!(
                r"{B}(?i:dob|d\.o\.b|date[ _-]?of[ _-]?birth|birth[ _-]?date|birthday|born(?:[ \t]+on)?){B}\.?{SEP}(?P<v>{}){B}",
                date()
            ),
        }
    }

    fn normalize(self) -> Normalize {
        match self {
            Builtin::Ssn | Builtin::Card => Normalize::Digits,
            Builtin::Phone => Normalize::Phone,
            Builtin::Email => Normalize::Lowercase,
            Builtin::Dob => Normalize::Date,
        }
    }

    fn check(self) -> Check {
        match self {
            Builtin::Card => Check::Card,
            _ => Check::None,
        }
    }

    /// `attrs` keys whose string value is labelled by the key itself, and
    /// the whole-value pattern such a value must match.
    fn keyed(self) -> Option<(&'static [&'static str], String)> {
        match self {
            Builtin::Ssn => Some((
                &[
                    "ssn",
                    "social_security",
                    "socialsecurity",
                    "social_security_number",
                    "socialsecuritynumber",
                ],
                format!("^{SSN_DIGITS}$"),
            )),
            Builtin::Dob => Some((
                &[
                    "dob",
                    "date_of_birth",
                    "dateofbirth",
                    "birth_date",
                    "birthdate",
                    "birthday",
                    "born",
                    "born_on",
                ],
                format!("^{}$", date()),
            )),
            _ => None,
        }
    }
}

/// An extra test a match must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    /// A plausible payment card: [`plausible_card`].
    Card,
}

#[derive(Debug)]
struct Pattern {
    name: Arc<str>,
    regex: Regex,
    normalize: Normalize,
    check: Check,
    /// Has a capture group `v`: replace only that.
    value_group: bool,
}

/// Whole-value matching for `attrs` strings under a telling key.
#[derive(Debug)]
struct Keyed {
    keys: &'static [&'static str],
    value: Regex,
    pattern: usize,
}

/// What [`Masker::mask_event`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskStats {
    /// Strings (message, attrs values) that changed.
    pub fields_changed: usize,
    /// Of those, strings that had to be cut to fit a limit.
    pub fields_truncated: usize,
    /// Replacements per pattern name; empty when nothing matched.
    pub matches_by_pattern: BTreeMap<Arc<str>, u64>,
}

impl MaskStats {
    pub fn total_matches(&self) -> u64 {
        self.matches_by_pattern.values().sum()
    }
}

/// Compiled masking patterns and the token key. Build once; share freely
/// (`&self` methods, `Send + Sync`).
pub struct Masker {
    patterns: Vec<Pattern>,
    set: RegexSet,
    keyed: Vec<Keyed>,
    /// Only built-ins are active, and every built-in match holds an ASCII
    /// digit or `@`: text without either needs no regex scan.
    builtins_only: bool,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Masker")
            .field("patterns", &self.pattern_names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// Compiles `config`'s patterns; `key` (at least [`MASK_KEY_BYTES`]
    /// bytes) keys the token hashes.
    pub fn new(config: &MaskConfig, key: &[u8]) -> Result<Masker, MaskError> {
        if key.len() < MASK_KEY_BYTES {
            return Err(MaskError::KeyTooShort {
                len: key.len(),
                min: MASK_KEY_BYTES,
            });
        }
        let mut patterns = Vec::new();
        let mut keyed = Vec::new();
        for name in &config.builtins {
            let builtin = Builtin::ALL
                .into_iter()
                .find(|b| b.name() == name)
                .ok_or_else(|| MaskError::UnknownBuiltin { name: name.clone() })?;
            if patterns.iter().any(|p: &Pattern| &*p.name == name) {
                return Err(MaskError::DuplicateName { name: name.clone() });
            }
            if let Some((keys, value)) = builtin.keyed() {
                keyed.push(Keyed {
                    keys,
                    value: compile(name, &value)?,
                    pattern: patterns.len(),
                });
            }
            patterns.push(Pattern::new(
                name,
                &builtin.regex(),
                builtin.normalize(),
                builtin.check(),
            )?);
        }
        for custom in &config.patterns {
            let name = &custom.name;
            if !is_pattern_name(name) {
                return Err(MaskError::InvalidName { name: name.clone() });
            }
            let reserved = Builtin::ALL.iter().any(|b| b.name() == name);
            if reserved || patterns.iter().any(|p| &*p.name == name) {
                return Err(MaskError::DuplicateName { name: name.clone() });
            }
            let pattern = Pattern::new(name, &custom.regex, custom.normalize, Check::None)?;
            if pattern.regex.is_match("") {
                return Err(MaskError::EmptyMatch { name: name.clone() });
            }
            patterns.push(pattern);
        }
        let set = RegexSet::new(patterns.iter().map(|p| p.regex.as_str())).map_err(|e| {
            MaskError::TooComplex {
                reason: e.to_string(),
            }
        })?;
        // HMAC takes keys of any length; the length was checked above.
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| MaskError::KeyTooShort {
            len: key.len(),
            min: MASK_KEY_BYTES,
        })?;
        Ok(Masker {
            patterns,
            set,
            keyed,
            builtins_only: config.patterns.is_empty(),
            mac,
        })
    }

    /// Names of the active patterns, built-ins first.
    pub fn pattern_names(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| &*p.name)
    }

    /// Masks `message` and every string in `attrs`, in place.
    pub fn mask_event(&self, event: &mut Event) -> MaskStats {
        let mut stats = MaskStats::default();
        if self.patterns.is_empty() {
            return stats;
        }
        let mut budget = MAX_MASK_GROWTH_BYTES;
        if let Some(message) = &mut event.message {
            self.mask_field(message, None, MAX_MESSAGE_CHARS, &mut budget, &mut stats);
        }
        if let Some(attrs) = &mut event.attrs {
            self.mask_map(attrs, &mut budget, &mut stats);
        }
        self.mask_identifiers(event, &mut stats);
        stats
    }

    /// Replaces a structured identifier that is a whole SSN (`123-45-6789`)
    /// or card number by its token; every other identifier stays as sent.
    /// A token (22-23 characters) always fits an identifier's limit.
    fn mask_identifiers(&self, event: &mut Event, stats: &mut MaskStats) {
        let ssn = self.patterns.iter().position(|p| &*p.name == "ssn");
        let card = self.patterns.iter().position(|p| &*p.name == "card");
        if ssn.is_none() && card.is_none() {
            return;
        }
        let mut fields: Vec<&mut String> = Vec::new();
        if let Some(p) = &mut event.patient {
            fields.push(&mut p.id);
        }
        if let Some(a) = &mut event.actor {
            fields.extend(
                [&mut a.user, &mut a.session, &mut a.device]
                    .into_iter()
                    .flatten(),
            );
        }
        if let Some(r) = &mut event.resource {
            fields.extend(r.id.as_mut());
        }
        fields.extend(event.target_user.as_mut());
        for field in fields {
            let value = field.trim();
            let pattern = if ssn.is_some() && is_dashed_ssn(value) {
                ssn
            } else if card.is_some()
                && value.len() <= 23
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
                && plausible_card(value)
            {
                card
            } else {
                None
            };
            if let Some(pattern) = pattern.and_then(|i| self.patterns.get(i)) {
                let mut out = String::with_capacity(token_len(pattern));
                self.push_token(&mut out, pattern, value);
                count(stats, pattern);
                stats.fields_changed += 1;
                *field = out;
            }
        }
    }

    /// `s` with every match replaced by its token; borrowed when nothing
    /// matched. No length limits apply here.
    pub fn mask_str<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut stats = MaskStats::default();
        match self.mask_text(s, None, &mut stats) {
            Some(masked) => Cow::Owned(masked),
            None => Cow::Borrowed(s),
        }
    }

    /// The token for `value` as pattern `name` would write it (the value is
    /// normalized as that pattern does); `None` for an unknown name. Lets
    /// an analyst find the token of a known value without unmasking.
    pub fn token_for(&self, name: &str, value: &str) -> Option<String> {
        let pattern = self.patterns.iter().find(|p| &*p.name == name)?;
        let mut out = String::new();
        self.push_token(&mut out, pattern, value);
        Some(out)
    }

    fn mask_map(&self, map: &mut Map<String, Value>, budget: &mut usize, stats: &mut MaskStats) {
        for (key, value) in map.iter_mut() {
            self.mask_value(key, value, budget, stats);
        }
    }

    fn mask_value(&self, key: &str, value: &mut Value, budget: &mut usize, stats: &mut MaskStats) {
        match value {
            Value::String(s) => {
                self.mask_field(s, Some(key), MAX_ATTRS_STRING_CHARS, budget, stats);
            }
            // Items of an array share the array's key as their label.
            Value::Array(items) => {
                for item in items {
                    self.mask_value(key, item, budget, stats);
                }
            }
            Value::Object(map) => self.mask_map(map, budget, stats),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Masks one string field, keeping it within `max_chars` characters and
    /// the event within its growth budget.
    fn mask_field(
        &self,
        s: &mut String,
        key: Option<&str>,
        max_chars: usize,
        budget: &mut usize,
        stats: &mut MaskStats,
    ) {
        let Some(mut masked) = self.mask_text(s, key, stats) else {
            return;
        };
        let mut truncated = false;
        let allowed = s.len().saturating_add(*budget);
        if masked.len() > allowed {
            cut_to_bytes(&mut masked, allowed);
            truncated = true;
        }
        if masked.char_indices().nth(max_chars).is_some() {
            cut_to_chars(&mut masked, max_chars);
            truncated = true;
        }
        *budget = budget.saturating_sub(masked.len().saturating_sub(s.len()));
        *s = masked;
        stats.fields_changed += 1;
        stats.fields_truncated += usize::from(truncated);
    }

    /// The masked text, or `None` when nothing matched. Passes repeat (at
    /// most [`MAX_MASK_PASSES`]) until nothing more matches: a match that
    /// lost to an overlapping one (`(555) 123-4567-jo@example.org`) can
    /// leave a remainder that matches alone, and masking must be idempotent.
    fn mask_text(&self, s: &str, key: Option<&str>, stats: &mut MaskStats) -> Option<String> {
        let mut masked = self.mask_pass(s, key, stats)?;
        for _ in 1..MAX_MASK_PASSES {
            match self.mask_pass(&masked, None, stats) {
                Some(again) => masked = again,
                None => break,
            }
        }
        Some(masked)
    }

    /// One pass of [`Masker::mask_text`].
    fn mask_pass(&self, s: &str, key: Option<&str>, stats: &mut MaskStats) -> Option<String> {
        if let Some(key) = key
            && let Some(k) = self.keyed.iter().find(|k| {
                k.keys.iter().any(|name| key.eq_ignore_ascii_case(name))
                    && k.value.is_match(s.trim())
            })
        {
            let pattern = &self.patterns[k.pattern];
            let mut out = String::with_capacity(token_len(pattern));
            self.push_token(&mut out, pattern, s.trim());
            count(stats, pattern);
            return Some(out);
        }
        let no_candidate =
            self.builtins_only && !s.bytes().any(|b| b.is_ascii_digit() || b == b'@');
        if s.is_empty() || no_candidate || !self.set.is_match(s) {
            return None;
        }
        let spans = self.spans(s);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(s.len() + spans.len() * 24);
        let mut at = 0;
        for span in &spans {
            let pattern = &self.patterns[span.pattern];
            out.push_str(&s[at..span.start]);
            self.push_token(&mut out, pattern, &s[span.start..span.end]);
            count(stats, pattern);
            at = span.end;
        }
        out.push_str(&s[at..]);
        Some(out)
    }

    /// Non-overlapping matches of all patterns, in text order: at one start
    /// the longest wins, then the earlier pattern.
    fn spans(&self, s: &str) -> Vec<Span> {
        let mut all = Vec::new();
        for index in self.set.matches(s).iter() {
            let pattern = &self.patterns[index];
            let mut push = |start: usize, end: usize| {
                if end > start && pattern.accepts(&s[start..end]) {
                    all.push(Span {
                        start,
                        end,
                        pattern: index,
                    });
                }
            };
            if pattern.value_group {
                for caps in pattern.regex.captures_iter(s) {
                    if let Some(m) = caps.name("v").or_else(|| caps.get(0)) {
                        push(m.start(), m.end());
                    }
                }
            } else {
                for m in pattern.regex.find_iter(s) {
                    push(m.start(), m.end());
                }
            }
        }
        all.sort_by_key(|sp| (sp.start, std::cmp::Reverse(sp.end), sp.pattern));
        let mut kept: Vec<Span> = Vec::with_capacity(all.len());
        for span in all {
            if kept.last().is_none_or(|last| span.start >= last.end) {
                kept.push(span);
            }
        }
        kept
    }

    fn push_token(&self, out: &mut String, pattern: &Pattern, value: &str) {
        let mut mac = self.mac.clone();
        mac.update(pattern.name.as_bytes());
        mac.update(&[0]);
        pattern.normalize.feed(value, &mut mac);
        let digest = mac.finalize().into_bytes();
        out.push('[');
        out.push_str(&pattern.name);
        out.push(':');
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in digest.iter().take(HASH_HEX_DIGITS / 2) {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out.push(']');
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    pattern: usize,
}

impl Pattern {
    fn new(
        name: &str,
        regex: &str,
        normalize: Normalize,
        check: Check,
    ) -> Result<Pattern, MaskError> {
        let regex = compile(name, regex)?;
        let value_group = regex.capture_names().any(|n| n == Some("v"));
        Ok(Pattern {
            name: Arc::from(name),
            regex,
            normalize,
            check,
            value_group,
        })
    }

    fn accepts(&self, value: &str) -> bool {
        match self.check {
            Check::None => true,
            Check::Card => plausible_card(value),
        }
    }
}

fn compile(name: &str, regex: &str) -> Result<Regex, MaskError> {
    Regex::new(regex).map_err(|e| MaskError::InvalidRegex {
        name: name.to_owned(),
        reason: e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    })
}

fn count(stats: &mut MaskStats, pattern: &Pattern) {
    *stats
        .matches_by_pattern
        .entry(Arc::clone(&pattern.name))
        .or_insert(0) += 1;
}

fn token_len(pattern: &Pattern) -> usize {
    pattern.name.len() + HASH_HEX_DIGITS + 3
}

impl Normalize {
    /// Feeds the normalized `value` to `mac` without allocating.
    fn feed(self, value: &str, mac: &mut Hmac<Sha256>) {
        match self {
            Normalize::None => mac.update(value.as_bytes()),
            Normalize::Digits => {
                for b in value.bytes().filter(u8::is_ascii_digit) {
                    mac.update(&[b]);
                }
            }
            Normalize::Phone => {
                let digits = value.bytes().filter(u8::is_ascii_digit);
                let skip = usize::from(
                    digits.clone().count() == 11 && digits.clone().next() == Some(b'1'),
                );
                for b in digits.skip(skip) {
                    mac.update(&[b]);
                }
            }
            Normalize::Date => match iso_date(value) {
                Some((y, m, d)) => mac.update(format!("{y:04}-{m:02}-{d:02}").as_bytes()),
                None => Normalize::Lowercase.feed(value, mac),
            },
            Normalize::Lowercase => {
                let mut buf = [0u8; 4];
                for c in value.chars().flat_map(char::to_lowercase) {
                    mac.update(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

/// Reads a date as the `dob` pattern spells it: `1980-03-07`, `03/07/1980`,
/// `3-7-80`, `7.3.1980` (month first unless the first number is over 12),
/// `March 7, 1980`, `Mar 7th 1980`, `7 Mar 1980`. `None` unless it names a
/// real calendar day.
pub fn iso_date(value: &str) -> Option<(u16, u8, u8)> {
    let words: Vec<&str> = value
        .split(|c: char| c.is_ascii_whitespace() || c == ',' || c == '/' || c == '-' || c == '.')
        .filter(|w| !w.is_empty())
        .collect();
    let [a, b, c] = words[..] else {
        return None;
    };
    let num = |w: &str| -> Option<u32> {
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    let year = |w: &str| -> Option<u32> {
        let y = num(w)?;
        match w.len() {
            4 => Some(y),
            2 if y < 30 => Some(2000 + y),
            2 => Some(1900 + y),
            _ => None,
        }
    };
    let (y, m, d) = if let (Some(month), Some(day)) = (month_of(a), num(b)) {
        (year(c)?, month, day)
    } else if let (Some(day), Some(month)) = (num(a), month_of(b)) {
        (year(c)?, month, day)
    } else if a.len() == 4 {
        (num(a)?, num(b)?, num(c)?)
    } else {
        let (first, second) = (num(a)?, num(b)?);
        let (m, d) = if first > 12 {
            (second, first)
        } else {
            (first, second)
        };
        (year(c)?, m, d)
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=days).contains(&d) && (1..=9999).contains(&y))
        .then(|| {
            Some((
                u16::try_from(y).ok()?,
                u8::try_from(m).ok()?,
                u8::try_from(d).ok()?,
            ))
        })
        .flatten()
}

/// 1-12 for an English month name or its abbreviation (`mar`, `March`, `Sept.`).
fn month_of(word: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    let head = w.get(..3)?;
    let i = NAMES.iter().position(|n| *n == head)?;
    u32::try_from(i + 1).ok()
}

/// `123-45-6789`, the whole value.
fn is_dashed_ssn(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 11
        && b.iter().enumerate().all(|(i, c)| match i {
            3 | 6 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Whether `value` looks like a payment card number: 13-19 digits,
/// contiguous or grouped as cards are printed (4-4-4-4, 4-4-4-4-3, 4-6-5,
/// 4-6-4) with one kind of separator, a card network's prefix, and a valid
/// Luhn check digit. Ids, order numbers and millisecond timestamps
/// (`1733580000000`) that happen to pass Luhn are not cards.
pub fn plausible_card(value: &str) -> bool {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let groups: Vec<usize> = value.split([' ', '-']).map(str::len).collect();
    let one_separator = !(value.contains(' ') && value.contains('-'));
    let shape_ok = match groups[..] {
        [_] => true,
        [4, 4, 4, last] => (1..=4).contains(&last),
        [4, 4, 4, 4, last] => (1..=3).contains(&last),
        [4, 6, 4] | [4, 6, 5] => true,
        _ => false,
    };
    one_separator && shape_ok && known_iin(&digits) && luhn(&digits)
}

/// Whether `digits` start like a card of a major network.
fn known_iin(digits: &str) -> bool {
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
    let len = digits.len();
    let (Some(p1), Some(p2), Some(p3), Some(p4)) = (prefix(1), prefix(2), prefix(3), prefix(4))
    else {
        return false;
    };
    match () {
        // Visa
        _ if p1 == 4 => matches!(len, 13 | 16 | 19),
        // Mastercard
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => len == 16,
        // American Express
        _ if p2 == 34 || p2 == 37 => len == 15,
        // Diners Club
        _ if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => {
            (14..=19).contains(&len)
        }
        // JCB
        _ if (3528..=3589).contains(&p4) => (16..=19).contains(&len),
        // Discover
        _ if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 => (16..=19).contains(&len),
        // UnionPay
        _ if p2 == 62 => (16..=19).contains(&len),
        _ => false,
    }
}

/// Whether the digits of `value` (13-19 of them) pass the Luhn check.
pub fn luhn(value: &str) -> bool {
    let digits = value.bytes().filter(u8::is_ascii_digit);
    let n = digits.clone().count();
    if !(13..=19).contains(&n) {
        return false;
    }
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_pattern_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_PATTERN_NAME_CHARS
}

/// Cuts `s` to at most `max` bytes, ending in [`TRUNCATED_MARKER`] when it
/// fits.
fn cut_to_bytes(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let keep = max.checked_sub(TRUNCATED_MARKER.len());
    let mut at = keep.unwrap_or(max);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    if keep.is_some() {
        s.push_str(TRUNCATED_MARKER);
    }
}

/// Cuts `s` to at most `max` characters, ending in [`TRUNCATED_MARKER`].
fn cut_to_chars(s: &mut String, max: usize) {
    let keep = max.saturating_sub(TRUNCATED_MARKER.len());
    if let Some((at, _)) = s.char_indices().nth(keep) {
        s.truncate(at);
        if max >= TRUNCATED_MARKER.len() {
            s.push_str(TRUNCATED_MARKER);
        }
    }
}

/// Reads the masking key at `path`, or creates one ([`MASK_KEY_BYTES`]
/// random bytes, mode 0600, parent directories as needed) when there is
/// none. Refuses a key shorter than [`MASK_KEY_BYTES`].
pub fn load_or_create_key(path: &Path) -> Result<Vec<u8>, MaskError> {
    match read_key(path) {
        Err(MaskError::KeyIo { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let io = |source| MaskError::KeyIo {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut key = vec![0u8; MASK_KEY_BYTES];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
    match crate::ledger::keys::write_new_file(path, &key, 0o600) {
        Ok(()) => {}
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return read_key(path),
        Err(e) => return Err(io(e)),
    }
    #[cfg(unix)]
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(key)
}

fn read_key(path: &Path) -> Result<Vec<u8>, MaskError> {
    let io = |source| MaskError::KeyIo {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut key = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take`
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut key)
        .map_err(io)?;
    if key.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(MaskError::KeyFileTooLarge {
            path: path.to_owned(),
            max: MAX_KEY_FILE_BYTES,
        });
    }
    if key.len() < MASK_KEY_BYTES {
        return Err(MaskError::KeyFileTooShort {
            path: path.to_owned(),
            len: key.len(),
            min: MASK_KEY_BYTES,
        });
    }
    Ok(key)
}
