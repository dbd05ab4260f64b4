//! Human (non-`--json`) output never writes control characters that came
//! from untrusted input: a tar member name, an origin or an event field could
//! otherwise move the cursor, rewrite earlier lines or retitle the terminal.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) and bidirectional
/// override escaped as `\u{..}`; a backslash before `u{` is doubled so an
/// escape cannot be forged. Borrowed when nothing needs escaping.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) && !s.contains("\\u{") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else if c == '\\' && chars.peek() == Some(&'u') {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`clean`] for multi-line text: newlines stay, each line is cleaned.
pub(crate) fn clean_lines(s: &str) -> String {
    s.split('\n').map(clean).collect::<Vec<_>>().join("\n")
}

/// JSON text with the characters [`clean`] escapes, where JSON does not
/// escape them itself (DEL, C1, bidi overrides), written as `\uXXXX`: the
/// same JSON value, safe on a terminal. Such characters can only be inside
/// strings, where the escape means the same character.
pub(crate) fn json_safe(json: &str) -> Cow<'_, str> {
    // JSON whitespace stays: outside strings it is layout, inside strings
    // serde_json has escaped it already.
    let unsafe_char = |c: char| needs_escape(c) && !matches!(c, '\n' | '\r' | '\t');
    if !json.chars().any(unsafe_char) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_bidi_characters() {
        assert_eq!(clean("plain name é"), "plain name é");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("x\ny\rz\t"), "x\\u{a}y\\u{d}z\\u{9}");
        assert_eq!(clean("\u{7f}\u{9b}"), "\\u{7f}\\u{9b}");
        assert_eq!(clean("evil\u{202e}txt"), "evil\\u{202e}txt");
        // A literal `\u{1b}` in the input cannot pass for an escape.
        assert_eq!(clean("\\u{1b}"), "\\\\u{1b}");
        assert_eq!(clean_lines("a\u{7}\nb\n"), "a\\u{7}\nb\n");
    }

    #[test]
    fn json_safe_keeps_the_value() {
        let v = serde_json::json!({"e": "a\u{1b}\u{7f}\u{9b}\u{202e}b\n"});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_safe(&text);
        assert!(!safe.chars().any(|c| c.is_control() && c != '\n'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
        assert!(matches!(json_safe("{\"a\": 1}"), Cow::Borrowed(_)));
    }
}
