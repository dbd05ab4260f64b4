//! `sealtrail rules check | test | replay | eval` on the shipped pack
//! (`rules/`), on broken copies of it, on a small imported ledger, and
//! against a seeded 30-day `sealtrail gen` run.

use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

const BURST_RULE: &str = "031f78a8-6891-4b5a-a6e3-b4a10d1e6708";

#[test]
fn rules_check_passes_on_the_shipped_pack() {
    let o = run(&["rules", "check", s(&pack())]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out(&o).contains("in 19 files"), "{}", out(&o));
}

#[test]
fn rules_check_reports_file_line_and_column_of_a_broken_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&pack(), &rules);
    std::fs::write(
        rules.join("broken.yml"),
        "title: t\nid: broken\ndetection:\n  sel:\n    actor.usr: a\n  condition: sel\n",
    )
    .unwrap();
    let o = run(&["rules", "check", s(&rules)]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let text = out(&o);
    assert!(
        text.contains("broken.yml:5:5: unknown field `actor.usr`"),
        "{text}"
    );
    // A missing directory is a usage error, not a failed check.
    let o = run(&["rules", "check", s(&dir.path().join("nope"))]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn rules_check_validates_playbooks_and_the_rules_playbook_names() {
    let o = run(&["rules", "check", s(&pack())]);
    assert!(
        out(&o).contains("; 4 playbooks (19 rules name one)"),
        "{}",
        out(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&pack(), &rules);
    let books = rules.join("playbooks");
    // A YAML syntax error, a step naming a level no configuration has, and
    // an unknown template placeholder, each in its own file.
    std::fs::write(
        books.join("broken-yaml.yml"),
        "name: broken\nsteps: [open_incident\n",
    )
    .unwrap();
    std::fs::write(
        books.join("night.yml"),
        "name: night\nsteps:\n  - open_incident\n  - email:\n      level: night-shift\n",
    )
    .unwrap();
    std::fs::write(
        books.join("typo.yml"),
        "name: typo\nsteps:\n  - open_incident\n  - email: {to: [a@clinic.test], subject: \"{{titel}}\"}\n",
    )
    .unwrap();
    let o = run(&["rules", "check", s(&rules)]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(text.contains("playbooks/broken-yaml.yml:3:"), "{text}");
    assert!(
        text.contains("playbooks/night.yml:5:14: unknown on-call level `night-shift`"),
        "{text}"
    );
    assert!(
        text.contains("playbooks/typo.yml:4:43: `subject`: unknown placeholder `{{titel}}`"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3 error(s)"), "{err}");
    assert!(err.contains("pass --config"), "{err}");

    // With the configuration that defines the level, only the other two remain.
    let cfg = dir.path().join("sealtrail.toml");
    std::fs::write(
        &cfg,
        format!(
            "[rules]\ndir = {:?}\n[[oncall.levels]]\nname = \"night-shift\"\nemails = [\"n@clinic.test\"]\n",
            s(&rules)
        ),
    )
    .unwrap();
    let o = run(&["rules", "check", "--config", s(&cfg)]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!text.contains("night.yml"), "{text}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 error(s)"));

    // Fixed playbooks, but a rule that names a playbook that does not exist.
    std::fs::remove_file(books.join("broken-yaml.yml")).unwrap();
    std::fs::remove_file(books.join("typo.yml")).unwrap();
    let f = rules.join("failed_login_burst.yml");
    let rule = std::fs::read_to_string(&f).unwrap();
    let renamed = rule.replacen("playbook: brute-force-page", "playbook: brute-force", 1);
    assert_ne!(rule, renamed);
    std::fs::write(&f, renamed).unwrap();
    let o = run(&["rules", "check", "--config", s(&cfg)]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let unknown = format!(
        "failed_login_burst.yml:8:11: rule `{BURST_RULE}` names unknown playbook `brute-force`"
    );
    assert!(text.contains(&unknown), "{text}");

    // `serve` refuses to start on the same error, with the same text.
    let k = keys(&dir.path().join("keys"));
    let serve_cfg = dir.path().join("serve.toml");
    std::fs::write(
        &serve_cfg,
        format!(
            "data_dir = {:?}\n[rules]\ndir = {:?}\n[ledger]\nkey_file = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [[oncall.levels]]\nname = \"night-shift\"\nemails = [\"n@clinic.test\"]\n",
            s(&dir.path().join("data")),
            s(&rules),
            s(&k.key)
        ),
    )
    .unwrap();
    let o = run(&["serve", "--config", s(&serve_cfg)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&unknown), "{err}");
}

#[test]
fn rules_test_passes_on_the_shipped_pack_and_fails_on_an_altered_expectation() {
    let o = run(&["rules", "test", s(&pack())]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("19 passed, 0 failed, 0 without fixtures"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&pack(), &rules);
    let f = rules.join("tests/failed_login_burst.json");
    let fixture = std::fs::read_to_string(&f).unwrap();
    let altered = fixture.replacen("\"count\": 8", "\"count\": 9", 1);
    assert_ne!(fixture, altered);
    std::fs::write(&f, altered).unwrap();
    let o = run(&["rules", "test", s(&rules)]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL failed_login_burst"), "{text}");
    assert!(text.contains("18 passed, 1 failed"), "{text}");
}

fn login(i: u32, minute: u32, ok: bool) -> String {
    format!(
        r#"{{"id":"t-{i}","time":"2026-03-02T10:{minute:02}:00Z","category":"auth","action":"login","outcome":"{}","actor":{{"user":"u0002","ip":"185.3.1.9"}},"source":{{"system":"sso"}}}}"#,
        if ok { "success" } else { "failure" }
    )
}

#[test]
fn rules_replay_prints_the_alerts_of_a_ledger_window() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    // Nine failed logins in nine minutes, then an unrelated view at noon.
    let mut input: Vec<String> = (0..9).map(|i| login(i, i, false)).collect();
    input.push(
        r#"{"id":"t-v","time":"2026-03-02T12:00:00Z","category":"access","action":"view","outcome":"success","actor":{"user":"u0001","ip":"10.20.1.4"},"patient":{"id":"MRN-0000002"},"source":{"system":"ehr"}}"#.into(),
    );
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, input.join("\n") + "\n").unwrap();
    let o = run(&["import", "--data", s(&data), "--key", s(&k.key), s(&file)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let listing = || std::fs::read_dir(&data).unwrap().count();
    let before = listing();

    let o = run(&[
        "rules",
        "replay",
        "--data",
        s(&data),
        "--from",
        "2026-03-02T00:00:00Z",
        "--to",
        "2026-03-03T00:00:00Z",
        "--rules",
        s(&pack()),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["events"], 10);
    let alerts = v["alerts"].as_array().unwrap();
    let burst: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["rule_id"] == BURST_RULE)
        .collect();
    assert_eq!(burst.len(), 1, "{alerts:?}");
    assert_eq!(burst[0]["group"]["actor.user"], "u0002");
    assert_eq!(burst[0]["count"], 8);
    assert_eq!(burst[0]["severity"], "high");
    assert_eq!(
        burst[0]["event_indices"],
        serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7])
    );

    // Human output names the rule.
    let o = run(&[
        "rules",
        "replay",
        "--data",
        s(&data),
        "--from",
        "2026-03-02T00:00:00Z",
        "--to",
        "2026-03-03T00:00:00Z",
        "--rules",
        s(&pack()),
    ]);
    assert!(out(&o).contains("Burst of failed logins"), "{o:?}");

    // A window that holds only the noon view: nothing from the burst.
    let o = run(&[
        "rules",
        "replay",
        "--data",
        s(&data),
        "--from",
        "2026-03-02T11:00:00Z",
        "--to",
        "2026-03-02T13:00:00Z",
        "--rules",
        s(&pack()),
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["events"], 1);
    assert!(
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["rule_id"] != BURST_RULE),
        "{v}"
    );
    assert_eq!(listing(), before, "replay writes nothing");
}

#[test]
fn rules_eval_reports_precision_and_recall_per_family_on_gen_data() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gen");
    let o = run(&[
        "gen",
        "--days",
        "30",
        "--users",
        "20",
        "--patients",
        "300",
        "--seed",
        "7",
        "--out",
        s(&g),
    ]);
    assert!(o.status.success(), "{o:?}");
    let o = run(&[
        "rules",
        "eval",
        "--events",
        s(&g.join("events.ndjson")),
        "--labels",
        s(&g.join("labels.ndjson")),
        "--rules",
        s(&pack()),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["untagged_alerts"], 0);
    let families = v["families"].as_array().unwrap();
    assert_eq!(families.len(), 17, "{v}");
    for f in families {
        let name = f["family"].as_str().unwrap();
        assert!(
            !f["rules"].as_array().unwrap().is_empty(),
            "{name}: no rule"
        );
        // No family is approximated any more (`sealtrail.gap.*`).
        assert_eq!(f["gap"], false, "{name}: {f}");
        assert!(f["labeled"].as_u64().unwrap() >= 1, "{name}: no label");
        assert_eq!(f["recall"].as_f64(), Some(1.0), "{name}: {f}");
        // A 20-staff practice: one false alert is a sixth of a family's
        // alerts; the issue's 0.9 is measured on 60-staff held-out seeds
        // (BENCHMARKS.md "Detection on practices it has never seen").
        assert!(f["precision"].as_f64().unwrap() >= 0.8, "{name}: {f}");
    }
    assert!(
        v["false_alerts_per_day_per_60_staff"].as_f64().unwrap() <= 2.0,
        "{v}"
    );
    // Most chart accesses are explained (treatment, payment, operations).
    let share = v["explained_accesses"].as_f64().unwrap() / v["access_events"].as_f64().unwrap();
    assert!(share > 0.8, "{v}");
    // The first_seen, absence and join families are detected as defined, including
    // gen's hard cases (a physician who is not the VIP's, an employee's
    // disabled account: two disabled_account_login incidents).
    let fam = |n: &str| families.iter().find(|f| f["family"] == n).unwrap();
    assert!(fam("disabled_account_login")["labeled"].as_u64().unwrap() >= 2);
    for n in [
        "new_ip",
        "dormant_account",
        "vip_no_treatment",
        "disabled_account_login",
        "source_silent",
    ] {
        assert_eq!(fam(n)["gap"], false, "{n}: {}", fam(n));
        assert_eq!(fam(n)["recall"].as_f64(), Some(1.0), "{n}: {}", fam(n));
        assert!(
            fam(n)["precision"].as_f64().unwrap() >= 0.8,
            "{n}: {}",
            fam(n)
        );
    }
    // The baseline rule has no gen family: it raises nothing on gen data
    // (untagged_alerts above), so it cannot hide behind another family.
}

#[test]
fn a_backfill_through_import_detects_what_the_events_in_order_do() {
    // Two weeks of a practice (its delayed sources included) imported into
    // a ledger in one go: the alerts `import` appends, the ledger replayed,
    // and the events file run in order find the same labeled incidents.
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gen");
    let o = run(&[
        "gen",
        "--days",
        "14",
        "--users",
        "20",
        "--patients",
        "300",
        "--seed",
        "5",
        "--out",
        s(&g),
    ]);
    assert!(o.status.success(), "{o:?}");
    let k = dir.path().join("keys");
    assert!(run(&["keygen", "--out", s(&k)]).status.success());
    let data = dir.path().join("data");
    let o = run(&[
        "import",
        "--data",
        s(&data),
        "--key",
        s(&k.join("signing.key")),
        "--lookups",
        s(&g),
        "--rules",
        s(&pack()),
        s(&g.join("events.ndjson")),
    ]);
    assert!(o.status.success(), "{o:?}");
    let (labels, rules) = (g.join("labels.ndjson"), pack());
    let eval = |extra: &[&str]| -> Value {
        let mut args = vec![
            "rules",
            "eval",
            "--labels",
            s(&labels),
            "--lookups",
            s(&g),
            "--rules",
            s(&rules),
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        serde_json::from_str(&out(&o)).unwrap()
    };
    let detected = |v: &Value| -> Vec<(String, u64, u64)> {
        v["families"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["family"].as_str().unwrap().to_owned(),
                    f["labeled"].as_u64().unwrap(),
                    f["detected"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let in_order = eval(&["--events", s(&g.join("events.ndjson"))]);
    let appended = eval(&["--data", s(&data), "--alerts", "ledger"]);
    let replayed = eval(&["--data", s(&data), "--alerts", "replay"]);
    assert_eq!(in_order["events"], appended["events"]);
    assert!(detected(&in_order).iter().any(|(_, l, d)| *l > 0 && d == l));
    assert_eq!(
        detected(&replayed),
        detected(&in_order),
        "{replayed}\n{in_order}"
    );
    assert_eq!(
        detected(&appended),
        detected(&in_order),
        "{appended}\n{in_order}"
    );
}
