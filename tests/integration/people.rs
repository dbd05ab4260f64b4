//! People: `sealtrail user ...` and console sign-in over a running service
//! (password + TOTP, cookie sessions, replay refusal, lockout, idle
//! timeout), every outcome in the ledger.

use crate::util::*;
use reqwest::blocking::{Client, Response};
use sealtrail::auth::people::totp;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "correct horse battery staple";

fn user_cmd(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin())
        .arg("user")
        .args(&args[..1])
        .arg("--data")
        .arg(data)
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// `user add NAME --role ROLES --password-stdin`; the enrolled TOTP secret.
fn add_user(data: &Path, name: &str, roles: &str) -> String {
    let out = user_cmd(
        data,
        &["add", name, "--role", roles, "--password-stdin"],
        Some(&format!("{PASS}\n")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        stdout.contains(&format!(
            "otpauth://totp/sealtrail:{name}?secret={secret}&issuer=sealtrail&algorithm=SHA1&digits=6&period=30"
        )),
        "{stdout}"
    );
    secret
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn code(secret: &str, offset_s: i64) -> String {
    totp::code(secret, unix_now() + offset_s).unwrap()
}

fn sign_in(c: &Client, url: &str, user: &str, password: &str, code: &str) -> Response {
    c.post(format!("{url}/v1/session"))
        .json(&json!({"user": user, "password": password, "totp": code}))
        .send()
        .unwrap()
}

fn refused(r: Response) {
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let body: Value = r.json().unwrap();
    assert_eq!(
        body,
        json!({"error": "sign-in failed"}),
        "the same answer for every failure"
    );
}

/// The session cookie's value from a successful sign-in, checking its attributes.
fn session_cookie(r: &Response) -> String {
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let mut parts = set.split(';').map(str::trim);
    let value = parts
        .next()
        .unwrap()
        .strip_prefix("sealtrail_session=")
        .unwrap()
        .to_owned();
    assert_eq!(value.len(), 43, "{set}");
    let attrs: Vec<&str> = parts.collect();
    for a in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&a), "{a} missing from {set}");
    }
    value
}

fn get_session(c: &Client, url: &str, cookie: &str) -> Response {
    c.get(format!("{url}/v1/session"))
        .header("cookie", format!("sealtrail_session={cookie}"))
        .send()
        .unwrap()
}

/// A six-digit code that is none of the codes valid around now.
fn wrong_code(secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|k| code(secret, k * 30)).collect();
    (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

#[test]
fn user_cli_adds_lists_and_disables() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = add_user(&data, "alice", "analyst,admin");
    assert_eq!(secret.len(), 32);
    assert_eq!(totp::code(&secret, unix_now()).unwrap().len(), 6);

    let short = user_cmd(
        &data,
        &["add", "bob", "--role", "analyst", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let bad_role = user_cmd(
        &data,
        &["add", "bob", "--role", "root", "--password-stdin"],
        Some(&format!("{PASS}\n")),
    );
    assert_eq!(bad_role.status.code(), Some(2));
    let again = user_cmd(
        &data,
        &["add", "alice", "--role", "analyst", "--password-stdin"],
        Some(&format!("{PASS}\n")),
    );
    assert_eq!(again.status.code(), Some(2), "names are not reused");

    let list = user_cmd(&data, &["list"], None);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success());
    let row = text.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(
        row.contains("analyst,admin") && row.contains("active"),
        "{text}"
    );
    assert!(!text.contains("bob"), "failed adds leave nothing: {text}");

    assert!(
        user_cmd(&data, &["disable", "alice"], None)
            .status
            .success()
    );
    assert_eq!(
        user_cmd(&data, &["disable", "alice"], None).status.code(),
        Some(2)
    );
    let list = user_cmd(&data, &["list", "--json"], None);
    let rows: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["name"], "alice");
    assert_eq!(rows[0]["disabled"], true);
    assert_eq!(rows[0]["roles"], json!(["analyst", "admin"]));
    assert!(user_cmd(&data, &["enable", "alice"], None).status.success());

    use std::os::unix::fs::PermissionsExt;
    let users = data.join("auth/users.json");
    assert_eq!(
        std::fs::metadata(&users).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stored = std::fs::read_to_string(&users).unwrap();
    assert!(!stored.contains(PASS), "only the argon2id hash is stored");
    assert!(stored.contains("$argon2id$v=19$m=19456,t=2,p=1$"));
    let journal = std::fs::read_to_string(data.join("auth/changes.ndjson")).unwrap();
    let ops: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["op"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ops, ["user_add", "user_disable", "user_enable"]);
}

#[test]
fn people_sign_in_with_password_and_totp_over_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let server = Server::start(
        dir.path(),
        &serve_config(&data, &k, "[auth]\nsession_idle = \"2s\"\n"),
    );
    let url = server.http.clone();
    let c = Client::new();

    // Added while the service runs.
    let alice = add_user(&data, "alice", "analyst");
    let bob = add_user(&data, "bob", "auditor");

    let first = code(&alice, 0);
    let r = sign_in(&c, &url, "alice", PASS, &first);
    assert_eq!(r.status().as_u16(), 200, "{}", server.log_text());
    let cookie = session_cookie(&r);
    let body: Value = r.json().unwrap();
    assert_eq!(
        body,
        json!({"user": "alice", "roles": ["analyst"], "idle_timeout_s": 2})
    );
    let r = get_session(&c, &url, &cookie);
    assert_eq!(r.status().as_u16(), 200);
    let last_use = Instant::now();
    assert_eq!(r.json::<Value>().unwrap()["user"], "alice");
    assert_eq!(
        c.get(format!("{url}/v1/session"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let mut tampered = cookie.clone();
    tampered.replace_range(0..1, if cookie.starts_with('A') { "B" } else { "A" });
    assert_eq!(get_session(&c, &url, &tampered).status().as_u16(), 401);

    // Replayed code, wrong code, wrong password, unknown user: one answer.
    refused(sign_in(&c, &url, "alice", PASS, &first));
    refused(sign_in(&c, &url, "alice", PASS, &wrong_code(&alice)));
    refused(sign_in(
        &c,
        &url,
        "alice",
        "not the passphrase",
        &code(&alice, 30),
    ));
    refused(sign_in(&c, &url, "mallory", PASS, "123456"));
    // Not JSON: refused before any check.
    let r = c
        .post(format!("{url}/v1/session"))
        .header("content-type", "text/plain")
        .body(format!(
            r#"{{"user":"bob","password":"{PASS}","totp":"{}"}}"#,
            code(&bob, 0)
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    // bob: sign in, re-authenticate, sign out.
    let r = sign_in(&c, &url, "bob", PASS, &code(&bob, 0));
    assert_eq!(r.status().as_u16(), 200);
    let bob_cookie = session_cookie(&r);
    let r = c
        .post(format!("{url}/v1/session/reauth"))
        .header("cookie", format!("sealtrail_session={bob_cookie}"))
        .json(&json!({"password": PASS, "totp": code(&bob, 30)}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .delete(format!("{url}/v1/session"))
        .header("cookie", format!("sealtrail_session={bob_cookie}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cleared = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cleared.starts_with("sealtrail_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(get_session(&c, &url, &bob_cookie).status().as_u16(), 401);

    // Disabling a person while the service runs ends their session.
    let carol = add_user(&data, "carol", "responder");
    let r = sign_in(&c, &url, "carol", PASS, &code(&carol, 0));
    assert_eq!(r.status().as_u16(), 200);
    let carol_cookie = session_cookie(&r);
    assert_eq!(get_session(&c, &url, &carol_cookie).status().as_u16(), 200);
    assert!(
        user_cmd(&data, &["disable", "carol"], None)
            .status
            .success()
    );
    server.wait_for("carol's session to end", || {
        (get_session(&c, &url, &carol_cookie).status().as_u16() == 401).then_some(())
    });
    refused(sign_in(&c, &url, "carol", PASS, &code(&carol, 30)));

    // alice's session was last used at `last_use`: idle for 2 s, it ends.
    // (An idle timeout can only be observed by not using the session.)
    let idle_until = last_use + Duration::from_millis(2300);
    std::thread::sleep(idle_until.saturating_duration_since(Instant::now()));
    assert_eq!(get_session(&c, &url, &cookie).status().as_u16(), 401);

    // Two more failures make five: alice is locked, the right password
    // and a fresh code are refused.
    refused(sign_in(&c, &url, "alice", "not the passphrase", "000000"));
    refused(sign_in(&c, &url, "alice", "still not it", "000000"));
    refused(sign_in(&c, &url, "alice", PASS, &code(&alice, 30)));

    assert_eq!(server.terminate(), Some(0));
    let events: Vec<Value> = stored_entries(&data)
        .into_iter()
        .map(|e| e["event"].clone())
        .filter(|e| e["category"] == "auth")
        .collect();
    let find = |action: &str, user: Option<&str>, outcome: &str, reason: Option<&str>| {
        events.iter().any(|e| {
            e["action"] == action
                && e["outcome"] == outcome
                && user.is_none_or(|u| e["actor"]["user"] == u)
                && reason.is_none_or(|r| e["attrs"]["reason"] == r)
        })
    };
    let shown: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["action"], e["outcome"], e["actor"]["user"], e["attrs"]
            )
        })
        .collect();
    for (action, user, outcome, reason) in [
        ("login", Some("user:alice"), "success", None),
        (
            "login",
            Some("user:alice"),
            "failure",
            Some("replayed_totp"),
        ),
        ("login", Some("user:alice"), "failure", Some("bad_totp")),
        ("login", Some("user:alice"), "failure", Some("bad_password")),
        (
            "login",
            Some("user:alice"),
            "failure",
            Some("account_locked"),
        ),
        ("login", None, "failure", Some("unknown_user")),
        ("account_lockout", Some("user:alice"), "success", None),
        ("session_timeout", Some("user:alice"), "success", None),
        ("login", Some("user:bob"), "success", None),
        ("mfa_challenge", Some("user:bob"), "success", None),
        ("logout", Some("user:bob"), "success", None),
        (
            "login",
            Some("user:carol"),
            "failure",
            Some("account_disabled"),
        ),
    ] {
        assert!(
            find(action, user, outcome, reason),
            "no {action} {outcome} {user:?} {reason:?} among:\n{}",
            shown.join("\n")
        );
    }
    let unknown = events
        .iter()
        .find(|e| e["attrs"]["reason"] == "unknown_user")
        .unwrap();
    assert_eq!(unknown["attrs"]["attempted_user"], "mallory");
    assert!(unknown["actor"]["user"].is_null());
    let all = stored_payloads(&data);
    assert!(
        !all.iter()
            .any(|p| String::from_utf8_lossy(p).contains(PASS)),
        "no password reaches the ledger"
    );
}

#[test]
fn a_signed_in_person_acts_with_their_roles_and_exports_only_after_reauthenticating() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let server = Server::start(
        dir.path(),
        &serve_config(&data, &k, "[auth]\nreauth_within = \"2s\"\n"),
    );
    let url = server.http.clone();
    let c = Client::new();
    let dana = add_user(&data, "dana", "analyst");
    let olu = add_user(&data, "olu", "auditor");
    let r = sign_in(&c, &url, "dana", PASS, &code(&dana, 0));
    assert_eq!(r.status().as_u16(), 200);
    let dana_cookie = format!("sealtrail_session={}", session_cookie(&r));

    // The analyst searches with the cookie; the search is recorded as hers.
    let r = c
        .get(format!("{url}/v1/search?q=*"))
        .header("cookie", &dana_cookie)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Her role does not export, and a cross-site request cannot use her
    // cookie to change anything.
    let export = json!({"q": "*"});
    let r = c
        .post(format!("{url}/v1/export"))
        .header("cookie", &dana_cookie)
        .json(&export)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = c
        .post(format!("{url}/v1/search"))
        .header("cookie", &dana_cookie)
        .header("origin", "https://evil.example")
        .json(&json!({"q": "*"}))
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a cross-origin POST with her cookie"
    );

    // The auditor exports right after signing in; once the sign-in is
    // older than `reauth_within`, only after re-authenticating.
    let r = sign_in(&c, &url, "olu", PASS, &code(&olu, 0));
    assert_eq!(r.status().as_u16(), 200);
    let olu_cookie = format!("sealtrail_session={}", session_cookie(&r));
    let r = c
        .post(format!("{url}/v1/export"))
        .header("cookie", &olu_cookie)
        .json(&export)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    let signed_in = Instant::now();
    server.wait_for("the sign-in to age", || {
        (signed_in.elapsed() > Duration::from_millis(2100)).then_some(())
    });
    let r = c
        .post(format!("{url}/v1/export"))
        .header("cookie", &olu_cookie)
        .json(&export)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().unwrap().contains("re-authenticate"));
    let r = c
        .post(format!("{url}/v1/session/reauth"))
        .header("cookie", &olu_cookie)
        .json(&json!({"password": PASS, "totp": code(&olu, 30)}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    let r = c
        .post(format!("{url}/v1/export"))
        .header("cookie", &olu_cookie)
        .json(&export)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(server.terminate(), Some(0));

    let entries = stored_entries(&data);
    assert!(entries.iter().any(|e| e["event"]["action"] == "siem_search"
        && e["event"]["actor"]["user"] == "user:dana"
        && e["via"]["principal"] == "user:dana"));
    let exports: Vec<_> = entries
        .iter()
        .filter(|e| e["event"]["action"] == "siem_export")
        .collect();
    assert_eq!(exports.len(), 2);
    assert!(
        exports
            .iter()
            .all(|e| e["event"]["actor"]["user"] == "user:olu")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["event"]["action"] == "access_denied"
                && e["event"]["attrs"]["reason"] == "role"
                && e["event"]["actor"]["user"] == "user:dana")
    );
}

/// `sealtrail user link`: the path of a one-time sign-in link.
fn link_for(data: &Path, name: &str) -> String {
    let out = user_cmd(data, &["link", name], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn one_time_sign_in_links_work_once_only_when_enabled_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    add_user(&data, "alice", "analyst");
    let no_redirects = || {
        Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };

    // Off by default: the route does not exist.
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let path = link_for(&data, "alice");
    let r = no_redirects()
        .get(format!("{}{path}", server.http))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(server.terminate(), Some(0));

    let server = Server::start(
        dir.path(),
        &serve_config(&data, &k, "[console]\nsign_in_links = true\n"),
    );
    let url = server.http.clone();
    let path = link_for(&data, "alice");
    let c = no_redirects();
    let r = c.get(format!("{url}{path}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = session_cookie(&r);
    let who: Value = get_session(&c, &url, &cookie).json().unwrap();
    assert_eq!(who["user"], "alice");
    assert_eq!(who["roles"], json!(["analyst"]));
    // A second use is refused like any failed sign-in.
    refused(c.get(format!("{url}{path}")).send().unwrap());
    // A made-up link too.
    refused(
        c.get(format!(
            "{url}/v1/session/link/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ))
        .send()
        .unwrap(),
    );
    // Only the hash of a link is stored.
    let token = path.rsplit('/').next().unwrap();
    let stored = std::fs::read_to_string(data.join("auth/sign-in-links.json")).unwrap();
    assert!(!stored.contains(token));

    // Both outcomes are `auth/login` records naming the method.
    let logins = server.wait_for("the link sign-ins in the ledger", || {
        let logins: Vec<Value> = stored_entries(&data)
            .into_iter()
            .filter(|e| {
                e["event"]["action"] == "login" && e["event"]["attrs"]["method"] == "sign_in_link"
            })
            .collect();
        (logins.len() >= 3).then_some(logins)
    });
    assert_eq!(logins[0]["event"]["outcome"], "success");
    assert_eq!(logins[0]["event"]["actor"]["user"], "user:alice");
    assert_eq!(logins[1]["event"]["outcome"], "failure");
}
