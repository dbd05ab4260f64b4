//! `sealtrail search`, `sealtrail report patient-access` and `sealtrail
//! reindex`: analyst commands against a running service (`--url`) or a data
//! directory (`--data`).

use crate::event::Timestamp;
use crate::index::{Indexer, SearchIndex, SearchRequest, index_dir, ledger_end, reindex_with};
use crate::report::patient_access;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

/// Parses `30m`, `24h`, `7d`, `2w` into a start time before now.
pub fn since(spec: &str) -> Result<Timestamp> {
    let spec = spec.trim();
    let (n, unit) = spec.split_at(spec.len().saturating_sub(1));
    let n: i64 = n
        .parse()
        .with_context(|| format!("--since {spec:?}: expected e.g. 30m, 24h, 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 604_800,
        _ => bail!("--since {spec:?}: unit must be s, m, h, d or w"),
    };
    Ok(Timestamp::from_unix_ms(
        Timestamp::now().unix_ms() - secs * 1000,
    )?)
}

/// Brings the index up to date when no service holds it, then opens it for
/// reading. With a service running, reads what it has committed.
fn local_index(data: &Path) -> Result<SearchIndex> {
    let dir = index_dir(data);
    match Indexer::open(&dir, data) {
        Ok(mut indexer) => {
            let end = ledger_end(data).context("reading the ledger")?;
            indexer.catch_up(end).context("indexing")?;
            indexer.commit().context("committing the index")?;
            let index = indexer.index().clone();
            drop(indexer);
            Ok(SearchIndex::new(index, data)?)
        }
        // Another process (the service) owns the index writer: read its commits.
        Err(_) if dir.exists() => Ok(SearchIndex::open(&dir, data)?),
        Err(e) => Err(e).context("opening the search index"),
    }
}

fn http_get(url: &str, path_and_query: &str) -> Result<(u16, String)> {
    let full = format!("{}{}", url.trim_end_matches('/'), path_and_query);
    let mut req = ureq::get(&full);
    if let Some(token) = crate::auth::token_from_env() {
        req = req.header("authorization", &format!("Bearer {token}"));
    }
    let mut resp = req
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("requesting {full}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .context("reading the response")?;
    Ok((status, body))
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct SearchCmd<'a> {
    pub url: Option<&'a str>,
    pub data: Option<&'a Path>,
    pub query: &'a str,
    pub since: Option<&'a str>,
    pub limit: usize,
    pub json: bool,
}

pub fn search(cmd: SearchCmd<'_>) -> Result<ExitCode> {
    let from = cmd.since.map(since).transpose()?;
    let response: Value = match (cmd.url, cmd.data) {
        (Some(url), _) => {
            let mut q = format!("/v1/search?q={}&limit={}", encode(cmd.query), cmd.limit);
            if let Some(f) = &from {
                q.push_str(&format!("&from={}", encode(&f.to_string())));
            }
            let (status, body) = http_get(url, &q)?;
            if status != 200 {
                bail!("search failed ({status}): {body}");
            }
            serde_json::from_str(&body).context("the server's answer is not JSON")?
        }
        (None, Some(data)) => {
            let index = local_index(data)?;
            let resp = index.search(&SearchRequest {
                q: cmd.query.to_owned(),
                from,
                limit: cmd.limit,
                ..SearchRequest::default()
            });
            match resp {
                Ok(r) => serde_json::to_value(r)?,
                Err(e) if e.is_client_error() => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(crate::cli::EXIT_ERROR));
                }
                Err(e) => return Err(e.into()),
            }
        }
        (None, None) => bail!("give --url URL (a running service) or --data DIR"),
    };
    if cmd.json {
        println!("{response}");
        return Ok(ExitCode::SUCCESS);
    }
    let total = response["total"].as_u64().unwrap_or(0);
    let hits = response["hits"].as_array().cloned().unwrap_or_default();
    println!(
        "{total} matching event(s), newest first; showing {}",
        hits.len()
    );
    for h in &hits {
        let e = &h["event"];
        let s = |v: &Value| super::term::clean(v.as_str().unwrap_or("-")).into_owned();
        println!(
            "#{:<10} {}  {}/{} {}  user={} patient={} ip={}  {}",
            h["index"],
            s(&e["time"]),
            s(&e["category"]),
            s(&e["action"]),
            s(&e["outcome"]),
            s(&e["actor"]["user"]),
            s(&e["patient"]["id"]),
            s(&e["actor"]["ip"]),
            s(&e["message"]),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub struct ReportCmd<'a> {
    pub url: Option<&'a str>,
    pub data: Option<&'a Path>,
    pub patient: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub format: &'a str,
}

pub fn patient_access_report(cmd: ReportCmd<'_>) -> Result<ExitCode> {
    if !matches!(cmd.format, "json" | "csv" | "html") {
        bail!("--format must be json, csv or html");
    }
    let parse = |v: Option<&str>| v.map(Timestamp::parse).transpose();
    let (from, to) = (parse(cmd.from)?, parse(cmd.to)?);
    let text = match (cmd.url, cmd.data) {
        (Some(url), _) => {
            let mut q = format!(
                "/v1/reports/patient-access?patient={}&format={}",
                encode(cmd.patient),
                cmd.format
            );
            if let Some(f) = cmd.from {
                q.push_str(&format!("&from={}", encode(f)));
            }
            if let Some(t) = cmd.to {
                q.push_str(&format!("&to={}", encode(t)));
            }
            let (status, body) = http_get(url, &q)?;
            if status != 200 {
                bail!("report failed ({status}): {body}");
            }
            body
        }
        (None, Some(data)) => {
            let index = local_index(data)?;
            let req = SearchRequest {
                q: patient_access::query_for(cmd.patient),
                from,
                to,
                ..SearchRequest::default()
            };
            let hits = index.search_all(&req, crate::api::query::MAX_REPORT_EVENTS)?;
            let report = patient_access::build(
                cmd.patient,
                from.as_ref(),
                to.as_ref(),
                crate::index::Hit::decode_all(&hits)?,
            );
            match cmd.format {
                "csv" => patient_access::to_csv(&report)?,
                "html" => patient_access::to_html(&report),
                _ => serde_json::to_string_pretty(&report)? + "\n",
            }
        }
        (None, None) => bail!("give --url URL (a running service) or --data DIR"),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub fn reindex_cmd(data: &Path) -> Result<ExitCode> {
    let bar = super::progress::EventProgress::new(true, "indexing");
    let n = reindex_with(data, &mut |done, total| bar.update(done, total))
        .with_context(|| format!("rebuilding the index of {}", data.display()))?;
    drop(bar);
    println!("indexed {n} events");
    Ok(ExitCode::SUCCESS)
}
