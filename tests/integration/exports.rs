//! The console's export jobs over a real `sealtrail serve`: an export
//! starts, reports its progress, finishes, downloads once as a bundle the
//! verifier crate accepts, is invisible to every other principal, and its
//! start and download are recorded in the ledger.

use crate::util::*;
use serde_json::json;

#[test]
fn an_export_job_runs_downloads_once_verifies_and_is_its_owners_alone() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 40, 10);
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let url = server.http.clone();
    let c = server.client();
    server.wait_for("the ledger to be searchable", || {
        let v = get_json(&c, &format!("{url}/v1/search?q=*&limit=1"));
        (v["total"].as_u64()? >= 40).then_some(())
    });

    // Bad input is refused before anything starts.
    let (code, v) = post_json(
        &c,
        &format!("{url}/v1/exports"),
        &json!({"q": "*", "from": "yesterday"}),
    );
    assert_eq!(code, 400, "{v}");

    let (code, job) = post_json(&c, &format!("{url}/v1/exports"), &json!({"q": "*"}));
    assert_eq!(code, 202, "{job}");
    assert_eq!(job["state"], "running", "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let status_url = format!("{url}/v1/exports/{id}");
    let done = server.wait_for("the export to finish", || {
        let j = get_json(&c, &status_url);
        (j["state"] != "running").then_some(j)
    });
    assert_eq!(done["state"], "done", "{done}");
    let total = done["events_total"].as_u64().unwrap();
    assert!(total >= 40, "{done}");
    assert_eq!(done["proofs_done"].as_u64(), Some(total), "{done}");
    assert!(done["bytes"].as_u64().unwrap() > 0, "{done}");
    assert!(done["expires_at"].is_string(), "{done}");
    assert!(done["started_by"].as_str().unwrap().contains("test-all"));
    let bundle_url = format!("{url}{}", done["bundle"].as_str().unwrap());
    assert_eq!(bundle_url, format!("{status_url}/bundle"));
    // While it waits, the file holds no readable bundle: no tar header, no
    // event text (the key to it is only in the service's memory).
    let waiting = std::fs::read(data.join("exports").join(format!("{id}.tar"))).unwrap();
    assert!(waiting.len() as u64 > done["bytes"].as_u64().unwrap());
    for plain in [&b"ustar"[..], b"\"event\"", b"manifest"] {
        assert!(
            !waiting.windows(plain.len()).any(|w| w == plain),
            "{} in the spooled file",
            String::from_utf8_lossy(plain)
        );
    }

    // Another auditor neither sees nor downloads it.
    let other = client_with(&create_token(&data, "other-auditor", "auditor"));
    server.wait_for("the second token to be accepted", || {
        let r = other.get(format!("{url}/v1/checkpoint")).send().unwrap();
        (r.status() == 200).then_some(())
    });
    for u in [&status_url, &bundle_url] {
        let r = other.get(u).send().unwrap();
        assert_eq!(r.status().as_u16(), 404, "{u}");
    }
    let r = c.get(format!("{url}/v1/exports/not-an-id")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Its owner downloads it once; the verifier crate accepts it.
    let r = c.get(&bundle_url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let tar = r.bytes().unwrap();
    assert_eq!(tar.len() as u64, done["bytes"].as_u64().unwrap());
    let vkey = std::fs::read_to_string(&k.vkey).unwrap();
    let verifier = sealtrail_verify::NoteVerifier::from_vkey(vkey.trim_end()).unwrap();
    let report = sealtrail_verify::bundle::check_bundle(&tar[..], &verifier);
    assert!(report.ok(), "{}", report.to_json());
    let bundle = report.verified.as_ref().unwrap();
    assert_eq!(bundle.entries.len() as u64, total);
    assert_eq!(bundle.query.q, "*");

    // Once: the file is gone, and the job says so.
    let r = c.get(&bundle_url).send().unwrap();
    assert_eq!(r.status().as_u16(), 410);
    let after = get_json(&c, &status_url);
    assert_eq!(after["state"], "downloaded", "{after}");
    let left = std::fs::read_dir(data.join("exports")).unwrap().count();
    assert_eq!(left, 0, "the downloaded bundle is deleted");

    // The start and the download are recorded, naming the export.
    let recorded = server.wait_for("two siem_export records of the export", || {
        let v = get_json(
            &c,
            &format!("{url}/v1/search?q=action:siem_export&limit=10"),
        );
        let hits = v["hits"].as_array()?.clone();
        (hits
            .iter()
            .filter(|h| h["event"]["attrs"]["export"] == json!(id))
            .count()
            >= 2)
            .then_some(hits)
    });
    assert!(
        recorded
            .iter()
            .any(|h| h["event"]["attrs"]["download"] == json!(true)),
        "{recorded:?}"
    );
}
