//! `GET /v1/catch-up` over a real `sealtrail serve` that starts on a ledger
//! it has never indexed: the index's count never passes the ledger's, and
//! it ends caught up with every event, as detection does (the console's
//! catch-up bar).

use crate::util::*;

#[test]
fn the_catch_up_status_follows_the_index_to_the_ledgers_end() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 3000, 500);
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let url = server.http.clone();
    let c = server.client();
    let mut seen = Vec::new();
    let last = server.wait_for("the index to catch up", || {
        let s = get_json(&c, &format!("{url}/v1/catch-up"));
        let lag = &s["index"];
        let (events, of) = (lag["events"].as_u64()?, lag["of"].as_u64()?);
        assert_eq!(s["ledger_events"].as_u64(), Some(of), "{s}");
        assert!(events <= of, "{s}");
        assert_eq!(lag["behind"].as_u64(), Some(of - events), "{s}");
        assert_eq!(lag["catching_up"], of - events >= 1000, "{s}");
        seen.push(events);
        (events == of && of >= 3000).then_some(s)
    });
    assert_eq!(last["index"]["catching_up"], false, "{last}");
    // Detection reads the same ledger (no rules here: it starts at the end).
    let detected = server.wait_for("detection to be at the ledger's end", || {
        let s = get_json(&c, &format!("{url}/v1/catch-up"));
        let lag = &s["detection"];
        assert!(lag["events"].as_u64()? <= lag["of"].as_u64()?, "{s}");
        (lag["behind"] == 0).then_some(s)
    });
    assert_eq!(detected["detection"]["catching_up"], false, "{detected}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    // An ingest-only token is refused (counts are for console users).
    let ingest = client_with(&create_token(&data, "only-ingest", "ingest"));
    server.wait_for("the ingest token to be known", || {
        let r = ingest.get(format!("{url}/v1/catch-up")).send().unwrap();
        (r.status() == 403).then_some(())
    });
}
