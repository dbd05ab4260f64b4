//! Tests of enrichment (lookup tables, reload) and PHI masking.

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::enrich::{MAX_LOOKUP_FILE_BYTES, PATIENTS_FILE, STAFF_FILE, parse_vip};
use super::mask::{TRUNCATED_MARKER, luhn};
use super::*;
use crate::event::limits::{
    MAX_ATTRS_STRING_CHARS, MAX_EVENT_BYTES, MAX_MASK_GROWTH_BYTES, MAX_MESSAGE_CHARS,
};
use crate::event::{Entry, Event, Timestamp, Via};

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lookups")
        .join(name)
}

fn event(v: Value) -> Event {
    let mut doc = json!({
        "time": "2026-11-27T14:03:11.123Z",
        "category": "access",
        "action": "view",
        "outcome": "success",
    });
    for (k, val) in v.as_object().unwrap() {
        doc[k] = val.clone();
    }
    Event::from_json(doc.to_string().as_bytes()).unwrap()
}

// --- enrichment ------------------------------------------------------------

#[test]
fn loads_fixture_tables() {
    let (lookups, report) = Lookups::load(&fixtures("good")).unwrap();
    assert_eq!(report.notes, vec![], "{:?}", report.notes);
    assert_eq!((report.staff_rows, report.patient_rows), (3, 3));
    let ben = lookups.staff("u0077").unwrap();
    assert_eq!(ben.name.as_deref(), Some("Ben"), "cells are trimmed");
    assert_eq!(ben.last_name.as_deref(), Some("Ruiz"));
    assert_eq!(ben.terminated.as_deref(), Some("2026-10-31"));
    let ada = lookups.staff("u0042").unwrap();
    assert_eq!(ada.home_zip.as_deref(), Some("02139"), "zip keeps zeros");
    assert_eq!(ada.terminated, None);
    let svc = lookups.staff("svc-ehr").unwrap();
    assert_eq!((svc.last_name.as_ref(), svc.hired.as_ref()), (None, None));
    assert!(lookups.patient("MRN-0000001").unwrap().vip);
    assert!(!lookups.patient("MRN-0000002").unwrap().vip);
    let own = lookups.patient("MRN-0012345").unwrap();
    assert_eq!(own.employee_user.as_deref(), Some("u0042"));
    assert!(!own.vip);
}

#[test]
fn enrich_joins_actor_target_and_patient() {
    let (lookups, _) = Lookups::load(&fixtures("good")).unwrap();
    let e = event(json!({
        "actor": {"user": "u0042"},
        "target_user": "u0077",
        "patient": {"id": "MRN-0012345"},
    }));
    let enriched = enrich(&lookups, &e).unwrap();
    assert_eq!(
        enriched.actor.as_ref().unwrap().last_name.as_deref(),
        Some("Okafor")
    );
    assert_eq!(
        enriched.target_user.as_ref().unwrap().name.as_deref(),
        Some("Ben")
    );
    assert_eq!(
        enriched.patient.as_ref().unwrap().employee_user.as_deref(),
        Some("u0042")
    );
    // Only the patient matches.
    let e = event(json!({"actor": {"user": "u9999"}, "patient": {"id": "MRN-0000001"}}));
    let only = enrich(&lookups, &e).unwrap();
    assert!(only.actor.is_none() && only.target_user.is_none());
    assert!(only.patient.unwrap().vip);
    // Ids are case-sensitive, surrounding whitespace is ignored.
    assert_eq!(
        enrich(&lookups, &event(json!({"actor": {"user": "U0042"}}))),
        None
    );
    assert!(enrich(&lookups, &event(json!({"actor": {"user": " u0042 "}}))).is_some());
    assert_eq!(enrich(&lookups, &event(json!({}))), None);
}

#[test]
fn enriched_entry_round_trips() {
    let (lookups, _) = Lookups::load(&fixtures("good")).unwrap();
    let e = event(json!({"actor": {"user": "u0077"}, "patient": {"id": "MRN-0012345"}}));
    let entry = Entry {
        received: Timestamp::parse("2026-11-27T14:03:12Z").unwrap(),
        via: Via {
            kind: "http".into(),
            peer: None,
            principal: None,
        },
        enriched: enrich(&lookups, &e),
        event: e,
    };
    let bytes = entry.canonical_bytes();
    assert_eq!(Entry::from_canonical_bytes(&bytes).unwrap(), entry);
}

#[test]
fn malformed_rows_are_skipped_and_reported_with_lines() {
    let (lookups, report) = Lookups::load(&fixtures("malformed")).unwrap();
    // Columns in another order are fine.
    assert_eq!(lookups.staff("u0042").unwrap().name.as_deref(), Some("Ada"));
    assert!(lookups.staff("u0101").is_some());
    assert!(lookups.staff("u0100").is_none(), "bad date row skipped");
    assert_eq!(lookups.staff_len(), 2);
    assert_eq!(lookups.patients_len(), 2);
    assert!(lookups.patient("MRN-2").unwrap().vip);
    assert!(lookups.patient("MRN-1").is_none());
    let lines: Vec<(String, Option<u64>)> = report
        .notes
        .iter()
        .map(|n| {
            (
                n.file.file_name().unwrap().to_string_lossy().into_owned(),
                n.line,
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("staff.csv".into(), Some(3)),
            ("staff.csv".into(), Some(4)),
            ("staff.csv".into(), Some(5)),
            ("staff.csv".into(), Some(6)),
            ("patients.csv".into(), Some(2)),
        ],
        "{:#?}",
        report.notes
    );
    assert_eq!(report.skipped_rows, 5);
    let text: Vec<String> = report.notes.iter().map(ToString::to_string).collect();
    assert!(text[0].ends_with("staff.csv:3: hired: must be a calendar date written yyyy-mm-dd"));
    assert!(
        text[1].contains("row has 3 fields, the header 8"),
        "{}",
        text[1]
    );
    assert!(text[2].contains("user: must not be empty"), "{}", text[2]);
    assert!(text[3].contains("earlier row is kept"), "{}", text[3]);
    assert!(text[4].contains("vip: must be"), "{}", text[4]);
    // Notes never quote cell values.
    assert!(
        !text
            .iter()
            .any(|t| t.contains("Okafor") || t.contains("maybe"))
    );
}

#[test]
fn missing_files_are_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (enricher, report) = Enricher::load(dir.path()).unwrap();
    assert_eq!(enricher.snapshot().staff_len(), 0);
    assert_eq!(report.notes.len(), 2);
    assert!(
        report
            .notes
            .iter()
            .all(|n| n.line.is_none() && n.message.contains("not found"))
    );
    assert_eq!(
        enrich(
            &enricher.snapshot(),
            &event(json!({"actor": {"user": "u1"}}))
        ),
        None
    );
}

#[test]
fn bad_header_and_oversize_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(STAFF_FILE), "user,name,shoe_size\nu1,a,9\n").unwrap();
    let err = Lookups::load(dir.path()).unwrap_err();
    assert!(matches!(err, EnrichError::Header { .. }), "{err}");
    assert!(
        err.to_string().contains("unknown column `shoe_size`"),
        "{err}"
    );

    fs::write(
        dir.path().join(STAFF_FILE),
        "user,name,last_name,role,department,home_zip,hired\n",
    )
    .unwrap();
    let err = Lookups::load(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("missing column `terminated`"),
        "{err}"
    );

    fs::remove_file(dir.path().join(STAFF_FILE)).unwrap();
    // Sparse: costs no disk.
    let f = fs::File::create(dir.path().join(PATIENTS_FILE)).unwrap();
    f.set_len(MAX_LOOKUP_FILE_BYTES + 1).unwrap();
    assert!(matches!(
        Lookups::load(dir.path()),
        Err(EnrichError::TooLarge { .. })
    ));
}

fn write_with_mtime(path: &Path, text: &str, mtime: SystemTime) {
    fs::write(path, text).unwrap();
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn reload_sees_changes_and_keeps_old_tables_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    for f in [STAFF_FILE, PATIENTS_FILE] {
        fs::copy(fixtures("good").join(f), dir.path().join(f)).unwrap();
    }
    let staff = dir.path().join(STAFF_FILE);
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    write_with_mtime(&staff, &fs::read_to_string(&staff).unwrap(), t0);

    let (enricher, _) = Enricher::load(dir.path()).unwrap();
    assert_eq!(enricher.reload_if_changed().unwrap(), None);
    let before = enricher.snapshot();
    assert!(before.staff("u0500").is_none());

    // Same size, new mtime: seen.
    let original = fs::read_to_string(&staff).unwrap();
    let changed = original.replace("u0077", "u0500");
    assert_eq!(changed.len(), original.len());
    write_with_mtime(&staff, &changed, t0 + Duration::from_secs(60));
    let report = enricher.reload_if_changed().unwrap().unwrap();
    assert_eq!(report.staff_rows, 3);
    let after = enricher.snapshot();
    assert!(after.staff("u0500").is_some() && after.staff("u0077").is_none());
    // A snapshot taken before is unaffected.
    assert!(before.staff("u0077").is_some());
    assert_eq!(enricher.reload_if_changed().unwrap(), None);

    // A broken file: error, old tables stay, and it is not retried.
    write_with_mtime(&staff, "nonsense\n1\n", t0 + Duration::from_secs(120));
    assert!(matches!(
        enricher.reload_if_changed(),
        Err(EnrichError::Header { .. })
    ));
    assert!(enricher.snapshot().staff("u0500").is_some());
    assert_eq!(enricher.reload_if_changed().unwrap(), None);

    // Fixed (and a removed patients file is an empty table, noted).
    write_with_mtime(&staff, &original, t0 + Duration::from_secs(180));
    fs::remove_file(dir.path().join(PATIENTS_FILE)).unwrap();
    let report = enricher.reload_if_changed().unwrap().unwrap();
    assert_eq!((report.staff_rows, report.patient_rows), (3, 0));
    assert_eq!(report.notes.len(), 1);
    assert!(enricher.snapshot().staff("u0077").is_some());
}

#[test]
fn vip_values() {
    for t in ["true", "TRUE", "True", "1", "yes", "YES", " yes "] {
        assert_eq!(parse_vip(t), Some(true), "{t}");
    }
    for f in ["false", "False", "0", "no", "NO"] {
        assert_eq!(parse_vip(f), Some(false), "{f}");
    }
    for bad in ["y", "2", "maybe", "truee", "-1"] {
        assert_eq!(parse_vip(bad), None, "{bad}");
    }
}

// --- masking ---------------------------------------------------------------

const KEY: [u8; 32] = [1; 32];

fn masker() -> Masker {
    Masker::new(&MaskConfig::default(), &KEY).unwrap()
}

fn token(m: &Masker, name: &str, value: &str) -> String {
    m.token_for(name, value).unwrap()
}

#[track_caller]
fn masks(m: &Masker, input: &str, want: &str) {
    assert_eq!(m.mask_str(input), want, "input: {input}");
}

#[track_caller]
fn keeps(m: &Masker, input: &str) {
    assert!(
        matches!(m.mask_str(input), Cow::Borrowed(_)),
        "masked: {input} -> {}",
        m.mask_str(input)
    );
}

#[test]
fn every_builtin_compiles_and_the_default_enables_all() {
    let m = masker();
    assert_eq!(
        m.pattern_names().collect::<Vec<_>>(),
        ["ssn", "card", "email", "phone", "dob"]
    );
}

#[test]
fn token_format() {
    let m = masker();
    let t = token(&m, "ssn", "123-45-6789");
    assert_eq!(t.len(), "[ssn:]".len() + 16);
    assert!(t.starts_with("[ssn:") && t.ends_with(']'));
    let hash = &t[5..21];
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // HMAC-SHA-256(key, "ssn" || 0x00 || "123456789"), first 8 bytes.
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&KEY).unwrap();
    mac.update(b"ssn\x00123456789");
    let want = hex::encode(&mac.finalize().into_bytes()[..8]);
    assert_eq!(hash, want);
}

#[test]
fn ssn() {
    let m = masker();
    let t = token(&m, "ssn", "123456789");
    masks(&m, "ssn 123-45-6789 on file", &format!("ssn {t} on file"));
    masks(&m, "123-45-6789", &t);
    masks(&m, "SSN 123456789", &format!("SSN {t}"));
    masks(&m, "ssn: 123 45 6789.", &format!("ssn: {t}."));
    masks(&m, "SSN#123456789", &format!("SSN#{t}"));
    masks(
        &m,
        "Social Security Number: 123456789",
        &format!("Social Security Number: {t}"),
    );
    keeps(&m, "order 123456789 shipped");
    keeps(&m, "123456789");
    keeps(&m, "1234-56-789");
    keeps(&m, "lessn 123456789");
}

#[test]
fn card() {
    let m = masker();
    let t = token(&m, "card", "4111111111111111");
    masks(
        &m,
        "card 4111 1111 1111 1111 charged",
        &format!("card {t} charged"),
    );
    masks(&m, "4111-1111-1111-1111", &t);
    masks(&m, "paid with 4111111111111111", &format!("paid with {t}"));
    let amex = token(&m, "card", "378282246310005");
    masks(&m, "amex 3782 822463 10005", &format!("amex {amex}"));
    // 16 digits that fail Luhn: an order number, kept.
    assert!(!luhn("4111111111111112"));
    keeps(&m, "order 4111111111111112");
    keeps(&m, "batch 1234 5678 9012 3456");
    keeps(&m, "12 digits 411111111111");
}

#[test]
fn email() {
    let m = masker();
    let t = token(&m, "email", "jo.smith+x@example.org");
    masks(
        &m,
        "sent to Jo.Smith+x@Example.ORG.",
        &format!("sent to {t}."),
    );
    masks(&m, "<jo.smith+x@example.org>", &format!("<{t}>"));
    keeps(&m, "user@localhost");
    keeps(&m, "@mention and a@ b");
}

#[test]
fn phone() {
    let m = masker();
    let t = token(&m, "phone", "5551234567");
    for form in [
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
        "+1 555 123 4567",
        "+1 (555) 123-4567",
        "1-555-123-4567",
        "+15551234567",
    ] {
        masks(&m, &format!("call {form} now"), &format!("call {t} now"));
    }
    keeps(&m, "from 10.20.1.17 port 5514");
    keeps(&m, "at 2026-11-27T14:03:11.123Z");
    keeps(&m, "v 1555-123-4567");
}

/// Probe finding: a bare ten-digit number is a phone number too, with the
/// same token as its formatted spellings.
#[test]
fn bare_ten_digit_phones_are_masked_with_the_same_token() {
    let m = masker();
    let t = token(&m, "phone", "5551234567");
    for form in [
        "5551234567",
        "(555) 123-4567",
        "555.123.4567",
        "+1 555 123 4567",
    ] {
        masks(&m, &format!("cb {form}."), &format!("cb {t}."));
    }
    masks(&m, "id 5551234567", &format!("id {t}"));
    // Not phones: a leading 0 or 1 (area codes start 2-9, so epoch seconds
    // stay), nine or eleven digits, digits glued to letters.
    keeps(&m, "at 1733580000");
    keeps(&m, "npi 1234567893");
    keeps(&m, "n 0551234567");
    keeps(&m, "n 555123456");
    keeps(&m, "n 55512345678");
    keeps(&m, "x5551234567y");
}

/// Probe finding: one birth date in any spelling gives one token.
#[test]
fn dates_of_birth_in_any_format_give_the_same_token() {
    let m = masker();
    let t = token(&m, "dob", "1980-03-07");
    for (input, label) in [
        ("DOB: 1980-03-07", "DOB: "),
        ("dob 03/07/1980", "dob "),
        ("Date of birth: 7 Mar 1980", "Date of birth: "),
        ("born March 7, 1980", "born "),
        ("born on Mar. 7th 1980", "born on "),
        ("DOB 3-7-80", "DOB "),
        ("birthdate 1980-3-7", "birthdate "),
    ] {
        masks(&m, input, &format!("{label}{t}"));
    }
    // attrs keyed by the label: the same token.
    let mut e = event(json!({"attrs": {"birthDate": "March 7, 1980", "dob": "03/07/1980"}}));
    m.mask_event(&mut e);
    let attrs = e.attrs.unwrap();
    assert_eq!(attrs["birthDate"], json!(t));
    assert_eq!(attrs["dob"], json!(t));
    // Month first unless it cannot be a month.
    assert_eq!(mask::iso_date("25/12/1980"), Some((1980, 12, 25)));
    assert_eq!(mask::iso_date("12/25/1980"), Some((1980, 12, 25)));
    assert_eq!(mask::iso_date("02/29/1981"), None);
    assert_eq!(mask::iso_date("01/02/29"), Some((2029, 1, 2)));
    assert_eq!(mask::iso_date("01/02/30"), Some((1930, 1, 2)));
    // Another date is another token; a non-date still gets one.
    assert_ne!(token(&m, "dob", "1980-03-08"), t);
    masks(
        &m,
        "DOB 13/13/1980",
        &format!("DOB {}", token(&m, "dob", "13/13/1980")),
    );
}

/// Probe finding: Luhn-valid digit runs that are not cards are kept.
#[test]
fn luhn_valid_non_cards_are_kept() {
    let m = masker();
    // Luhn-valid, but no card network starts with 1 (a millisecond
    // timestamp), 9 or 0, and a Visa is not 14 digits.
    for s in [
        "1733580000003",
        "9999999999999995",
        "0000000000000000",
        "41111111111114",
    ] {
        assert!(luhn(s), "{s}");
        keeps(&m, &format!("id {s} done"));
    }
    // A valid card grouped oddly or with mixed separators is an id.
    assert!(luhn("4111111111111111"));
    keeps(&m, "ref 41-1111-1111-111111");
    keeps(&m, "ref 4111 1111-1111 1111");
    // Real shapes of each network are still masked.
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "3530111333300000",
        "30569309025904",
        "6200000000000005",
    ] {
        let t = token(&m, "card", card);
        masks(&m, &format!("paid {card} ok"), &format!("paid {t} ok"));
    }
}

/// Probe finding: an SSN or card number sent as an identifier
/// (`patient.id`, `actor.user`, ...) is stored as the free text's token, so
/// groupings and joins on it still hold; other identifiers stay as sent.
#[test]
fn ssn_and_card_shaped_identifiers_become_tokens() {
    let m = masker();
    let ssn = token(&m, "ssn", "123-45-6789");
    let card = token(&m, "card", "4111111111111111");
    let mut e = event(json!({
        "actor": {"user": "123-45-6789", "session": "4111111111111111", "device": "ws-12",
                  "ip": "10.0.0.1"},
        "patient": {"id": " 123-45-6789"},
        "resource": {"type": "chart", "id": "4111 1111 1111 1111"},
        "target_user": "u0042",
        "message": "patient 123-45-6789",
    }));
    let stats = m.mask_event(&mut e);
    assert_eq!(e.patient.as_ref().unwrap().id, ssn);
    let actor = e.actor.as_ref().unwrap();
    assert_eq!(actor.user.as_deref(), Some(ssn.as_str()));
    assert_eq!(actor.session.as_deref(), Some(card.as_str()));
    assert_eq!(actor.device.as_deref(), Some("ws-12"));
    assert_eq!(
        e.resource.as_ref().unwrap().id.as_deref(),
        Some(card.as_str())
    );
    assert_eq!(e.target_user.as_deref(), Some("u0042"));
    assert_eq!(
        e.message.as_deref(),
        Some(format!("patient {ssn}").as_str())
    );
    assert_eq!(stats.fields_changed, 5);
    // MRNs, 9-digit ids and the like stay.
    for id in [
        "MRN-0012345",
        "123456789",
        "1234-56-789",
        "enc-4111111111111111",
    ] {
        let mut e = event(json!({"patient": {"id": id}}));
        m.mask_event(&mut e);
        assert_eq!(e.patient.unwrap().id, id);
    }
    // Without the ssn and card built-ins, identifiers are untouched.
    let none = Masker::new(
        &MaskConfig {
            builtins: vec!["email".into()],
            ..MaskConfig::default()
        },
        &KEY,
    )
    .unwrap();
    let mut e = event(json!({"patient": {"id": "123-45-6789"}}));
    none.mask_event(&mut e);
    assert_eq!(e.patient.unwrap().id, "123-45-6789");
    round_trips(event(json!({"patient": {"id": ssn}})));
}

proptest::proptest! {
    /// Masking is deterministic (same input, same output, from any masker
    /// with the key) and idempotent (a masked text masks to itself).
    #[test]
    fn masking_is_deterministic_and_idempotent(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("123-45-6789".to_owned()),
                proptest::strategy::Just("4111 1111 1111 1111".to_owned()),
                proptest::strategy::Just("5551234567".to_owned()),
                proptest::strategy::Just("(555) 123-4567".to_owned()),
                proptest::strategy::Just("DOB: 1980-03-07".to_owned()),
                proptest::strategy::Just("born March 7, 1980".to_owned()),
                proptest::strategy::Just("jo@example.org".to_owned()),
                proptest::strategy::Just("SSN 123456789".to_owned()),
                "[0-9]{1,20}",
                "[ -~]{0,24}",
            ],
            0..8,
        ),
        seps in proptest::collection::vec("[ ,;:/-]{1,2}", 8),
    ) {
        let mut s = String::new();
        for (i, p) in parts.iter().enumerate() {
            s.push_str(p);
            s.push_str(&seps[i % seps.len()]);
        }
        let m = masker();
        let once = m.mask_str(&s).into_owned();
        proptest::prop_assert_eq!(&once, &masker().mask_str(&s).into_owned());
        proptest::prop_assert_eq!(&once, &m.mask_str(&once).into_owned());
        let mut e = event(json!({"patient": {"id": parts.first().cloned().unwrap_or_default().trim().chars().take(64).collect::<String>() + "x"}, "message": s}));
        let mut again = e.clone();
        m.mask_event(&mut e);
        m.mask_event(&mut again);
        proptest::prop_assert_eq!(&e, &again);
        let twice = {
            let mut t = e.clone();
            m.mask_event(&mut t);
            t
        };
        proptest::prop_assert_eq!(&e, &twice);
    }
}

#[test]
fn dob() {
    let m = masker();
    let t = token(&m, "dob", "1980-02-29");
    masks(&m, "DOB: 1980-02-29", &format!("DOB: {t}"));
    masks(&m, "dob 1980-02-29;", &format!("dob {t};"));
    masks(&m, "born 1980-02-29", &format!("born {t}"));
    let us = token(&m, "dob", "02/29/1980");
    masks(
        &m,
        "date of birth 02/29/1980",
        &format!("date of birth {us}"),
    );
    masks(
        &m,
        "Date-of-Birth: 02/29/1980",
        &format!("Date-of-Birth: {us}"),
    );
    let long = token(&m, "dob", "feb 29, 1980");
    masks(&m, "Born on Feb 29, 1980", &format!("Born on {long}"));
    masks(
        &m,
        r#"{"dob":"1980-02-29"}"#,
        &format!(r#"{{"dob":"{t}"}}"#),
    );
    // Plain dates and timestamps are not birth dates.
    keeps(&m, "visit on 1980-02-29");
    keeps(&m, "2026-11-27T14:03:11.123Z");
    keeps(&m, "scheduled_for 2026-12-01T09:00:00Z");
    keeps(&m, "born in 1980");
    keeps(&m, "reborn 1980-02-29");
}

#[test]
fn identifiers_and_codes_are_kept() {
    let m = masker();
    for s in [
        "MRN-0012345",
        "MRN 0012345",
        "ICD-10 E11.9, I10, Z79.4, S72.001A",
        "CPT 99213",
        "enc-991 chart u0042",
        "Viewed encounter note",
        "exported 1500 records in 2.5 s",
        "NPI 1234567893",
        "",
    ] {
        keeps(&m, s);
    }
}

#[test]
fn tokens_are_deterministic_and_keyed() {
    let m = masker();
    let a = m
        .mask_str("ssn 123-45-6789 and again 123-45-6789")
        .into_owned();
    let t = token(&m, "ssn", "123456789");
    assert_eq!(a, format!("ssn {t} and again {t}"));
    assert_eq!(m.mask_str("SSN 123456789"), format!("SSN {t}"));
    assert_eq!(masker().mask_str("123-45-6789"), t);
    let other = Masker::new(&MaskConfig::default(), &[2; 32]).unwrap();
    assert_ne!(other.mask_str("123-45-6789"), t);
    // The pattern name is part of the hash.
    assert_ne!(
        token(&m, "ssn", "4111111111111111")[5..],
        token(&m, "card", "4111111111111111")[6..]
    );
}

#[test]
fn masks_message_and_attrs_recursively_keys_untouched() {
    let m = masker();
    let mut e = event(json!({
        "actor": {"user": "u0042"},
        "patient": {"id": "MRN-0012345"},
        "message": "called 555-123-4567 about DOB 1980-02-29",
        "attrs": {
            "jo@example.org": "contact jo@example.org",
            "n": 5,
            "nested": {"deep": [{"x": "ssn 123-45-6789"}, "plain", true]},
            "dob": "1980-02-29",
            "birthDate": " 02/29/1980 ",
            "patient": {"SSN": "123456789"},
            "scheduled_for": "2026-12-01T09:00:00Z",
        }
    }));
    let stats = m.mask_event(&mut e);
    let ssn = token(&m, "ssn", "123456789");
    let email = token(&m, "email", "jo@example.org");
    assert_eq!(
        e.message.as_deref(),
        Some(
            format!(
                "called {} about DOB {}",
                token(&m, "phone", "5551234567"),
                token(&m, "dob", "1980-02-29")
            )
            .as_str()
        )
    );
    let attrs = Value::Object(e.attrs.clone().unwrap());
    assert_eq!(attrs["jo@example.org"], json!(format!("contact {email}")));
    assert_eq!(attrs["n"], json!(5));
    assert_eq!(attrs["nested"]["deep"][0]["x"], json!(format!("ssn {ssn}")));
    assert_eq!(attrs["nested"]["deep"][1], json!("plain"));
    assert_eq!(attrs["dob"], json!(token(&m, "dob", "1980-02-29")));
    assert_eq!(attrs["birthDate"], json!(token(&m, "dob", "02/29/1980")));
    assert_eq!(attrs["patient"]["SSN"], json!(ssn));
    assert_eq!(attrs["scheduled_for"], json!("2026-12-01T09:00:00Z"));
    // Identifiers are not free text.
    assert_eq!(e.patient.as_ref().unwrap().id, "MRN-0012345");
    assert_eq!(stats.fields_changed, 6);
    assert_eq!(stats.fields_truncated, 0);
    let by: Vec<(&str, u64)> = stats
        .matches_by_pattern
        .iter()
        .map(|(k, v)| (&**k, *v))
        .collect();
    assert_eq!(by, [("dob", 3), ("email", 1), ("phone", 1), ("ssn", 2)]);
    assert_eq!(stats.total_matches(), 7);
    round_trips(e);
}

#[test]
fn events_without_phi_are_untouched() {
    let m = masker();
    let original = event(json!({
        "message": "Viewed encounter note",
        "attrs": {"clinician": "u0042", "scheduled_for": "2026-12-01T09:00:00Z"},
    }));
    let mut e = original.clone();
    assert_eq!(m.mask_event(&mut e), MaskStats::default());
    assert_eq!(e, original);
}

#[test]
fn ingest_rejected_raw_input_is_masked() {
    let m = masker();
    let raw = br#"{"time":"2026-11-27T14:03:11Z","patient_ssn":"123-45-6789","dob":"1980-02-29""#;
    let mut e = Event::ingest_rejected(raw, "malformed json", Timestamp::now());
    m.mask_event(&mut e);
    let kept = e.attrs.as_ref().unwrap()["raw"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !kept.contains("6789") && !kept.contains("1980-02-29"),
        "{kept}"
    );
    assert!(kept.contains("2026-11-27T14:03:11Z"), "{kept}");
    round_trips(e);
}

#[test]
fn builtins_can_be_chosen() {
    let config = MaskConfig {
        builtins: vec!["email".into()],
        ..MaskConfig::default()
    };
    let m = Masker::new(&config, &KEY).unwrap();
    keeps(&m, "555-123-4567");
    assert!(m.mask_str("a@example.org").starts_with("[email:"));
    let none = Masker::new(
        &MaskConfig {
            builtins: vec![],
            ..MaskConfig::default()
        },
        &KEY,
    )
    .unwrap();
    let mut e = event(json!({"message": "ssn 123-45-6789"}));
    assert_eq!(none.mask_event(&mut e), MaskStats::default());
}

#[test]
fn custom_patterns() {
    let config = MaskConfig {
        patterns: vec![
            PatternConfig {
                name: "mrn_legacy".into(),
                regex: r"(?i:legacy mrn)[: ]*(?P<v>L[0-9]{8})\b".into(),
                normalize: Normalize::Lowercase,
            },
            PatternConfig {
                name: "member_id".into(),
                regex: r"\bMBR[0-9]{6}\b".into(),
                normalize: Normalize::None,
            },
        ],
        ..MaskConfig::default()
    };
    let m = Masker::new(&config, &KEY).unwrap();
    let t = token(&m, "mrn_legacy", "l00012345");
    masks(&m, "Legacy MRN: L00012345", &format!("Legacy MRN: {t}"));
    let mbr = token(&m, "member_id", "MBR123456");
    masks(
        &m,
        "MBR123456 at 555-123-4567",
        &format!("{mbr} at {}", token(&m, "phone", "5551234567")),
    );
    keeps(&m, "MRN-0012345");
}

#[test]
fn config_errors_name_the_pattern() {
    let with = |name: &str, regex: &str| MaskConfig {
        patterns: vec![PatternConfig {
            name: name.into(),
            regex: regex.into(),
            normalize: Normalize::None,
        }],
        ..MaskConfig::default()
    };
    let err = Masker::new(&with("broken", "a(b"), &KEY).unwrap_err();
    assert!(matches!(&err, MaskError::InvalidRegex { name, .. } if name == "broken"));
    let text = err.to_string();
    assert!(
        text.starts_with("masking pattern `broken`: invalid regex"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert!(matches!(
        Masker::new(&with("anything", "x*"), &KEY),
        Err(MaskError::EmptyMatch { .. })
    ));
    assert!(matches!(
        Masker::new(&with("ssn", "x"), &KEY),
        Err(MaskError::DuplicateName { .. })
    ));
    assert!(matches!(
        Masker::new(&with("Bad Name", "x"), &KEY),
        Err(MaskError::InvalidName { .. })
    ));
    assert!(matches!(
        Masker::new(&with(&"n".repeat(33), "x"), &KEY),
        Err(MaskError::InvalidName { .. })
    ));
    let unknown = MaskConfig {
        builtins: vec!["passport".into()],
        ..MaskConfig::default()
    };
    assert!(matches!(
        Masker::new(&unknown, &KEY),
        Err(MaskError::UnknownBuiltin { .. })
    ));
    assert!(matches!(
        Masker::new(&MaskConfig::default(), &[0; 31]),
        Err(MaskError::KeyTooShort { len: 31, .. })
    ));
    for e in [err, MaskError::EmptyMatch { name: "x".into() }] {
        let s = e.to_string();
        assert!(s.starts_with(|c: char| c.is_lowercase()) && !s.ends_with('.'));
    }
}

#[test]
fn config_from_toml() {
    let c: MaskConfig = toml::from_str("").unwrap();
    assert_eq!(c, MaskConfig::default());
    assert_eq!(c.builtins.len(), 5);
    assert_eq!(c.key_file, PathBuf::new(), "empty: beside the signing key");
    let c: MaskConfig = toml::from_str(
        r#"
builtins = ["ssn", "card"]
[[patterns]]
name = "mrn_legacy"
regex = "L[0-9]{8}"
normalize = "lowercase"
"#,
    )
    .unwrap();
    assert_eq!(c.builtins, ["ssn", "card"]);
    assert_eq!(c.patterns[0].normalize, Normalize::Lowercase);
    assert!(toml::from_str::<MaskConfig>("colour = 1").is_err());
    assert!(
        toml::from_str::<MaskConfig>("[[patterns]]\nname = \"x\"\nregex = \"y\"\nflags = 1")
            .is_err()
    );
}

#[track_caller]
fn round_trips(event: Event) {
    event.validate().unwrap();
    let entry = Entry {
        received: Timestamp::parse("2026-11-27T14:03:12Z").unwrap(),
        via: Via {
            kind: "http".into(),
            peer: None,
            principal: None,
        },
        event,
        enriched: None,
    };
    assert_eq!(
        Entry::from_canonical_bytes(&entry.canonical_bytes()).unwrap(),
        entry
    );
}

#[test]
fn masked_strings_stay_within_field_limits() {
    let m = masker();
    // Short emails become longer tokens: a full message overflows.
    let unit = "a@b.co ";
    let message = unit.repeat(MAX_MESSAGE_CHARS / unit.len());
    let mut e = event(json!({"message": message}));
    let stats = m.mask_event(&mut e);
    let masked = e.message.as_deref().unwrap();
    assert_eq!(masked.chars().count(), MAX_MESSAGE_CHARS);
    assert!(masked.ends_with(TRUNCATED_MARKER));
    assert!(!masked.contains("@b.co"));
    assert_eq!(stats.fields_truncated, 1);
    round_trips(e);
}

#[test]
fn one_event_grows_by_at_most_the_budget() {
    let m = masker();
    let unit = "a@b.co ";
    let value = unit.repeat(1000); // 7000 bytes, 1000 emails
    let attrs: serde_json::Map<String, Value> =
        (0..32).map(|i| (format!("k{i}"), json!(value))).collect();
    let mut e = event(json!({"attrs": attrs}));
    let before = serde_json::to_vec(&e).unwrap().len();
    assert!(before <= MAX_EVENT_BYTES);
    let stats = m.mask_event(&mut e);
    let after = serde_json::to_vec(&e).unwrap().len();
    assert!(
        after <= before + MAX_MASK_GROWTH_BYTES,
        "{before} -> {after}"
    );
    assert_eq!(stats.fields_changed, 32);
    assert_eq!(stats.fields_truncated, 32);
    for v in e.attrs.as_ref().unwrap().values() {
        let s = v.as_str().unwrap();
        assert!(s.chars().count() <= MAX_ATTRS_STRING_CHARS);
        assert!(!s.contains("@b.co"), "no clear text survives a cut");
    }
    round_trips(e);
}

#[test]
fn key_file_is_created_once_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/nested/masking.key");
    let key = load_or_create_key(&path).unwrap();
    assert_eq!(key.len(), 32);
    assert_ne!(key, vec![0; 32]);
    assert_eq!(load_or_create_key(&path).unwrap(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let short = dir.path().join("short.key");
    fs::write(&short, [1u8; 16]).unwrap();
    let err = load_or_create_key(&short).unwrap_err();
    assert!(
        matches!(err, MaskError::KeyFileTooShort { len: 16, .. }),
        "{err}"
    );
    assert_eq!(fs::read(&short).unwrap().len(), 16, "never overwritten");
    let big = dir.path().join("big.key");
    fs::write(&big, vec![1u8; 5000]).unwrap();
    assert!(matches!(
        load_or_create_key(&big),
        Err(MaskError::KeyFileTooLarge { .. })
    ));
}

#[test]
fn masker_debug_hides_the_key() {
    let text = format!("{:?}", masker());
    assert!(text.contains("ssn") && !text.contains("mac"), "{text}");
}
