//! The search index against a real ledger whose answers are known.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sealtrail::event::{Entry, Event, Timestamp, Via};
use sealtrail::index::{
    AggRequest, Indexer, QueryError, SearchIndex, SearchRequest, index_dir, reindex,
    searchable_fields,
};
use sealtrail::ledger::keys::NoteSigner;
use sealtrail::ledger::log::{Ledger, LedgerEntry, SealPolicy};

const ORIGIN: &str = "clinic.example/sealtrail";
const USERS: u64 = 13;
const PATIENTS: u64 = 7;
const ACTIONS: [&str; 4] = ["view", "export", "print", "view"];
/// 2026-11-01T00:00:00Z
const BASE_MS: i64 = 1_793_491_200_000;

fn user(i: u64) -> String {
    format!("u{:04}", i % USERS)
}
fn patient(i: u64) -> String {
    format!("MRN-{:07}", (i / 3) % PATIENTS)
}
fn action(i: u64) -> &'static str {
    ACTIONS[(i % 4) as usize]
}
fn ip(i: u64) -> String {
    format!("10.0.0.{}", i % 5)
}
fn records(i: u64) -> u64 {
    (i * 37) % 250
}
fn time_ms(i: u64) -> i64 {
    BASE_MS + i as i64 * 60_000
}

fn entry(i: u64) -> LedgerEntry {
    entry_at(i, time_ms(i))
}

fn entry_at(i: u64, ms: i64) -> LedgerEntry {
    let time = Timestamp::from_unix_ms(ms).unwrap();
    let ticket = if i.is_multiple_of(10) {
        format!(r#","attrs":{{"change_ticket":"CHG-{i}"}}"#)
    } else {
        String::new()
    };
    let message = if action(i) == "export" {
        "Exported chart to file"
    } else {
        "Viewed encounter note"
    };
    let json = format!(
        concat!(
            r#"{{"id":"evt-{i}","time":"{time}","category":"access","action":"{action}","outcome":"{outcome}","#,
            r#""actor":{{"user":"{user}","role":"clinician","ip":"{ip}"}},"patient":{{"id":"{patient}"}},"#,
            r#""source":{{"system":"ehr","host":"app-01"}},"records":{records},"message":"{message}"{ticket}}}"#
        ),
        i = i,
        time = time,
        action = action(i),
        outcome = if i.is_multiple_of(9) {
            "failure"
        } else {
            "success"
        },
        user = user(i),
        ip = ip(i),
        patient = patient(i),
        records = records(i),
        message = message,
        ticket = ticket,
    );
    let event = Event::from_json(json.as_bytes()).unwrap();
    let entry = Entry {
        received: time,
        via: Via {
            kind: "import".into(),
            peer: None,
            principal: None,
        },
        event,
        enriched: None,
    };
    LedgerEntry {
        time_ms: entry.event.time.unix_ms(),
        bytes: entry.canonical_bytes(),
    }
}

fn policy(max_events: u64) -> SealPolicy {
    SealPolicy {
        max_events,
        max_age: Duration::from_secs(3600),
    }
}

fn open_ledger(data: &Path) -> Ledger {
    Ledger::open(data, NoteSigner::generate(ORIGIN).unwrap(), policy(50))
        .unwrap()
        .0
}

/// Appends entries `range` in batches of 7.
fn append(ledger: &mut Ledger, range: std::ops::Range<u64>) {
    let entries: Vec<LedgerEntry> = range.map(entry).collect();
    for chunk in entries.chunks(7) {
        ledger.append(chunk).unwrap();
    }
}

fn req(q: &str, limit: usize) -> SearchRequest {
    SearchRequest {
        q: q.into(),
        limit,
        ..SearchRequest::default()
    }
}

fn indices(search: &SearchIndex, q: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut r = req(q, 1000);
    loop {
        let page = search.search(&r).unwrap();
        out.extend(page.hits.iter().map(|h| h.index));
        match page.cursor {
            Some(c) => r.cursor = Some(c),
            None => return out,
        }
    }
}

fn expected(n: u64, pred: impl Fn(u64) -> bool) -> Vec<u64> {
    (0..n).rev().filter(|&i| pred(i)).collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    Fixture { _tmp: tmp, data }
}

/// A ledger of `n` events (the last segment left open) and its index.
fn indexed(n: u64) -> (Fixture, Ledger, Indexer, SearchIndex) {
    let f = fixture();
    let mut ledger = open_ledger(&f.data);
    append(&mut ledger, 0..n);
    let mut indexer = Indexer::open(&index_dir(&f.data), &f.data).unwrap();
    assert_eq!(indexer.catch_up(ledger.next_index()).unwrap(), n);
    indexer.commit().unwrap();
    let search = SearchIndex::new(indexer.index().clone(), &f.data).unwrap();
    search.reload().unwrap();
    (f, ledger, indexer, search)
}

#[test]
fn counts_per_user_and_exact_patient_lists_newest_first() {
    let n = 1000;
    let (_f, _ledger, _indexer, search) = indexed(n);
    assert_eq!(search.search(&req("", 0)).unwrap().total, n);
    assert_eq!(search.search(&req("*", 0)).unwrap().total, n);
    for u in 0..USERS {
        let q = format!("actor.user:{}", user(u));
        let want = (0..n).filter(|i| i % USERS == u).count() as u64;
        assert_eq!(search.search(&req(&q, 0)).unwrap().total, want, "{q}");
    }
    for p in [0, 3, 6] {
        let id = patient(p * 3);
        let got = indices(&search, &format!("patient.id:{id}"));
        assert_eq!(got, expected(n, |i| patient(i) == id), "{id}");
        // The hits carry the stored entries.
        let page = search.search(&req(&format!("patient.id:{id}"), 3)).unwrap();
        for hit in &page.hits {
            assert_eq!(hit.entry().unwrap().event.patient.as_ref().unwrap().id, id);
            assert_eq!(hit.bytes(), &entry(hit.index).bytes[..]);
        }
    }
    let all = indices(&search, "");
    assert_eq!(all, expected(n, |_| true));
}

#[test]
fn query_syntax_over_event_fields() {
    let n = 600;
    let (_f, _ledger, _indexer, search) = indexed(n);
    type Pred = Box<dyn Fn(u64) -> bool>;
    let cases: Vec<(&str, Pred)> = vec![
        (
            "actor.user:u0003 AND action:export",
            Box::new(|i| user(i) == "u0003" && action(i) == "export"),
        ),
        ("\"encounter note\"", Box::new(|i| action(i) != "export")),
        ("exported", Box::new(|i| action(i) == "export")),
        ("records:[100 TO *]", Box::new(|i| records(i) >= 100)),
        (
            "records:[10 TO 20}",
            Box::new(|i| (10..20).contains(&records(i))),
        ),
        (
            "action:view AND NOT outcome:success",
            Box::new(|i| action(i) == "view" && i % 9 == 0),
        ),
        ("NOT action:view", Box::new(|i| action(i) != "view")),
        (
            "actor.ip:10.0.0.1 OR NOT action:view",
            Box::new(|i| i % 5 == 1 || action(i) != "view"),
        ),
        (
            "actor.user:u001*",
            Box::new(|i| (10..13).contains(&(i % USERS))),
        ),
        ("encount*", Box::new(|i| action(i) != "export")),
        ("\"encounter no\"*", Box::new(|i| action(i) != "export")),
        (
            "action:IN [print export]",
            Box::new(|i| action(i) != "view"),
        ),
        ("actor.ip:10.0.0.3", Box::new(|i| i % 5 == 3)),
        ("source.system:ehr", Box::new(|_| true)),
        ("via.kind:import", Box::new(|_| true)),
        ("attrs.change_ticket:*", Box::new(|i| i % 10 == 0)),
        ("attrs.change_ticket:\"CHG-120\"", Box::new(|i| i == 120)),
        (
            "actor.user:/u000[1-2]/",
            Box::new(|i| matches!(i % USERS, 1 | 2)),
        ),
        (
            // an alternation applies to the value, not to the field path
            "actor.user:/u0001|u0002/",
            Box::new(|i| matches!(i % USERS, 1 | 2)),
        ),
        ("id:evt-42", Box::new(|i| i == 42)),
        ("index:[10 TO 12]", Box::new(|i| (10..=12).contains(&i))),
        (
            "time:[2026-11-01T01:00:00Z TO 2026-11-01T02:00:00Z}",
            Box::new(|i| (60..120).contains(&i)),
        ),
    ];
    for (q, pred) in cases {
        assert_eq!(indices(&search, q), expected(n, pred), "{q}");
    }
}

#[test]
fn time_range_and_pagination_stay_stable_while_events_arrive() {
    let n = 300;
    let (_f, mut ledger, mut indexer, search) = indexed(n);
    let from = Timestamp::from_unix_ms(time_ms(100)).unwrap();
    let to = Timestamp::from_unix_ms(time_ms(250)).unwrap();
    let want = expected(n, |i| (100..250).contains(&i) && action(i) == "view");
    let mut r = SearchRequest {
        q: "action:view".into(),
        from: Some(from),
        to: Some(to),
        limit: 7,
        ..SearchRequest::default()
    };
    let mut got = Vec::new();
    let mut next = n;
    loop {
        let page = search.search(&r).unwrap();
        assert!(page.hits.len() <= 7);
        got.extend(page.hits.iter().map(|h| h.index));
        // More events arrive between pages, some inside the time range
        // (their event time is old, their index is new).
        let mut late = entry(next);
        let mut e = Entry::from_canonical_bytes(&late.bytes).unwrap();
        e.event.time = Timestamp::from_unix_ms(time_ms(150)).unwrap();
        e.event.action = "view".into();
        late.bytes = e.canonical_bytes();
        ledger.append(&[late]).unwrap();
        next += 1;
        indexer.catch_up(ledger.next_index()).unwrap();
        indexer.commit().unwrap();
        search.reload().unwrap();
        match page.cursor {
            Some(c) => r.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(got, want);
    // The newcomers are on the first page of a fresh search, and counted.
    let fresh = search
        .search(&SearchRequest {
            cursor: None,
            ..r.clone()
        })
        .unwrap();
    assert_eq!(fresh.total, want.len() as u64 + (next - n));
    assert_eq!(fresh.hits[0].index, next - 1);
}

#[test]
fn aggregations_match_known_counts() {
    let n = 900;
    let (_f, _ledger, _indexer, search) = indexed(n);
    let r = SearchRequest {
        q: "action:view OR action:export".into(),
        limit: 0,
        aggs: vec![
            AggRequest::Terms {
                field: "actor.ip".into(),
                size: 10,
            },
            AggRequest::Terms {
                field: "action".into(),
                size: 10,
            },
            AggRequest::DateHistogram {
                interval: Duration::from_secs(3600),
            },
        ],
        ..SearchRequest::default()
    };
    let res = search.search(&r).unwrap();
    let matching: Vec<u64> = (0..n).filter(|&i| action(i) != "print").collect();
    assert_eq!(res.total, matching.len() as u64);
    assert!(res.hits.is_empty());
    let buckets = |k: usize| -> BTreeMap<String, u64> {
        res.aggs[k]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let key = match &b["key"] {
                    serde_json::Value::String(s) => s.clone(),
                    // Histogram keys are epoch milliseconds as f64.
                    other => (other.as_f64().unwrap() as i64).to_string(),
                };
                (key, b["doc_count"].as_u64().unwrap())
            })
            .collect()
    };
    let mut by_ip = BTreeMap::new();
    let mut by_action = BTreeMap::new();
    let mut by_hour = BTreeMap::new();
    for &i in &matching {
        *by_ip.entry(ip(i)).or_insert(0) += 1;
        *by_action.entry(action(i).to_owned()).or_insert(0) += 1;
        let hour = time_ms(i) - time_ms(i).rem_euclid(3_600_000);
        *by_hour.entry(hour.to_string()).or_insert(0u64) += 1;
    }
    assert_eq!(buckets(0), by_ip);
    assert_eq!(buckets(1), by_action);
    assert_eq!(buckets(2), by_hour);
}

/// The field list the console completes from is the index's own: every
/// field in it can be queried, every countable one counted (and finds the
/// values these events carry), and nothing else is countable.
#[test]
fn every_listed_field_can_be_queried_and_the_countable_ones_counted() {
    let (_f, _ledger, _indexer, search) = indexed(50);
    let fields = searchable_fields();
    assert!(fields.len() > 20, "{fields:?}");
    for f in &fields {
        let name = f.name.replace('*', "any");
        let q = match f.kind {
            "number" => format!("{name}:[0 TO 10]"),
            "time" => format!("{name}:[2020-01-01T00:00:00Z TO 2030-01-01T00:00:00Z]"),
            _ => format!("{name}:x"),
        };
        search
            .search(&req(&q, 1))
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        let count = SearchRequest {
            aggs: vec![AggRequest::Terms {
                field: name.clone(),
                size: 5,
            }],
            ..req("", 0)
        };
        match search.search(&count) {
            Ok(r) => {
                assert!(f.countable, "{name} counted but not listed as countable");
                if name == "actor.user" {
                    assert!(r.aggs[0].to_string().contains(&user(0)), "{:?}", r.aggs);
                }
            }
            Err(e) => assert!(!f.countable, "{name} is listed as countable: {e}"),
        }
    }
    for name in [
        "actor.user",
        "patient.id",
        "action",
        "time",
        "message",
        "attrs.*",
    ] {
        assert!(fields.iter().any(|f| f.name == name), "{name} missing");
    }
}

#[test]
fn malformed_queries_unknown_fields_and_limits() {
    let (_f, _ledger, _indexer, mut search) = indexed(50);
    match search.search(&req("action:view AND (actor.user:u0001", 10)) {
        Err(QueryError::Syntax {
            position: Some(_),
            reason,
        }) => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
    for (q, field) in [
        ("nosuch:thing", "nosuch"),
        ("actor.usr:u0001", "actor.usr"),
        ("action:view AND patient.name:x", "patient.name"),
    ] {
        match search.search(&req(q, 10)) {
            Err(e @ QueryError::UnknownField { .. }) => {
                assert!(e.to_string().contains(field), "{e}");
                assert!(e.is_client_error());
            }
            other => panic!("{q}: {other:?}"),
        }
    }
    // Limits are capped, aggregation sizes checked.
    let (_f2, _l2, _i2, big) = indexed(1200);
    let page = big.search(&req("", 5000)).unwrap();
    assert_eq!(page.hits.len(), 1000);
    assert_eq!(page.cursor, Some(200));
    let bad = SearchRequest {
        aggs: vec![AggRequest::Terms {
            field: "action".into(),
            size: 5000,
        }],
        ..req("", 1)
    };
    assert!(matches!(big.search(&bad), Err(QueryError::Invalid(_))));
    let not_fast = SearchRequest {
        aggs: vec![AggRequest::Terms {
            field: "message".into(),
            size: 5,
        }],
        ..req("", 1)
    };
    assert!(matches!(big.search(&not_fast), Err(QueryError::Invalid(_))));
    let fine_histogram = SearchRequest {
        aggs: vec![AggRequest::DateHistogram {
            interval: Duration::from_millis(1),
        }],
        from: Some(Timestamp::from_unix_ms(BASE_MS).unwrap()),
        to: Some(Timestamp::from_unix_ms(BASE_MS + 3_600_000).unwrap()),
        ..req("", 1)
    };
    assert!(matches!(
        big.search(&fine_histogram),
        Err(QueryError::Invalid(_))
    ));
    // A deadline already past stops the query.
    search.set_timeout(Duration::ZERO);
    assert!(matches!(
        search.search(&req("", 10)),
        Err(QueryError::TooSlow { .. })
    ));
}

/// Every index from 0 to n-1 exactly once.
fn assert_exactly_once(search: &SearchIndex, n: u64) {
    search.reload().unwrap();
    let got = indices(search, "");
    assert_eq!(got, expected(n, |_| true));
    assert_eq!(search.search(&req("", 0)).unwrap().total, n);
}

#[test]
fn crash_before_commit_resumes_without_gap_or_duplicate() {
    let f = fixture();
    let mut ledger = open_ledger(&f.data);
    append(&mut ledger, 0..400);
    let dir = index_dir(&f.data);
    {
        let mut indexer = Indexer::open(&dir, &f.data).unwrap();
        indexer.catch_up(150).unwrap();
        indexer.commit().unwrap();
        // Added but never committed: lost with the "crash".
        indexer.catch_up(330).unwrap();
        assert_eq!(indexer.cursor(), 330);
        assert_eq!(indexer.committed_cursor(), 150);
    }
    let mut indexer = Indexer::open(&dir, &f.data).unwrap();
    assert_eq!(indexer.cursor(), 150);
    append(&mut ledger, 400..450);
    assert_eq!(indexer.catch_up(ledger.next_index()).unwrap(), 300);
    indexer.commit().unwrap();
    let search = SearchIndex::new(indexer.index().clone(), &f.data).unwrap();
    assert_exactly_once(&search, 450);
    // Reopening a caught-up index changes nothing.
    drop(search);
    drop(indexer);
    let mut indexer = Indexer::open(&dir, &f.data).unwrap();
    assert_eq!(indexer.cursor(), 450);
    assert_eq!(indexer.catch_up(ledger.next_index()).unwrap(), 0);
}

#[test]
fn follows_the_open_segment_through_seals() {
    let f = fixture();
    let mut ledger = open_ledger(&f.data);
    let mut indexer = Indexer::open(&index_dir(&f.data), &f.data).unwrap();
    let search = SearchIndex::new(indexer.index().clone(), &f.data).unwrap();
    let mut n = 0;
    for round in 0..12u64 {
        let add = 3 + round * 5;
        append(&mut ledger, n..n + add);
        n += add;
        // The durable limit holds the indexer back.
        indexer.catch_up(n - 1).unwrap();
        assert_eq!(indexer.cursor(), n - 1);
        indexer.catch_up(n).unwrap();
        indexer.commit().unwrap();
        if round % 4 == 3 {
            ledger.seal().unwrap();
        }
    }
    assert_exactly_once(&search, n);
}

#[test]
fn reindex_equals_incremental_indexing() {
    let n = 700;
    let (f, ledger, indexer, search) = indexed(n);
    let queries = [
        "",
        "actor.user:u0005",
        "patient.id:MRN-0000002 AND NOT action:print",
        "\"encounter note\" AND records:[0 TO 99]",
    ];
    let before: Vec<Vec<u64>> = queries.iter().map(|q| indices(&search, q)).collect();
    drop(search);
    drop(indexer);
    // Reindex refuses while the ledger writer holds the data directory.
    assert!(matches!(
        reindex(&f.data),
        Err(sealtrail::index::IndexError::Busy(_))
    ));
    ledger.close().unwrap();
    assert_eq!(reindex(&f.data).unwrap(), n);
    let search = SearchIndex::open(&index_dir(&f.data), &f.data).unwrap();
    let after: Vec<Vec<u64>> = queries.iter().map(|q| indices(&search, q)).collect();
    assert_eq!(before, after);
}

#[test]
fn index_ahead_of_a_shorter_ledger_is_rolled_back() {
    let long = fixture();
    let mut ledger = open_ledger(&long.data);
    append(&mut ledger, 0..100);
    let mut indexer = Indexer::open(&index_dir(&long.data), &long.data).unwrap();
    indexer.catch_up(100).unwrap();
    indexer.commit().unwrap();
    indexer.close().unwrap();
    ledger.close().unwrap();

    // The same ledger, but only its first 60 entries (e.g. an older backup).
    let short = fixture();
    let mut ledger = open_ledger(&short.data);
    append(&mut ledger, 0..60);
    copy_dir(&index_dir(&long.data), &index_dir(&short.data));
    let mut indexer = Indexer::open(&index_dir(&short.data), &short.data).unwrap();
    assert_eq!(indexer.cursor(), 60);
    assert_eq!(indexer.recovery().rolled_back_from, Some(100));
    let search = SearchIndex::new(indexer.index().clone(), &short.data).unwrap();
    assert_exactly_once(&search, 60);
    // New entries take the freed indices, once each.
    append(&mut ledger, 60..80);
    indexer.catch_up(ledger.next_index()).unwrap();
    indexer.commit().unwrap();
    assert_exactly_once(&search, 80);

    // A different ledger altogether: the index starts over.
    let other = fixture();
    let mut ledger = open_ledger(&other.data);
    let shifted: Vec<LedgerEntry> = (1000..1080).map(entry).collect();
    ledger.append(&shifted).unwrap();
    copy_dir(&index_dir(&short.data), &index_dir(&other.data));
    drop(search);
    drop(indexer);
    let mut indexer = Indexer::open(&index_dir(&other.data), &other.data).unwrap();
    assert_eq!(indexer.cursor(), 0);
    assert!(indexer.recovery().rebuilt_because.is_some());
    indexer.catch_up(ledger.next_index()).unwrap();
    indexer.commit().unwrap();
    let search = SearchIndex::new(indexer.index().clone(), &short.data).unwrap();
    assert_exactly_once(&search, 80);
    assert_eq!(
        search.search(&req("id:evt-1000", 5)).unwrap().hits[0].index,
        0
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".tantivy-writer.lock" || name == ".tantivy-meta.lock" {
            continue;
        }
        std::fs::copy(e.path(), to.join(name)).unwrap();
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let meta = e.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Bytes per event of index and ledger (run with `--ignored --nocapture`).
#[test]
#[ignore = "measurement"]
fn index_size_per_event() {
    let n = 100_000;
    let f = fixture();
    let mut ledger = Ledger::open(
        &f.data,
        NoteSigner::generate(ORIGIN).unwrap(),
        policy(16_384),
    )
    .unwrap()
    .0;
    let entries: Vec<LedgerEntry> = (0..n).map(entry).collect();
    for chunk in entries.chunks(500) {
        ledger.append(chunk).unwrap();
    }
    ledger.close().unwrap();
    assert_eq!(reindex(&f.data).unwrap(), n);
    let index = dir_bytes(&index_dir(&f.data));
    let ledger = dir_bytes(&f.data.join("ledger"));
    let raw: usize = entries.iter().map(|e| e.bytes.len()).sum();
    println!(
        "{n} events: canonical {:.1} B/event, ledger {:.1} B/event, index {:.1} B/event",
        raw as f64 / n as f64,
        ledger as f64 / n as f64,
        index as f64 / n as f64
    );
}

/// Time windows over many zones of the index (4,096 documents each) where
/// some events arrive late (their event time is days before their
/// neighbours'), checked against a brute-force count.
#[test]
fn time_windows_with_late_events_match_brute_force() {
    let f = fixture();
    let mut ledger = open_ledger(&f.data);
    let n = 10_000u64;
    // Every 97th event is three days late; every 1,000th is a day early.
    let at = |i: u64| {
        let base = time_ms(i);
        if i.is_multiple_of(97) {
            base - 3 * 86_400_000
        } else if i % 1000 == 1 {
            base + 86_400_000
        } else {
            base
        }
    };
    let entries: Vec<LedgerEntry> = (0..n).map(|i| entry_at(i, at(i))).collect();
    for chunk in entries.chunks(500) {
        ledger.append(chunk).unwrap();
    }
    let mut indexer = Indexer::open(&index_dir(&f.data), &f.data).unwrap();
    // Several commits, so there are several index segments.
    for end in [3_000, 7_000, n] {
        indexer.catch_up(end).unwrap();
        indexer.commit().unwrap();
    }
    let search = SearchIndex::new(indexer.index().clone(), &f.data).unwrap();
    search.reload().unwrap();
    let windows = [
        (time_ms(0) - 5 * 86_400_000, time_ms(n)),
        (time_ms(4_000), time_ms(4_001)),
        (time_ms(4_095), time_ms(8_200)),
        (
            time_ms(9_000) - 3 * 86_400_000,
            time_ms(9_000) - 2 * 86_400_000,
        ),
        (time_ms(8_000), time_ms(n) + 2 * 86_400_000),
        (time_ms(n) + 5 * 86_400_000, time_ms(n) + 6 * 86_400_000),
    ];
    for (q, pred) in [
        ("*", Box::new(|_: u64| true) as Box<dyn Fn(u64) -> bool>),
        ("action:export", Box::new(|i| action(i) == "export")),
        ("actor.user:u0003", Box::new(|i| user(i) == "u0003")),
    ] {
        for (from, to) in windows {
            let want: Vec<u64> = (0..n)
                .rev()
                .filter(|&i| pred(i) && (from..to).contains(&at(i)))
                .collect();
            let mut r = SearchRequest {
                q: q.into(),
                from: Some(Timestamp::from_unix_ms(from).unwrap()),
                to: Some(Timestamp::from_unix_ms(to).unwrap()),
                limit: 1000,
                ..SearchRequest::default()
            };
            let first = search.search(&r).unwrap();
            assert_eq!(first.total, want.len() as u64, "{q} in {from}..{to}");
            let mut got = first.hits.iter().map(|h| h.index).collect::<Vec<_>>();
            let mut cursor = first.cursor;
            while let Some(c) = cursor {
                r.cursor = Some(c);
                let page = search.search(&r).unwrap();
                got.extend(page.hits.iter().map(|h| h.index));
                cursor = page.cursor;
            }
            assert_eq!(got, want, "{q} in {from}..{to}");
            let all: Vec<u64> = search
                .search_all(&r, 100_000)
                .unwrap()
                .iter()
                .map(|h| h.index)
                .collect();
            assert_eq!(all, want, "search_all {q} in {from}..{to}");
        }
    }
    // search_all refuses more than it may return.
    let r = SearchRequest {
        q: "*".into(),
        ..SearchRequest::default()
    };
    assert!(matches!(
        search.search_all(&r, 10),
        Err(QueryError::Invalid(_))
    ));
}

#[test]
fn hostile_queries_are_refused_before_they_reach_the_grammar() {
    // Each of these overflowed the search thread's stack (600 NOTs, 1,000
    // nested parentheses) or took seconds and hundreds of MB to plan (a
    // 20 MB body, 300,000 ORed terms). They are client errors now, and the
    // process is still here to answer the next query.
    let (_f, _ledger, _indexer, search) = indexed(50);
    let nested = format!("{}action:view{}", "(".repeat(1_000), ")".repeat(1_000));
    let nots = format!("{}action:view", "NOT ".repeat(600));
    let signs = format!("{}action:view", "-".repeat(600));
    let huge = "a".repeat(20 << 20);
    // Short enough to pass the length check: 600 terms and 599 ORs.
    let ors = vec!["x"; 600].join(" OR ");
    // Each wildcard or regex walks a term dictionary, uninterruptibly.
    let patterns = (0..40)
        .map(|i| format!("actor.user:/u{i}.*/ OR message:*{i}*"))
        .collect::<Vec<_>>()
        .join(" OR ");
    for (q, why) in [
        (nested.as_str(), "nested deeper than"),
        (nots.as_str(), "too many NOT"),
        (signs.as_str(), "too many - or +"),
        (huge.as_str(), "longer than"),
        (ors.as_str(), "terms and operators"),
        (patterns.as_str(), "wildcard or regex terms"),
    ] {
        match search.search(&req(q, 10)) {
            Err(e @ QueryError::Invalid(_)) => {
                assert!(e.is_client_error());
                assert!(e.to_string().contains(why), "{e}");
            }
            other => panic!("{}: {other:?}", &q[..40.min(q.len())]),
        }
    }
    // What people write still works: nesting, NOT, quotes with parentheses.
    let q = r#"(action:view OR action:export) AND NOT (actor.user:u0001 OR message:"a (b")"#;
    assert!(search.search(&req(q, 10)).is_ok());
    assert_eq!(
        indices(&search, "NOT NOT action:view").len(),
        indices(&search, "action:view").len()
    );
    // Aggregations per request are bounded.
    let mut r = req("*", 0);
    r.aggs = (0..17)
        .map(|_| AggRequest::Terms {
            field: "action".into(),
            size: 5,
        })
        .collect();
    assert!(matches!(search.search(&r), Err(QueryError::Invalid(_))));
    r.aggs.truncate(16);
    assert!(search.search(&r).is_ok());
}

/// `sealtrail reindex`'s bar is fed once per batch: counts start at 0,
/// never go down, and end at the entries indexed.
#[test]
fn reindex_reports_monotone_progress_ending_at_the_total() {
    use sealtrail::index::{REINDEX_PROGRESS_EVERY, reindex_with};
    let n = 2 * REINDEX_PROGRESS_EVERY + 5;
    let f = fixture();
    let mut ledger = open_ledger(&f.data);
    append(&mut ledger, 0..n);
    ledger.close().unwrap();
    let mut calls = Vec::new();
    assert_eq!(
        reindex_with(&f.data, &mut |done, total| calls.push((done, total))).unwrap(),
        n
    );
    assert_eq!(
        calls,
        [
            (0, n),
            (REINDEX_PROGRESS_EVERY, n),
            (2 * REINDEX_PROGRESS_EVERY, n),
            (n, n)
        ]
    );
    let search = SearchIndex::open(&index_dir(&f.data), &f.data).unwrap();
    assert_eq!(indices(&search, "").len() as u64, n);
}
