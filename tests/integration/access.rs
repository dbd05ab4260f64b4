//! Who may do what, over a real `sealtrail serve`: the whole route x role
//! matrix, tokens created and revoked with the CLI while the service runs,
//! refusals that tell nothing and are recorded, and the acting principal
//! recorded instead of request fields.

use crate::util::*;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

const ROLES: [&str; 6] = [
    "ingest",
    "analyst",
    "responder",
    "auditor",
    "admin",
    "metrics",
];

/// The access policy, written out independently of the gate's table.
/// (method, route as declared, concrete path, body, roles allowed; `None`
/// = public).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<Value>,
    Option<&'static [&'static str]>,
);

fn matrix() -> Vec<Row> {
    let event = json!({"time": "2026-12-07T10:00:00Z", "category": "auth", "action": "login",
                       "outcome": "success", "actor": {"user": "u1"}});
    vec![
        ("GET", "/healthz", "/healthz", None, None),
        ("GET", "/readyz", "/readyz", None, None),
        ("GET", "/assets/ack.js", "/assets/ack.js", None, None),
        // Sign-in is open; the handlers answer for themselves.
        (
            "POST",
            "/v1/session",
            "/v1/session",
            Some(json!({"user": "nobody", "password": "x", "totp": "000000"})),
            None,
        ),
        ("GET", "/v1/session", "/v1/session", None, None),
        ("DELETE", "/v1/session", "/v1/session", None, None),
        (
            "POST",
            "/v1/session/reauth",
            "/v1/session/reauth",
            Some(json!({"password": "x", "totp": "000000"})),
            None,
        ),
        (
            "GET",
            "/metrics",
            "/metrics",
            None,
            Some(&["metrics", "admin"]),
        ),
        (
            "POST",
            "/v1/events",
            "/v1/events",
            Some(event),
            Some(&["ingest"]),
        ),
        (
            "POST",
            "/fhir/AuditEvent",
            "/fhir/AuditEvent",
            Some(json!({"resourceType": "AuditEvent"})),
            Some(&["ingest"]),
        ),
        (
            "GET",
            "/v1/search",
            "/v1/search?q=*",
            None,
            Some(&["analyst"]),
        ),
        (
            "POST",
            "/v1/search",
            "/v1/search",
            Some(json!({"q": "*"})),
            Some(&["analyst"]),
        ),
        (
            "GET",
            "/v1/search/fields",
            "/v1/search/fields",
            None,
            Some(&["analyst"]),
        ),
        (
            "GET",
            "/v1/dashboards",
            "/v1/dashboards",
            None,
            Some(&["analyst"]),
        ),
        (
            "GET",
            "/v1/dashboards/{id}",
            "/v1/dashboards/hipaa-overview",
            None,
            Some(&["analyst"]),
        ),
        (
            "GET",
            "/v1/events/{index}",
            "/v1/events/0",
            None,
            Some(&["analyst", "auditor"]),
        ),
        (
            "GET",
            "/v1/events/{index}/proof",
            "/v1/events/0/proof",
            None,
            Some(&["analyst", "auditor"]),
        ),
        (
            "GET",
            "/v1/checkpoint",
            "/v1/checkpoint",
            None,
            Some(&["analyst", "auditor"]),
        ),
        (
            "GET",
            "/v1/consistency",
            "/v1/consistency?from=1&to=1",
            None,
            Some(&["auditor"]),
        ),
        (
            "GET",
            "/v1/reports/patient-access",
            "/v1/reports/patient-access?patient=P1",
            None,
            Some(&["analyst"]),
        ),
        (
            "POST",
            "/v1/export",
            "/v1/export",
            Some(json!({"q": "*"})),
            Some(&["auditor"]),
        ),
        (
            "POST",
            "/v1/exports",
            "/v1/exports",
            Some(json!({"q": "*"})),
            Some(&["auditor"]),
        ),
        (
            "GET",
            "/v1/exports/{id}",
            "/v1/exports/0123456789abcdef0123456789abcdef",
            None,
            Some(&["auditor"]),
        ),
        (
            "GET",
            "/v1/exports/{id}/bundle",
            "/v1/exports/0123456789abcdef0123456789abcdef/bundle",
            None,
            Some(&["auditor"]),
        ),
        (
            "GET",
            "/v1/catch-up",
            "/v1/catch-up",
            None,
            Some(&["analyst", "responder", "auditor", "admin"]),
        ),
        (
            "GET",
            "/v1/integrity/status",
            "/v1/integrity/status",
            None,
            Some(&["auditor", "admin"]),
        ),
        (
            "GET",
            "/v1/integrity/verify",
            "/v1/integrity/verify",
            None,
            Some(&["auditor", "admin"]),
        ),
        (
            "POST",
            "/v1/integrity/verify",
            "/v1/integrity/verify",
            Some(json!({})),
            Some(&["auditor", "admin"]),
        ),
        ("GET", "/", "/", None, None),
        ("GET", "/console/{file}", "/console/app.js", None, None),
        (
            "GET",
            "/v1/session/link/{token}",
            "/v1/session/link/not-a-link",
            None,
            None,
        ),
        (
            "GET",
            "/v1/log/vkey",
            "/v1/log/vkey",
            None,
            Some(&["analyst", "auditor"]),
        ),
        (
            "GET",
            "/v1/alerts",
            "/v1/alerts",
            None,
            Some(&["analyst", "responder"]),
        ),
        (
            "GET",
            "/v1/incidents",
            "/v1/incidents",
            None,
            Some(&["analyst", "responder"]),
        ),
        (
            "GET",
            "/v1/incidents/{id}",
            "/v1/incidents/inc-x",
            None,
            Some(&["analyst", "responder"]),
        ),
        (
            "GET",
            "/v1/incidents/{id}/ack",
            "/v1/incidents/inc-x/ack",
            None,
            Some(&["responder"]),
        ),
        (
            "POST",
            "/v1/incidents/{id}/ack",
            "/v1/incidents/inc-x/ack",
            Some(json!({})),
            Some(&["responder"]),
        ),
        (
            "POST",
            "/v1/incidents/{id}/resolve",
            "/v1/incidents/inc-x/resolve",
            Some(json!({})),
            Some(&["responder"]),
        ),
        (
            "POST",
            "/v1/incidents/{id}/note",
            "/v1/incidents/inc-x/note",
            Some(json!({"note": "n"})),
            Some(&["responder"]),
        ),
        (
            "GET",
            "/v1/silences",
            "/v1/silences",
            None,
            Some(&["analyst", "responder"]),
        ),
        (
            "POST",
            "/v1/silences",
            "/v1/silences",
            Some(json!({"matchers": [{"field": "rule_id", "value": "r-1"}], "duration": "1m"})),
            Some(&["responder"]),
        ),
        (
            "POST",
            "/v1/silences/preview",
            "/v1/silences/preview",
            Some(json!({"matchers": [{"field": "rule_id", "value": "r-1"}], "duration": "1m"})),
            Some(&["responder"]),
        ),
        (
            "DELETE",
            "/v1/silences/{id}",
            "/v1/silences/sil-x",
            None,
            Some(&["responder"]),
        ),
    ]
}

fn request(c: &Client, method: &str, url: &str, body: &Option<Value>) -> RequestBuilder {
    let b = match method {
        "GET" => c.get(url),
        "POST" => c.post(url),
        "DELETE" => c.delete(url),
        m => panic!("method {m}"),
    };
    match body {
        Some(v) => b.json(v),
        None => b,
    }
}

fn search(c: &Client, url: &str, q: &str) -> Vec<Value> {
    let v = get_json(c, &format!("{url}/v1/search?q={}&limit=500", urlencode(q)));
    v["hits"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn every_route_admits_exactly_the_roles_it_declares_and_refusals_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let url = server.http.clone();

    // The test's policy covers exactly the routes the gate declares.
    let declared: Vec<(String, String)> = sealtrail::auth::gate::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let mut listed: Vec<(String, String)> = matrix()
        .iter()
        .map(|(m, p, ..)| (m.to_string(), p.to_string()))
        .collect();
    let mut declared_sorted = declared.clone();
    declared_sorted.sort();
    listed.sort();
    assert_eq!(
        listed, declared_sorted,
        "a route without a row in this test"
    );

    // One token per role, made with the CLI while the service runs.
    let tokens: Vec<(&str, Client)> = ROLES
        .iter()
        .map(|r| {
            (
                *r,
                client_with(&create_token(&data, &format!("only-{r}"), r)),
            )
        })
        .collect();
    let anonymous = Client::new();
    // The service picks the new tokens up within a second or two.
    server.wait_for("the new tokens to be accepted", || {
        let r = tokens[1]
            .1
            .get(format!("{url}/v1/checkpoint"))
            .send()
            .unwrap();
        (r.status() == 200).then_some(())
    });

    for (method, route, path, body, allowed) in matrix() {
        let full = format!("{url}{path}");
        for (role, c) in &tokens {
            let r = request(c, method, &full, &body).send().unwrap();
            let status = r.status().as_u16();
            let ok = allowed.is_none_or(|a| a.contains(role));
            if allowed.is_none() {
                // Public: the gate never answers (a sign-in handler may say 401).
                let text = r.text().unwrap();
                assert!(
                    status != 403 && !text.contains("authentication required"),
                    "{method} {route} as {role}: {status} {text}"
                );
            } else if ok {
                assert!(
                    status != 401 && status != 403,
                    "{method} {route} as {role}: {status}, expected to be let through"
                );
            } else {
                assert_eq!(status, 403, "{method} {route} as {role}: expected 403");
            }
        }
        let r = request(&anonymous, method, &full, &body).send().unwrap();
        let status = r.status().as_u16();
        if allowed.is_none() {
            let text = r.text().unwrap();
            assert!(
                status != 403 && !text.contains("authentication required"),
                "{method} {route} without a token: {status} {text}"
            );
        } else {
            assert_eq!(status, 401, "{method} {route} without a token");
            assert!(r.headers().contains_key("www-authenticate"));
            let body: Value = r.json().unwrap();
            assert_eq!(body, json!({"error": "authentication required"}));
        }
    }

    // An acknowledgement link carries its own capability: no bearer needed
    // to reach the handler (which refuses the bogus link itself).
    let r = anonymous
        .get(format!("{url}/v1/incidents/inc-x/ack?token=bogus"))
        .send()
        .unwrap();
    assert!(![401, 403].contains(&r.status().as_u16()), "{}", r.status());

    // Unknown, malformed, expired and revoked tokens: the same answer.
    let short = create_token(&data, "short-lived", "analyst");
    let doomed = create_token(&data, "doomed", "analyst");
    let out = std::process::Command::new(bin())
        .args(["token", "create", "--data"])
        .arg(&data)
        .args(["--role", "analyst", "--name", "expiring", "--expires", "1s"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let expiring = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    server.wait_for("the doomed token to work", || {
        let r = client_with(&doomed)
            .get(format!("{url}/v1/checkpoint"))
            .send()
            .unwrap();
        (r.status() == 200).then_some(())
    });
    let out = std::process::Command::new(bin())
        .args(["token", "revoke", "--data"])
        .arg(&data)
        .arg("doomed")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_for("the revoked token to be refused", || {
        let r = client_with(&doomed)
            .get(format!("{url}/v1/checkpoint"))
            .send()
            .unwrap();
        (r.status() == 401).then_some(())
    });
    server.wait_for("the expiring token to expire", || {
        let r = client_with(&expiring)
            .get(format!("{url}/v1/checkpoint"))
            .send()
            .unwrap();
        (r.status() == 401).then_some(())
    });
    let unknown = format!("st_{}", "A".repeat(43));
    for (what, header) in [
        ("unknown", format!("Bearer {unknown}")),
        ("revoked", format!("Bearer {doomed}")),
        ("expired", format!("Bearer {expiring}")),
        ("malformed", "Basic dXNlcjpwYXNz".to_owned()),
    ] {
        let r = anonymous
            .get(format!("{url}/v1/search?q=*"))
            .header("authorization", header)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{what}");
        let body: Value = r.json().unwrap();
        assert_eq!(body, json!({"error": "authentication required"}), "{what}");
    }

    // The ledger says why each was refused, and who changed the tokens.
    let analyst = client_with(&short);
    let reasons = server.wait_for("refusals recorded", || {
        let hits = search(&analyst, &url, "category:auth AND outcome:failure");
        let reasons: Vec<String> = hits
            .iter()
            .filter_map(|h| h["event"]["attrs"]["reason"].as_str().map(str::to_owned))
            .collect();
        [
            "unknown_token",
            "revoked_token",
            "expired_token",
            "malformed_authorization",
            "no_credentials",
            "role",
        ]
        .iter()
        .all(|r| reasons.iter().any(|x| x == r))
        .then_some(reasons)
    });
    assert!(reasons.iter().all(|r| !r.is_empty()));
    let revoked = search(
        &analyst,
        &url,
        "action:login AND outcome:failure AND attrs.reason:revoked_token",
    );
    assert_eq!(revoked[0]["event"]["actor"]["user"], "token:doomed");
    let changes = server.wait_for("token changes recorded", || {
        let issued = search(&analyst, &url, "category:auth AND action:token_issued");
        let revoked = search(&analyst, &url, "category:auth AND action:token_revoked");
        (issued.len() >= 9 && revoked.len() == 1).then_some(revoked)
    });
    assert_eq!(changes[0]["event"]["attrs"]["subject"], "doomed");
    assert!(
        !serde_json::to_string(&changes).unwrap().contains(&doomed),
        "a token never reaches the ledger"
    );
    assert_eq!(server.terminate(), Some(0));
    // A token reaches neither the service's log.
    assert!(!server_log_contains(dir.path(), &doomed));
}

fn server_log_contains(dir: &std::path::Path, needle: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .any(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(needle)
        })
}

#[test]
fn the_acting_principal_is_recorded_not_a_request_field() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let url = server.http.clone();
    let sender = client_with(&create_token(&data, "ehr-feed", "ingest"));
    let analyst = client_with(&create_token(&data, "dana", "analyst"));
    let responder = client_with(&create_token(&data, "pat", "responder"));
    server.wait_for("tokens loaded", || {
        let r = analyst.get(format!("{url}/v1/checkpoint")).send().unwrap();
        (r.status() == 200).then_some(())
    });

    let v = post_events(
        &sender,
        &url,
        &json!({"id": "p-1", "time": "2026-12-07T10:00:00Z", "category": "access", "action": "view",
                "outcome": "success", "actor": {"user": "u1"}, "patient": {"id": "P9"}}),
    );
    let index = v["first_index"].as_u64().unwrap();
    let hit = server.wait_for("the event searchable", || {
        let hits = search(&analyst, &url, "id:p-1");
        hits.first().cloned()
    });
    assert_eq!(hit["index"], index);
    assert_eq!(hit["via"]["principal"], "token:ehr-feed");

    // The search itself is recorded under the analyst's name.
    let audit = server.wait_for("the search recorded", || {
        let hits = search(
            &analyst,
            &url,
            "action:siem_search AND actor.user:\"token:dana\"",
        );
        (!hits.is_empty()).then_some(hits)
    });
    assert_eq!(audit[0]["via"]["principal"], "token:dana");
    // Reading one event, or its proof (which carries the entry), is
    // recorded too.
    let r = analyst
        .get(format!("{url}/v1/events/{index}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = analyst
        .get(format!("{url}/v1/events/{index}/proof"))
        .send()
        .unwrap();
    assert!([200, 409].contains(&r.status().as_u16()), "{}", r.status());

    // Who acts is never taken from the body.
    let (status, body) = post_json(
        &responder,
        &format!("{url}/v1/silences"),
        &json!({"matchers": [{"field": "rule_id", "value": "r-1"}], "duration": "1h", "created_by": "sealtrail"}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_json(
        &responder,
        &format!("{url}/v1/silences"),
        &json!({"matchers": [{"field": "rule_id", "value": "r-1"}], "duration": "1h", "comment": "maintenance"}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created_by"], "token:pat", "{body}");
    let (status, body) = post_json(
        &responder,
        &format!("{url}/v1/incidents/inc-none/ack"),
        &json!({"by": "sealtrail"}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(server.terminate(), Some(0));
    let reads: Vec<_> = stored_entries(&data)
        .into_iter()
        .filter(|e| {
            e["event"]["action"] == "siem_search" && e["event"]["actor"]["user"] == "token:dana"
        })
        .collect();
    assert!(reads.iter().any(|e| e["event"]["attrs"]["event"] == index));
    assert!(reads.iter().any(|e| e["event"]["attrs"]["proof"] == index));
    verify_ok(&data, &k);
}

#[test]
fn a_flood_of_bad_tokens_is_refused_cheaply_and_recorded_in_bounded_number() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let url = server.http.clone();
    let c = Client::new();
    for i in 0..300 {
        let r = c
            .get(format!("{url}/v1/search?q=*"))
            .bearer_auth(format!("st_{i:043}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let metrics = server
        .client()
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        metric_value(
            &metrics,
            "sealtrail_auth_failures_total{reason=\"unknown_token\"}"
        ),
        Some(300.0)
    );
    assert_eq!(server.terminate(), Some(0));
    let failures = stored_entries(&data)
        .into_iter()
        .filter(|e| e["event"]["attrs"]["reason"] == "unknown_token")
        .count();
    assert!(
        (1..=sealtrail::auth::gate::FAILURE_RECORDS_PER_MINUTE as usize * 2).contains(&failures),
        "{failures} failure records for 300 refusals"
    );
}
