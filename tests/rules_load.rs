//! Rule loading from a directory: multi-document files, nested folders,
//! all-or-nothing errors with file, line and column.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::fs;
use std::path::Path;

use sealtrail::rules::{CorrelationType, RuleSet};

const FAILED: &str = "title: Failed login\nid: failed-login\nname: failed_login\nlogsource:\n  product: sealtrail\n  category: auth\ndetection:\n  s:\n    category: auth\n    action: login\n    outcome: failure\n  condition: s\n";

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

#[test]
fn loads_a_directory_with_nested_and_multi_document_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "auth/failed.yml", FAILED);
    write(
        dir.path(),
        "auth/brute.yaml",
        "title: Brute force\nid: brute\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [actor.user]\n  timespan: 5m\n  condition: {gte: 10}\n---\ntitle: Export\nid: export\ndetection:\n  s:\n    action: export\n  condition: s\n",
    );
    write(dir.path(), "README.md", "not a rule");
    let set = RuleSet::load_dir(dir.path()).unwrap();
    assert_eq!(set.len(), 3);
    let ids: Vec<_> = set.detection_rules().map(|m| m.id.clone()).collect();
    // Files are read in path order: auth/brute.yaml, then auth/failed.yml.
    assert_eq!(ids, ["export", "failed-login"]);
    let (m, kind) = set.correlation_rules().next().unwrap();
    assert_eq!(kind, CorrelationType::EventCount);
    assert!(m.file.ends_with("auth/brute.yaml"), "{:?}", m.file);
}

#[test]
fn a_correlation_may_refer_to_a_rule_in_another_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yml", FAILED);
    write(
        dir.path(),
        "b.yml",
        "title: B\nid: b\ncorrelation:\n  type: event_count\n  rules: [failed-login]\n  group-by: [actor.ip]\n  timespan: 1h\n  condition: {gt: 3}\n",
    );
    assert_eq!(RuleSet::load_dir(dir.path()).unwrap().len(), 2);
}

#[test]
fn errors_name_the_file_and_line_and_nothing_loads() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.yml", FAILED);
    write(
        dir.path(),
        "bad_field.yml",
        "title: x\nid: x\ndetection:\n  s:\n    patient.vipp: true\n  condition: s\n",
    );
    write(
        dir.path(),
        "bad_yaml.yml",
        "title: y\nid: y\ndetection: [\n",
    );
    write(
        dir.path(),
        "bad_ref.yml",
        "title: c\nid: c\ncorrelation:\n  type: temporal\n  rules:\n    - failed_login\n    - missing_rule\n  group-by: [actor.user]\n  timespan: 10m\n",
    );
    let errs = RuleSet::load_dir(dir.path()).unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    // The reference check waits until every file parses.
    assert_eq!(errs.len(), 2, "{text:#?}");
    let find = |name: &str| {
        errs.iter()
            .find(|e| e.file.ends_with(name))
            .unwrap_or_else(|| panic!("{name}: {text:#?}"))
    };
    let e = find("bad_field.yml");
    assert_eq!((e.line, e.column), (Some(5), Some(5)));
    assert!(e.reason.contains("unknown field `patient.vipp`"));
    let e = find("bad_yaml.yml");
    assert!(e.reason.contains("yaml syntax error"), "{e}");
    assert!(e.line.is_some());
    // Reference errors are reported once the other files have parsed.
    write(dir.path(), "bad_field.yml", "");
    write(dir.path(), "bad_yaml.yml", "");
    let errs = RuleSet::load_dir(dir.path()).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].file.ends_with("bad_ref.yml"));
    assert_eq!((errs[0].line, errs[0].column), (Some(7), Some(7)));
    assert!(
        errs[0]
            .to_string()
            .contains("bad_ref.yml:7:7: correlation refers to unknown rule `missing_rule`")
    );
}

#[test]
fn oversized_files_and_missing_directories_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let big = "#".repeat(sealtrail::rules::MAX_RULE_FILE_BYTES as usize + 1);
    write(dir.path(), "big.yml", &big);
    let errs = RuleSet::load_dir(dir.path()).unwrap_err();
    assert!(errs[0].reason.contains("larger than"), "{errs:?}");
    assert_eq!(errs[0].line, None);
    assert!(RuleSet::load_dir(&dir.path().join("nope")).is_err());
}
