//! The console's verification run over a real `sealtrail serve`: it runs
//! the offline check of the data directory, reports its progress and
//! result, and is recorded in the ledger; the chain status agrees.

use crate::util::*;
use serde_json::json;

#[test]
fn a_verification_run_checks_the_ledger_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 30, 10);
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let url = server.http.clone();
    let c = server.client();

    let status = get_json(&c, &format!("{url}/v1/integrity/status"));
    assert!(status["segments"].as_u64().unwrap() >= 3, "{status}");
    assert!(status["events"].as_u64().unwrap() >= 30, "{status}");
    assert!(
        status["checkpoint"]
            .as_str()
            .unwrap()
            .contains("\n\n\u{2014} ")
    );

    let idle = get_json(&c, &format!("{url}/v1/integrity/verify"));
    assert_eq!(idle["state"], "idle", "{idle}");
    let (code, run) = post_json(&c, &format!("{url}/v1/integrity/verify"), &json!({}));
    assert_eq!(code, 202, "{run}");
    assert_eq!(run["id"], 1);
    let done = server.wait_for("the run to finish", || {
        let r = get_json(&c, &format!("{url}/v1/integrity/verify"));
        (r["state"] != "running").then_some(r)
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["report"]["ok"], true, "{done}");
    assert!(done["report"]["events"].as_u64().unwrap() >= 30, "{done}");
    assert_eq!(done["segments_done"], done["segments_total"], "{done}");
    assert!(done["started_by"].as_str().unwrap().contains("test-all"));

    // A second run gets the next id; both runs' start and result are recorded.
    let (code, run) = post_json(&c, &format!("{url}/v1/integrity/verify"), &json!({}));
    assert_eq!(code, 202, "{run}");
    assert_eq!(run["id"], 2);
    server.wait_for("four siem_verify records", || {
        let v = get_json(&c, &format!("{url}/v1/search?q=action:siem_verify"));
        (v["total"].as_u64()? >= 4).then_some(())
    });
}
