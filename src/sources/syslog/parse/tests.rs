use super::*;
use time::macros::datetime;

fn now() -> OffsetDateTime {
    datetime!(2026-11-27 12:00 UTC)
}

fn ok(s: &str) -> Message {
    parse(s.as_bytes(), now()).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &[u8]) -> ParseError {
    match parse(s, now()) {
        Ok(m) => panic!("{s:?} parsed: {m:?}"),
        Err(e) => e,
    }
}

#[test]
fn rfc5424_full_message() {
    let m = ok(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
         [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"] \u{feff}An application event",
    );
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!((m.facility, m.severity), (20, 5));
    assert_eq!(m.timestamp.unwrap().to_string(), "2003-10-11T22:14:15.003Z");
    assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
    assert_eq!(m.app_name.as_deref(), Some("evntslog"));
    assert_eq!(m.procid, None);
    assert_eq!(m.msgid.as_deref(), Some("ID47"));
    assert_eq!(m.structured_data.len(), 2);
    assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
    assert_eq!(
        m.structured_data[0].params[1],
        ("eventSource".to_owned(), "Application".to_owned())
    );
    assert_eq!(m.structured_data[1].params.len(), 1);
    assert_eq!(m.msg, "An application event", "BOM removed");
}

#[test]
fn rfc5424_nilvalues_and_missing_tail() {
    let m = ok("<13>1 - - - - - -");
    assert_eq!(m.timestamp, None);
    assert_eq!(
        (m.hostname, m.app_name, m.procid, m.msgid),
        (None, None, None, None)
    );
    assert!(m.structured_data.is_empty());
    assert_eq!(m.msg, "");
    // Header ending right after MSGID, and trailing CR/LF/NUL from senders.
    let m = ok("<13>1 - host app 12 - \r\n");
    assert_eq!(m.procid.as_deref(), Some("12"));
    let m = ok("<13>1 - host app - -");
    assert_eq!(m.app_name.as_deref(), Some("app"));
    let m = ok("<13>1 2026-01-02T03:04:05+01:00 h a - - - two  spaces \0");
    assert_eq!(m.msg, "two  spaces ");
    assert_eq!(m.timestamp.unwrap().to_string(), "2026-01-02T02:04:05Z");
}

#[test]
fn rfc5424_sd_escapes() {
    let m = ok(
        r#"<13>1 - - - - - [x@1 a="q\"uote" b="back\\slash" c="br\]acket" d="other\n" e="" f="a]b"]"#,
    );
    let p: Vec<_> = m.structured_data[0]
        .params
        .iter()
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        p,
        vec!["q\"uote", "back\\slash", "br]acket", "other\\n", "", "a]b"]
    );
    let m = ok(r#"<13>1 - - - - - [a][b x="1"]"#);
    assert_eq!(m.structured_data.len(), 2);
    assert!(m.structured_data[0].params.is_empty());
}

#[test]
fn rfc5424_malformed_structured_data_is_an_error() {
    for bad in [
        &br#"<13>1 - - - - - [x a="unterminated]"#[..],
        br#"<13>1 - - - - - [x a=1]"#,
        br#"<13>1 - - - - - []"#,
        br#"<13>1 - - - - - [x a="1"]msg"#,
        br#"<13>1 - - - - - nosd"#,
        br#"<13>1 - - - - - [x  a="1"]"#,
    ] {
        assert!(
            matches!(err(bad), ParseError::StructuredData(_)),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn rfc5424_header_errors() {
    assert!(matches!(
        err(b"<13>1 yesterday h a - - -"),
        ParseError::BadTimestamp(_)
    ));
    // Not version 1: read as a BSD message.
    let m = ok("<13>2 apples");
    assert_eq!((m.format, m.msg.as_str()), (Format::Rfc3164, "2 apples"));
    assert!(matches!(err(b"<13>1 - h"), ParseError::MissingField(_)));
    let long = format!("<13>1 - h {} - - -", "a".repeat(49));
    assert!(matches!(
        err(long.as_bytes()),
        ParseError::FieldTooLong {
            field: "app-name",
            ..
        }
    ));
    assert!(matches!(
        err("<13>1 - hé a - - -".as_bytes()),
        ParseError::FieldNotPrintable { .. }
    ));
}

#[test]
fn pri_rules() {
    assert_eq!(ok("<0>1 - - - - - -").facility, 0);
    let m = ok("<191>1 - - - - - -");
    assert_eq!((m.facility, m.severity), (23, 7));
    assert_eq!(err(b"<192>1 - - - - - -"), ParseError::PriOutOfRange(192));
    assert_eq!(err(b"<>x"), ParseError::MalformedPri);
    assert_eq!(err(b"<1234>x"), ParseError::MalformedPri);
    assert_eq!(err(b"<1a>x"), ParseError::MalformedPri);
    assert_eq!(err(b"13>x"), ParseError::MissingPri);
    assert_eq!(err(b""), ParseError::MissingPri);
    assert!(matches!(
        err(b"<13>\xc3\x28"),
        ParseError::NotUtf8 { valid_up_to: 4 }
    ));
}

#[test]
fn rfc3164_conventional_line() {
    let m = ok("<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8");
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!((m.facility, m.severity), (4, 2));
    assert_eq!(m.timestamp.unwrap().to_string(), "2026-10-11T22:14:15Z");
    assert_eq!(m.hostname.as_deref(), Some("mymachine"));
    assert_eq!(m.app_name.as_deref(), Some("su"));
    assert_eq!(m.procid.as_deref(), Some("230"));
    assert_eq!(m.msg, "'su root' failed for lonvick on /dev/pts/8");
}

#[test]
fn rfc3164_year_is_the_one_nearest_now() {
    let at = |now: OffsetDateTime, line: &str| {
        parse(line.as_bytes(), now)
            .unwrap()
            .timestamp
            .unwrap()
            .to_string()
    };
    // A December line read on 1 January belongs to the previous year ...
    assert_eq!(
        at(
            datetime!(2027-01-01 00:00:10 UTC),
            "<13>Dec 31 23:59:50 h t: x"
        ),
        "2026-12-31T23:59:50Z"
    );
    // ... and a January line read on 31 December (sender clock ahead) to the next.
    assert_eq!(
        at(
            datetime!(2026-12-31 23:59:50 UTC),
            "<13>Jan  1 00:00:05 h t: x"
        ),
        "2027-01-01T00:00:05Z"
    );
    // 29 February picks the nearest leap year in range, or is no timestamp.
    assert_eq!(
        at(
            datetime!(2028-03-01 00:00 UTC),
            "<13>Feb 29 10:00:00 h t: x"
        ),
        "2028-02-29T10:00:00Z"
    );
    let m = ok("<13>Feb 29 10:00:00 h t: x");
    assert_eq!(m.timestamp, None);
    assert_eq!(m.msg, "Feb 29 10:00:00 h t: x");
}

#[test]
fn rfc3164_tolerates_missing_and_odd_parts() {
    // No hostname (as written to /dev/log).
    let m = ok("<13>Nov  5 01:02:03 cron[9]: job done");
    assert_eq!(m.hostname, None);
    assert_eq!(m.app_name.as_deref(), Some("cron"));
    assert_eq!(m.timestamp.unwrap().to_string(), "2026-11-05T01:02:03Z");
    // No tag.
    let m = ok("<13>Nov 27 01:02:03 host just some text");
    assert_eq!(m.hostname.as_deref(), Some("host"));
    assert_eq!(m.app_name, None);
    assert_eq!(m.msg, "just some text");
    // No timestamp: the rest is the message, a tag is still recognised.
    let m = ok("<13>myapp: started");
    assert_eq!(m.timestamp, None);
    assert_eq!((m.hostname, m.app_name.as_deref()), (None, Some("myapp")));
    assert_eq!(m.msg, "started");
    let m = ok("<13>hello world");
    assert_eq!((m.app_name, m.msg.as_str()), (None, "hello world"));
    // Fractional seconds, RFC 3339 timestamps, empty message.
    let m = ok("<13>Nov 27 01:02:03.250 h app: x");
    assert_eq!(m.timestamp.unwrap().to_string(), "2026-11-27T01:02:03.25Z");
    let m = ok("<13>2026-11-27T01:02:03+00:00 h app[1]: x");
    assert_eq!(m.timestamp.unwrap().to_string(), "2026-11-27T01:02:03Z");
    assert_eq!(m.hostname.as_deref(), Some("h"));
    let m = ok("<13>");
    assert_eq!(m.msg, "");
    // A bad day or time is not a timestamp.
    let m = ok("<13>Nov 32 01:02:03 h app: x");
    assert_eq!(m.timestamp, None);
    let m = ok("<13>Nov 27 25:02:03 h app: x");
    assert_eq!(m.timestamp, None);
}
