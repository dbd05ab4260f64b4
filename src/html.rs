//! Escaping for the HTML the service writes itself (the acknowledgement
//! page, printable reports, alert emails): every value that came from an
//! event or a request goes through [`escape`], in text and in quoted
//! attributes.

/// `&`, `<`, `>`, `"` and `'` as character references.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_quotes_become_references() {
        assert_eq!(
            super::escape(r#"<a href="x" title='y'>&</a> é"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt; é"
        );
    }
}
