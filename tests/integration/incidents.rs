//! Incident response in a real `sealtrail serve` against a real SMTP server
//! process: alert -> incident -> one email with a working ack link ->
//! escalation to level 2 -> acknowledgement stops it; bursts grouped; a
//! SIGKILL between the alert and the escalation; silences; invalid, expired
//! and reused links.
//!
//! The SMTP server (`tests/support/smtp_sink.py`, aiosmtpd, installed by
//! `.ci/run`) is named by `[smtp]` in the config; mail goes through the real
//! lettre mailer.

use crate::util::*;
#[path = "../support/smtp.rs"]
pub(crate) mod smtp_support;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PLAYBOOK: &str = r#"name: page
runbook: |
  1. Call the user on their desk phone.
  2. Lock the account if it was not them.
steps:
  - open_incident
  - email:
      level: current
      subject: "[{{severity}}] {{title}} {{incident}} {{round}}"
  - wait_ack
  - escalate
"#;

/// The shared detection pack with the `page` playbook on its two
/// high-severity rules (break-glass and brute-force), brute-force described.
fn paging_rules() -> String {
    let pack = DETECTION_RULES
        .replace("level: high\n", "level: high\nplaybook: page\n")
        .replace(
            "id: brute-force\n",
            "id: brute-force\ndescription: Five or more failed logins of one account in 10 minutes\n",
        );
    assert_eq!(pack.matches("playbook: page").count(), 2, "{pack}");
    pack
}

/// The aiosmtpd server process (`tests/support/smtp.rs`).
struct Smtp {
    sink: smtp_support::Sink,
}

/// An email as received: (recipients, subject, body).
type Mail = (Vec<String>, String, String);

impl Smtp {
    fn start() -> Smtp {
        Smtp {
            sink: smtp_support::Sink::start(&[]),
        }
    }

    /// Messages received so far, in order.
    fn messages(&self) -> Vec<Mail> {
        (1..=self.sink.received())
            .map(|n| {
                let v = self.sink.message(n);
                let to = v["rcpt_tos"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect();
                (
                    to,
                    v["subject"].as_str().unwrap().to_owned(),
                    v["body"].as_str().unwrap().replace("\r\n", "\n"),
                )
            })
            .collect()
    }

    /// The text/html part of the `n`th message (1-based).
    fn html(&self, n: usize) -> String {
        self.sink.message(n)["html"]
            .as_str()
            .expect("a text/html part")
            .replace("\r\n", "\n")
    }

    /// Waits for at least `n` messages; returns all so far.
    fn wait(&self, server: &Server, n: usize) -> Vec<Mail> {
        server.wait_for(&format!("{n} emails"), || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    /// Absence of a notification can only be seen by waiting past the moment
    /// it would have been sent; `until` is that moment plus a margin.
    fn nothing_more_until(&self, n: usize, until: Instant) {
        while Instant::now() < until {
            assert_eq!(
                self.messages().len(),
                n,
                "an unexpected email: {:?}",
                self.messages().last()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(self.messages().len(), n);
    }
}

/// A test's temp dir, signing keys and SMTP server.
struct Fixture {
    dir: tempfile::TempDir,
    k: Keys,
    smtp: Smtp,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(&dir.path().join("keys"));
        Fixture {
            dir,
            k,
            smtp: Smtp::start(),
        }
    }

    /// Two on-call levels with short timeouts; `response` is the body of the
    /// `[response]` section.
    fn config(&self, response: &str) -> String {
        let dir = self.dir.path();
        let rules = rules_folder(&dir.join("rules"), &paging_rules());
        std::fs::create_dir_all(rules.join("playbooks")).unwrap();
        std::fs::write(rules.join("playbooks/page.yml"), PLAYBOOK).unwrap();
        detection_config(
            dir,
            &self.k,
            &rules,
            "200ms",
            &format!(
                "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nstarttls = \"never\"\nfrom = \"siem@clinic.example\"\n\
                 retries = 1\nretry_backoff = \"100ms\"\n\
                 [response]\n{response}\n\
                 [[oncall.levels]]\nname = \"primary\"\nemails = [\"primary@clinic.example\"]\nack_timeout = \"2s\"\n\
                 [[oncall.levels]]\nname = \"secondary\"\nemails = [\"secondary@clinic.example\"]\nack_timeout = \"2s\"\n",
                self.smtp.sink.port,
            ),
        )
    }

    fn serve(&self, config: &str) -> Server {
        Server::start(self.dir.path(), config)
    }

    fn verify_ok(&self) {
        verify_ok(&self.dir.path().join("data"), &self.k);
    }
}

fn failed_logins(c: &Client, url: &str, user: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| live_event(&format!("{user}-fail-{i}"), user, json!({})))
        .collect();
    post_events(c, url, &json!(events));
}

fn incidents(c: &Client, url: &str) -> Vec<Value> {
    get_json(c, &format!("{url}/v1/incidents"))["incidents"]
        .as_array()
        .unwrap()
        .clone()
}

fn incident(c: &Client, url: &str, id: &str) -> Value {
    get_json(c, &format!("{url}/v1/incidents/{id}"))
}

/// `POST /v1/incidents/{id}/{action}` (ack, resolve, note) with `body`:
/// the status and the answer.
fn act(c: &Client, url: &str, id: &str, action: &str, body: &Value) -> (u16, Value) {
    post_json(c, &format!("{url}/v1/incidents/{id}/{action}"), body)
}

/// The DOM headless Chromium shows after opening `url` and running its
/// scripts (up to 10 s of page time).
fn open_in_browser(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap_or_else(|e| panic!("chromium (installed by .ci/run) did not start: {e}"));
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ack_link(body: &str) -> String {
    body.lines()
        .find_map(|l| l.split("one click): ").nth(1))
        .expect("an ack link in the body")
        .trim()
        .to_owned()
}

/// The incident id in an ack link.
fn incident_of(link: &str) -> String {
    link.split("/v1/incidents/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Follows an ack link as a client that asks for JSON (a POST): the status
/// and the answer.
fn post_link(c: &Client, link: &str) -> (u16, Value) {
    let r = c
        .post(link)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Recorded response events (`system/incident_update`), via search.
fn updates(c: &Client, url: &str) -> Vec<Value> {
    let v = get_json(
        c,
        &format!("{url}/v1/search?q=action:incident_update&limit=1000"),
    );
    let mut hits = v["hits"].as_array().unwrap().clone();
    hits.reverse(); // oldest first
    hits.into_iter()
        .map(|h| h["event"]["attrs"].clone())
        .collect()
}

fn kinds(updates: &[Value], incident: &str) -> Vec<String> {
    updates
        .iter()
        .filter(|u| u["incident"] == incident)
        .map(|u| u["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until every `(series, value)` holds in `/metrics`; returns the text.
fn wait_metrics(c: &Client, server: &Server, want: &[(&str, f64)]) -> String {
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        last = c
            .get(format!("{}/metrics", server.http))
            .send()
            .unwrap()
            .text()
            .unwrap_or(last);
        if want.iter().all(|(s, v)| metric_value(&last, s) == Some(*v)) {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never reached {want:?}:\n{}",
            last.lines()
                .filter(|l| want
                    .iter()
                    .any(|(s, _)| l.starts_with(s.split('{').next().unwrap_or(s))))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(25)); // polling a condition
    }
}

#[test]
fn brute_force_alert_emails_escalates_to_level_two_and_an_ack_stops_it() {
    let f = Fixture::new();
    let server = f.serve(&f.config("group_wait = \"300ms\"\ngroup_interval = \"1s\""));
    let c = server.client();
    let url = server.http.clone();
    failed_logins(&c, &url, "u0042", 6);

    // One email to level 1 with the alert's details and a working link.
    let mail = f.smtp.wait(&server, 1);
    let (to, subject, body) = &mail[0];
    assert_eq!(to, &vec!["primary@clinic.example".to_owned()]);
    let inc = incidents(&c, &url);
    assert_eq!(inc.len(), 1, "{inc:?}");
    let id = inc[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        subject,
        &format!("[high] Repeated failed logins {id} first")
    );
    assert!(body.contains("Group:     actor.user=u0042"), "{body}");
    assert!(body.contains("Rule:      brute-force"), "{body}");
    let first_link = ack_link(body);
    assert!(
        first_link.starts_with(&format!("{url}/v1/incidents/{id}/ack?token=")),
        "{first_link}"
    );
    // In words, in both parts: the rule's description, the user, the
    // address, the count, readable event lines, the runbook, both links.
    let html = f.smtp.html(1);
    let incident_link = format!("{url}/#/incidents/{id}");
    let event_line = "login failure  user u0042  from 10.0.0.9  via ehr";
    for want in [
        "Five or more failed logins of one account in 10 minutes",
        "u0042",
        "10.0.0.9",
        event_line,
        "1. Call the user on their desk phone.\n2. Lock the account if it was not them.",
        incident_link.as_str(),
    ] {
        assert!(body.contains(want), "{want:?} not in the text:\n{body}");
        assert!(html.contains(want), "{want:?} not in the html:\n{html}");
    }
    assert!(body.contains("User:      u0042"), "{body}");
    assert!(body.contains("Address:   10.0.0.9"), "{body}");
    // The correlation fires at the fifth failure; the sixth may join it.
    let count = ["5 events", "6 events"]
        .into_iter()
        .find(|c| body.contains(&format!("Count:     {c}")))
        .unwrap_or_else(|| panic!("no count of the burst in\n{body}"));
    assert!(
        html.contains(&format!("<dt>Count</dt><dd>{count}")),
        "{html}"
    );
    assert_eq!(body.matches(event_line).count(), 5, "{body}");
    assert_eq!(html.matches(event_line).count(), 5, "{html}");
    assert!(
        body.contains(&format!("Open the incident:       {incident_link}")),
        "{body}"
    );
    // The ack link is in the HTML too, as a button (`&` escaped in an href).
    assert!(
        html.contains(&format!("href=\"{}\"", first_link.replace('&', "&amp;"))),
        "{html}"
    );
    // The HTML part in a real browser: one column, both buttons, no script.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("alert.html");
    std::fs::write(&page, &html).unwrap();
    let dom = open_in_browser(&format!("file://{}", page.display()));
    assert!(dom.contains(">Open the incident</a>"), "{dom}");
    assert!(dom.contains(">Acknowledge</a>"), "{dom}");
    assert!(dom.contains("max-width:600px"), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");
    assert_eq!(inc[0]["state"], "open");
    assert_eq!(inc[0]["level"], "primary");

    // Nobody acknowledges: level 2 gets the escalation after ack_timeout.
    let mail = f.smtp.wait(&server, 2);
    assert_eq!(mail[1].0, vec!["secondary@clinic.example".to_owned()]);
    assert!(mail[1].1.ends_with("escalation"), "{}", mail[1].1);
    let one = incident(&c, &url, &id);
    assert_eq!(one["level"], "secondary");
    assert_eq!(one["escalations"], 1);

    // Acknowledged through the API: no further notification.
    let (status, v) = act(
        &c,
        &url,
        &id,
        "ack",
        &json!({"note": "looking into it", "assignee": "ann"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "acknowledged");
    // Who acked is the token's holder, not a field of the request.
    assert_eq!(v["acknowledged_by"], "token:test-all");
    assert_eq!(v["notes"][0]["note"], "looking into it");
    // Secondary's ack_timeout (2 s) plus a margin passes without an email.
    f.smtp
        .nothing_more_until(2, Instant::now() + Duration::from_millis(3000));

    // The level-1 link now finds the incident acknowledged.
    let (status, v) = post_link(&c, &first_link);
    assert_eq!(status, 409);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("already acknowledged by token:test-all"),
        "{v}"
    );

    // The whole story is in the ledger.
    let recorded = server.wait_for("the response record in search", || {
        let u = updates(&c, &url);
        kinds(&u, &id)
            .contains(&"ack_token_used".to_owned())
            .then_some(u)
    });
    let k_ = kinds(&recorded, &id);
    for want in [
        "opened",
        "notified",
        "escalated",
        "acknowledged",
        "ack_token_used",
    ] {
        assert!(k_.contains(&want.to_owned()), "{want} missing from {k_:?}");
    }
    let notified: Vec<&Value> = recorded
        .iter()
        .filter(|u| u["incident"] == id && u["kind"] == "notified")
        .collect();
    assert_eq!(notified.len(), 2, "{notified:?}");
    assert_eq!(notified[0]["outcome"], "delivered");
    assert_eq!(notified[0]["level"], "primary");
    assert_eq!(notified[1]["level"], "secondary");
    assert_eq!(notified[1]["round_kind"], "escalation");

    // `/metrics` counted each step; the latency histogram holds the first
    // email only (escalations wait ack_timeout on purpose), group_wait included.
    let text = wait_metrics(
        &c,
        &server,
        &[
            ("sealtrail_incidents_opened_total", 1.0),
            (
                "sealtrail_notification_attempts_total{channel=\"email\",outcome=\"delivered\"}",
                2.0,
            ),
            (
                "sealtrail_incident_escalations_total{reason=\"ack_timeout\"}",
                1.0,
            ),
            ("sealtrail_incidents_acknowledged_total{via=\"api\"}", 1.0),
            ("sealtrail_incidents_open", 1.0),
            ("sealtrail_notifications_silenced_total", 0.0),
            (
                "sealtrail_notification_latency_seconds_count{channel=\"email\"}",
                1.0,
            ),
        ],
    );
    let latency = metric_value(
        &text,
        "sealtrail_notification_latency_seconds_sum{channel=\"email\"}",
    )
    .unwrap();
    assert!((0.3..10.0).contains(&latency), "{latency}");
    assert_eq!(server.terminate(), Some(0));
    f.verify_ok();
}

#[test]
fn the_webhook_keeps_its_fields_and_adds_the_facts_in_words() {
    let f = Fixture::new();
    let config = f.config("group_wait = \"300ms\"");
    let (hook, bodies) = crate::witness::webhook_catcher();
    std::fs::write(
        f.dir.path().join("rules/playbooks/page.yml"),
        format!(
            "name: page\nrunbook: |\n  Call the user.\n  Lock the account.\nsteps:\n  - open_incident\n  - webhook:\n      url: {hook:?}\n"
        ),
    )
    .unwrap();
    let server = f.serve(&config);
    let c = server.client();
    let url = server.http.clone();
    failed_logins(&c, &url, "u0042", 6);
    let v = bodies
        .recv_timeout(Duration::from_secs(30))
        .expect("a webhook");
    let id = v["incident"]["id"].as_str().unwrap().to_owned();
    // Every field that existed before is still there.
    assert_eq!(v["kind"], "first", "{v}");
    assert_eq!(v["level"], "primary", "{v}");
    assert!(v["round"].is_u64(), "{v}");
    assert!(v["latest_alert"]["event_indices"].is_array(), "{v}");
    let ack = v["ack_url"].as_str().unwrap();
    assert!(
        ack.starts_with(&format!("{url}/v1/incidents/{id}/ack?token=")),
        "{v}"
    );
    // And the same facts as the email, as fields.
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .starts_with("[high] Repeated failed logins: user u0042, from 10.0.0.9, "),
        "{v}"
    );
    assert_eq!(
        v["description"],
        "Five or more failed logins of one account in 10 minutes"
    );
    assert_eq!(v["facts"]["user"], "u0042", "{v}");
    assert_eq!(v["facts"]["source_ips"], json!(["10.0.0.9"]), "{v}");
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 5, "{v}");
    assert_eq!(events[0]["action"], "login");
    assert_eq!(events[0]["outcome"], "failure");
    assert_eq!(events[0]["user"], "u0042");
    assert_eq!(events[0]["index"], v["latest_alert"]["event_indices"][0]);
    assert!(
        events[0]["text"]
            .as_str()
            .unwrap()
            .contains("login failure  user u0042")
    );
    assert_eq!(v["explanation"], Value::Null);
    assert_eq!(v["runbook"], "Call the user.\nLock the account.");
    assert_eq!(v["links"]["incident"], format!("{url}/#/incidents/{id}"));
    assert_eq!(v["links"]["ack"], ack);
}

#[test]
fn a_burst_of_one_hundred_alerts_is_one_incident_and_one_email() {
    let f = Fixture::new();
    let server = f.serve(&f.config("group_wait = \"1s\"\ngroup_interval = \"1h\""));
    let c = server.client();
    let url = server.http.clone();
    // 100 break-glass accesses: 100 alerts of a rule without a group.
    let events: Vec<Value> = (0..100)
        .map(|i| {
            live_event(
                &format!("bg-{i}"),
                "u7",
                json!({"category": "access", "action": "view", "outcome": "success",
                       "reason": "break_glass", "patient": {"id": format!("MRN-{i}")}}),
            )
        })
        .collect();
    post_events(&c, &url, &json!(events));
    let inc = server.wait_for("100 alerts in one incident", || {
        let i = incidents(&c, &url);
        (i.len() == 1 && i[0]["alerts"] == 100).then(|| i[0].clone())
    });
    let mail = f.smtp.wait(&server, 1);
    assert!(mail[0].2.contains("Alerts:    100"), "{}", mail[0].2);
    // group_interval is 1 h: no update, and no second incident.
    f.smtp
        .nothing_more_until(1, Instant::now() + Duration::from_millis(1500));
    let id = inc["id"].as_str().unwrap();
    let one = incident(&c, &url, id);
    assert_eq!(one["notifications"]["rounds"], 1, "{one}");
    assert_eq!(incidents(&c, &url).len(), 1);
}

#[test]
fn a_sigkill_between_the_alert_and_the_escalation_still_escalates_on_time() {
    let f = Fixture::new();
    let cfg = f
        .config("group_wait = \"100ms\"")
        .replace("ack_timeout = \"2s\"", "ack_timeout = \"4s\"");
    let server = f.serve(&cfg);
    let c = server.client();
    failed_logins(&c, &server.http, "u0099", 5);
    f.smtp.wait(&server, 1);
    let first_at = Instant::now();
    let id = incidents(&c, &server.http)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Killed once the delivery is recorded (searchable means durable). A
    // kill between the SMTP server's acceptance and that record would send
    // the first email again after the restart: delivery is at least once.
    server.wait_for("the first delivery in the ledger", || {
        kinds(&updates(&c, &server.http), &id)
            .contains(&"notified".to_owned())
            .then_some(())
    });
    server.kill();

    let server = f.serve(&cfg);
    let mail = f.smtp.wait(&server, 2);
    let waited = first_at.elapsed();
    assert_eq!(mail[1].0, vec!["secondary@clinic.example".to_owned()]);
    // On time: not before the 4 s timeout, and not a whole timeout late.
    assert!(
        waited >= Duration::from_millis(3500),
        "escalated early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(8),
        "escalated late: {waited:?}"
    );
    let inc = incidents(&c, &server.http);
    assert_eq!(
        inc.len(),
        1,
        "the replayed alert opened no second incident: {inc:?}"
    );
    assert_eq!(inc[0]["id"], id);
    assert_eq!(inc[0]["level"], "secondary");
    // The first email was not sent again.
    assert_eq!(f.smtp.messages().len(), 2);
    assert_eq!(server.terminate(), Some(0));
    f.verify_ok();
}

#[test]
fn a_silenced_alert_is_recorded_but_nobody_is_emailed() {
    let f = Fixture::new();
    let server = f.serve(&f.config("group_wait = \"200ms\""));
    let c = server.client();
    let url = server.http.clone();
    let (status, s) = post_json(
        &c,
        &format!("{url}/v1/silences"),
        &json!({"matchers": [{"field": "rule_id", "value": "brute-force"},
                            {"field": "actor.user", "regex": "svc-.*"}],
               "duration": "1h", "comment": "load test"}),
    );
    assert_eq!(status, 201, "{s}");
    let sid = s["id"].as_str().unwrap().to_owned();
    let (status, e) = post_json(
        &c,
        &format!("{url}/v1/silences"),
        &json!({"matchers": [{"field": "rule_id", "regex": "("}], "duration": "1h"}),
    );
    assert_eq!(status, 400);
    assert!(
        e["error"].as_str().unwrap().contains("invalid regex"),
        "{e}"
    );

    failed_logins(&c, &url, "svc-batch", 5);
    let inc = server.wait_for("the silenced incident", || {
        let i = incidents(&c, &url);
        (i.len() == 1).then(|| i[0].clone())
    });
    assert_eq!(inc["silenced_alerts"], 1);
    // The alert itself is recorded (and searchable within about a second).
    let alerts = server.wait_for("the silenced alert in /v1/alerts", || {
        let a = get_json(&c, &format!("{url}/v1/alerts"));
        (a["alerts"].as_array().unwrap().len() == 1).then_some(a)
    });
    assert_eq!(alerts["alerts"][0]["group"]["actor.user"], "svc-batch");
    // Past group_wait: no email for the silenced group ...
    f.smtp
        .nothing_more_until(0, Instant::now() + Duration::from_millis(1000));
    // ... while another account still pages.
    failed_logins(&c, &url, "u0007", 5);
    let mail = f.smtp.wait(&server, 1);
    assert!(mail[0].2.contains("actor.user=u0007"));
    wait_metrics(
        &c,
        &server,
        &[
            ("sealtrail_incidents_opened_total", 2.0),
            ("sealtrail_notifications_silenced_total", 1.0),
            (
                "sealtrail_notification_attempts_total{channel=\"email\",outcome=\"delivered\"}",
                1.0,
            ),
            (
                "sealtrail_notification_latency_seconds_count{channel=\"email\"}",
                1.0,
            ),
        ],
    );

    let listed = get_json(&c, &format!("{url}/v1/silences"));
    assert_eq!(listed["silences"][0]["id"], sid.as_str());
    assert_eq!(listed["silences"][0]["active"], true);
    // Deleted once; a second delete finds nothing.
    for status in [200, 404] {
        let r = c.delete(format!("{url}/v1/silences/{sid}")).send().unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
    let listed = get_json(&c, &format!("{url}/v1/silences"));
    assert_eq!(listed["silences"].as_array().unwrap().len(), 0);
}

#[test]
fn ack_links_refuse_invalid_expired_and_reused_tokens_and_resolved_incidents_refuse_acks() {
    let f = Fixture::new();
    let server = f.serve(
        // token_ttl leaves room for Chromium's start on a loaded machine:
        // the checks below must use both links before they expire (with
        // 2 s, a busy full-suite run saw 410 for the reused link).
        &f.config("group_wait = \"100ms\"\ntoken_ttl = \"8s\"")
            .replace("ack_timeout = \"2s\"", "ack_timeout = \"1h\""),
    );
    let c = server.client();
    let url = server.http.clone();
    failed_logins(&c, &url, "u1", 5);
    failed_logins(&c, &url, "u2", 5);
    let mail = f.smtp.wait(&server, 2);
    let link_of = |user: &str| {
        mail.iter()
            .find(|m| m.2.contains(&format!("actor.user={user}")))
            .map(|m| ack_link(&m.2))
            .unwrap()
    };
    let (l1, l2) = (link_of("u1"), link_of("u2"));
    let (id1, id2) = (incident_of(&l1), incident_of(&l2));

    // A GET of the link (what a mail gateway's link scanner does) changes
    // nothing: it is a page whose form posts the link back.
    let r = c.get(&l1).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().unwrap();
    assert!(page.contains("<form method=\"post\">"), "{page}");
    // The script is a file (the content security policy allows no inline script).
    assert!(
        page.contains("<script src=\"/assets/ack.js\"></script>"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
    let r = c.get(format!("{url}/assets/ack.js")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(r.text().unwrap().contains("document.forms[0].submit()"));
    let r = c
        .get(&l1)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let one = incident(&c, &url, &id1);
    assert_eq!(one["state"], "open");

    // Garbage and a token of another incident.
    let r = c
        .post(format!("{url}/v1/incidents/{id1}/ack?token=not-a-token"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("malformed"));
    let token2 = l2.split("token=").nth(1).unwrap();
    let (status, v) = post_link(&c, &format!("{url}/v1/incidents/{id1}/ack?token={token2}"));
    assert_eq!(status, 403);
    assert!(
        v["error"].as_str().unwrap().contains("another incident"),
        "{v}"
    );

    // One click in a real browser (headless Chromium, which `.ci/run`
    // installs) acknowledges: the page posts the link back by itself. The
    // second use is refused.
    let dom = open_in_browser(&l1);
    assert!(dom.contains("Incident acknowledged"), "{dom}");
    let one = incident(&c, &url, &id1);
    assert_eq!(one["state"], "acknowledged");
    assert_eq!(one["acknowledged_by"], "link:primary");
    let (status, v) = post_link(&c, &l1);
    assert_eq!(status, 409);
    assert!(v["error"].as_str().unwrap().contains("already used"), "{v}");

    // Expired (token_ttl is 8 s): the token says until when, in unix seconds.
    let payload = token2.split('.').next().unwrap();
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let expires: i64 = String::from_utf8(payload)
        .unwrap()
        .split('.')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    server.wait_for("the second link's expiry", || {
        (sealtrail::event::Timestamp::now().unix_ms() / 1000 >= expires).then_some(())
    });
    assert_eq!(post_link(&c, &l2).0, 410);
    assert_eq!(incident(&c, &url, &id2)["state"], "open");

    // Resolved incidents cannot be acknowledged; unknown ones are 404.
    let (s, v) = act(
        &c,
        &url,
        &id2,
        "resolve",
        &json!({"note": "false positive"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "resolved");
    let (s, v) = act(&c, &url, &id2, "ack", &json!({}));
    assert_eq!(s, 409);
    assert!(v["error"].as_str().unwrap().contains("resolved"), "{v}");
    let (s, _) = act(&c, &url, &id2, "resolve", &json!({}));
    assert_eq!(s, 409);
    let (s, _) = act(&c, &url, "inc-nope", "ack", &json!({}));
    assert_eq!(s, 404);
    // Nobody acts in another's name.
    let (s, v) = act(&c, &url, &id2, "ack", &json!({"by": "bob"}));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("not taken"), "{v}");
    // Without a token the body must be JSON.
    for (ctype, body, status) in [
        ("application/x-www-form-urlencoded", "by=bob", 415),
        ("application/json", "{\"by\":", 400),
    ] {
        let r = c
            .post(format!("{url}/v1/incidents/{id2}/ack"))
            .header("Content-Type", ctype)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{ctype}");
    }
    let (s, v) = act(&c, &url, &id2, "note", &json!({"note": "closed with IT"}));
    assert_eq!(s, 200, "{v}");
    let listed = get_json(&c, &format!("{url}/v1/incidents?state=resolved"));
    assert_eq!(listed["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(listed["incidents"][0]["id"], id2.as_str());
    let r = c
        .get(format!("{url}/v1/incidents?state=nope"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Every refusal is recorded.
    let recorded = server.wait_for("token uses in search", || {
        let u = updates(&c, &url);
        let uses: Vec<Value> = u
            .into_iter()
            .filter(|u| u["kind"] == "ack_token_used")
            .collect();
        (uses.len() >= 5).then_some(uses)
    });
    let reasons: Vec<&str> = recorded
        .iter()
        .map(|u| u["reason"].as_str().unwrap_or("accepted"))
        .collect();
    for want in ["malformed", "wrong_incident", "accepted", "used", "expired"] {
        assert!(reasons.contains(&want), "{want} missing from {reasons:?}");
    }
    wait_metrics(
        &c,
        &server,
        &[
            ("sealtrail_incidents_opened_total", 2.0),
            ("sealtrail_incidents_acknowledged_total{via=\"link\"}", 1.0),
            ("sealtrail_incidents_resolved_total{reason=\"api\"}", 1.0),
            ("sealtrail_incidents_open", 1.0),
        ],
    );
}

#[test]
fn a_silence_preview_names_what_it_would_mute_checks_like_create_and_records_nothing() {
    let f = Fixture::new();
    let server = f.serve(&f.config("group_wait = \"200ms\""));
    let c = server.client();
    let url = server.http.clone();
    for user in ["svc-batch", "svc-sync", "u0007"] {
        failed_logins(&c, &url, user, 5);
    }
    let all = server.wait_for("three incidents", || {
        let i = incidents(&c, &url);
        (i.len() == 3).then_some(i)
    });
    let id_of = |user: &str| {
        all.iter()
            .find(|i| i["group"]["actor.user"] == user)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (status, _) = act(&c, &url, &id_of("svc-sync"), "resolve", &json!({}));
    assert_eq!(status, 200);
    let preview = |body: &Value| post_json(&c, &format!("{url}/v1/silences/preview"), body);
    let create = |body: &Value| post_json(&c, &format!("{url}/v1/silences"), body);
    let body = json!({"matchers": [{"field": "rule_id", "value": "brute-force"},
                                   {"field": "actor.user", "regex": "svc-.*"}],
                      "duration": "1h", "comment": "load test"});

    // The open incident's new alerts would stop paging; the resolved one's
    // alerts would have been muted.
    let (status, p) = preview(&body);
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["silence"]["comment"], "load test", "{p}");
    assert!(p["silence"].get("id").is_none(), "{p}");
    let pv = &p["preview"];
    assert_eq!(pv["remembered"], 3, "{p}");
    assert_eq!(pv["open"]["incidents"], 1, "{p}");
    assert_eq!(pv["open"]["listed"][0]["id"], id_of("svc-batch").as_str());
    assert_eq!(pv["open"]["listed"][0]["group"]["actor.user"], "svc-batch");
    assert_eq!(pv["past"]["incidents"], 1, "{p}");
    assert_eq!(pv["past"]["alerts"], 1, "{p}");
    assert_eq!(pv["past"]["listed"][0]["id"], id_of("svc-sync").as_str());
    assert_eq!(pv["past"]["listed"][0]["state"], "resolved");
    assert_eq!(pv["warnings"], json!([]), "{p}");
    assert_eq!(pv["overlaps"], json!([]), "{p}");

    // A field no incident has is named.
    let (status, p) = preview(
        &json!({"matchers": [{"field": "actor.usr", "value": "svc-batch"}],
                                      "duration": "4h"}),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["preview"]["warnings"],
        json!(["actor.usr is on none of the 3 incidents"])
    );
    assert_eq!(p["preview"]["open"]["incidents"], 0);

    // Preview and create refuse the same bodies with the same words.
    for bad in [
        json!({"matchers": [{"field": "rule_id", "regex": "("}], "duration": "1h"}),
        json!({"matchers": [], "duration": "1h"}),
        json!({"matchers": [{"field": "rule_id", "value": "x"}], "duration": "40d"}),
        json!({"matchers": [{"field": "rule_id", "value": "x"}]}),
        json!({"matchers": [{"field": "rule_id", "value": "x"}], "ends_at": "9999-12-31T00:00:00Z"}),
        json!({"matchers": [{"field": "rule_id", "value": "x"}], "duration": "1h", "created_by": "eve"}),
    ] {
        let (ps, pe) = preview(&bad);
        let (cs, ce) = create(&bad);
        assert_eq!((ps, &pe), (cs, &ce), "{bad}");
        assert_eq!(ps, 400, "{bad}: {pe}");
    }

    // Nothing was recorded by the previews.
    let listed = get_json(&c, &format!("{url}/v1/silences"));
    assert_eq!(listed["silences"], json!([]), "{listed}");

    // Once created, a preview of a silence muting the same incident names it.
    let (status, s) = create(&body);
    assert_eq!(status, 201, "{s}");
    let (_, p) = preview(
        &json!({"matchers": [{"field": "actor.user", "value": "svc-batch"}],
                                 "duration": "2h"}),
    );
    let overlaps = p["preview"]["overlaps"].as_array().unwrap();
    assert_eq!(overlaps.len(), 1, "{p}");
    assert_eq!(overlaps[0]["id"], s["id"]);
    assert_eq!(overlaps[0]["shared_incidents"], 1);
    assert_eq!(overlaps[0]["active"], true);

    // Every preview is audited as a read (three answered with 200), and
    // only the creation is a silence record.
    let audited = server.wait_for("the previews' audit records", || {
        let v = get_json(
            &c,
            &format!("{url}/v1/search?q=action:siem_search&limit=500"),
        );
        let n = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["event"]["attrs"]["silence_preview"] == true)
            .count();
        (n >= 3).then_some(n)
    });
    assert_eq!(audited, 3);
    let created = server.wait_for("the silence record", || {
        let n = updates(&c, &url)
            .iter()
            .filter(|u| u["kind"] == "silence_created")
            .count();
        (n >= 1).then_some(n)
    });
    assert_eq!(created, 1);
}
