//! `POST /v1/events`: JSON object, JSON array or NDJSON, optionally gzip or
//! zstd compressed. Answers 200 only once every stored entry is durable; 400
//! lists every rejected line (valid lines are kept); 413 past the body, the
//! decompressed-size or the line limit; 503 with `Retry-After` when the
//! pipeline is full. Every rejected input is recorded as
//! `system/ingest_rejected`.

use crate::auth::Principal;
use crate::event::{Event, Via};
use crate::pipeline::{IngestBatch, Item, ItemOutcome, Pipeline, PipelineError, Receipt};
use crate::sources::fhir::{FhirIssue, FhirItem, map_body, operation_outcome};
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

/// Size limits of the HTTP ingest endpoints.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Largest request body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after decompression (guards against decompression bombs).
    pub max_decoded_bytes: usize,
    /// Largest single NDJSON line or array element.
    pub max_line_bytes: usize,
    /// Most events in one request.
    pub max_events: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 16 << 20,
            max_decoded_bytes: 64 << 20,
            max_line_bytes: 1 << 20,
            max_events: 100_000,
        }
    }
}

#[derive(Clone)]
pub struct HttpSource {
    pub pipeline: Pipeline,
    pub limits: Arc<HttpLimits>,
}

/// A request that cannot be taken at all (as opposed to individual bad lines).
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub error: String,
    /// Head of the offending input, recorded with the rejection.
    pub raw: Vec<u8>,
}

impl Refusal {
    fn new(status: StatusCode, error: impl Into<String>, raw: &[u8]) -> Self {
        Refusal {
            status,
            error: error.into(),
            raw: raw[..raw.len().min(4096)].to_vec(),
        }
    }
}

/// Decompresses `body` per `Content-Encoding`, never producing more than `max` bytes.
pub fn decode_body(encoding: Option<&str>, body: &[u8], max: usize) -> Result<Vec<u8>, Refusal> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
    let mut out = Vec::new();
    // Both decoders read through `take(max + 1)`; the length is checked below.
    #[allow(clippy::disallowed_methods)]
    let result = match encoding.as_deref() {
        None | Some("") | Some("identity") => return Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => flate2::read::MultiGzDecoder::new(body)
            .take(max as u64 + 1)
            .read_to_end(&mut out),
        Some("zstd") => match zstd::stream::read::Decoder::new(body) {
            Ok(d) => d.take(max as u64 + 1).read_to_end(&mut out),
            Err(e) => Err(e),
        },
        Some(other) => {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-encoding {other:?} is not supported (use gzip or zstd)"),
                b"",
            ));
        }
    };
    match result {
        Ok(_) if out.len() > max => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body decompresses to more than {max} bytes"),
            b"",
        )),
        Ok(_) => Ok(out),
        Err(e) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "body is not valid {}: {e}",
                encoding.as_deref().unwrap_or("data")
            ),
            body,
        )),
    }
}

/// The media type of a `Content-Type` value: before any `;`, trimmed, lowercase.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `POST /v1/events` takes this `Content-Type`: JSON, NDJSON or a
/// `+json` type. A browser sends a cross-site form without a CORS preflight
/// only as `text/plain`, `application/x-www-form-urlencoded` or
/// `multipart/form-data`; refusing those (and a missing type) closes that path.
pub fn events_content_type_ok(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mt = media_type(ct);
    matches!(
        mt.as_str(),
        "application/json"
            | "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json-seq"
    ) || (mt.starts_with("application/") && mt.ends_with("+json"))
}

/// Whether `POST /fhir/AuditEvent` takes this `Content-Type`
/// (`application/json+fhir` is the pre-R4 name of the same type).
pub fn fhir_content_type_ok(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        matches!(
            media_type(ct).as_str(),
            "application/fhir+json" | "application/json" | "application/json+fhir"
        )
    })
}

/// The 415 refusal of a body sent with another (or no) content type.
fn unsupported_type(content_type: Option<&str>, accepted: &str, body: &[u8]) -> Refusal {
    let sent = match content_type {
        Some(ct) => format!("content-type {:?} is not accepted", media_type(ct)),
        None => "a content-type header is required".to_owned(),
    };
    Refusal::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("{sent}; send {accepted}"),
        body,
    )
}

/// One parsed unit with its 1-based line (or array position).
#[derive(Debug)]
pub struct Parsed {
    pub line: u64,
    pub item: Item,
    pub error: Option<String>,
}

fn parse_one(line: u64, raw: &[u8]) -> Parsed {
    match Event::from_json(raw).and_then(|e| e.validate_from_client().map(|_| e)) {
        Ok(event) => Parsed {
            line,
            item: Item::Event(event),
            error: None,
        },
        Err(e) => {
            let reason = format!("line {line}: {e}");
            Parsed {
                line,
                item: Item::Rejected {
                    raw: raw.to_vec(),
                    reason: reason.clone(),
                },
                error: Some(e.to_string()),
            }
        }
    }
}

/// Splits a decoded body into events: a JSON array, one JSON object, or NDJSON.
pub fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
    limits: &HttpLimits,
) -> Result<Vec<Parsed>, Refusal> {
    let ndjson = content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("ndjson") || ct.contains("jsonl") || ct.contains("json-seq")
    });
    let trimmed = body.trim_ascii_start();
    if !ndjson && trimmed.first() == Some(&b'[') {
        let values: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(trimmed).map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("body is not a valid JSON array: {e}"),
                    body,
                )
            })?;
        if values.len() > limits.max_events {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} events in one request; the limit is {}",
                    values.len(),
                    limits.max_events
                ),
                b"",
            ));
        }
        return values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let raw = v.get().as_bytes();
                if raw.len() > limits.max_line_bytes {
                    return Err(Refusal::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "element {} is longer than {} bytes",
                            i + 1,
                            limits.max_line_bytes
                        ),
                        raw,
                    ));
                }
                Ok(parse_one(i as u64 + 1, raw))
            })
            .collect();
    }
    let mut out = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() > limits.max_line_bytes {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "line {} is longer than {} bytes",
                    i + 1,
                    limits.max_line_bytes
                ),
                line,
            ));
        }
        if out.len() >= limits.max_events {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more than {} events in one request", limits.max_events),
                b"",
            ));
        }
        out.push(parse_one(i as u64 + 1, line));
    }
    Ok(out)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn busy() -> Response {
    let mut r = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "ingest queue is full; retry after the indicated delay"}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

pub fn pipeline_error(e: PipelineError) -> Response {
    match e {
        PipelineError::Busy => busy(),
        PipelineError::Closed => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the service is shutting down"}),
        ),
        // The writer retries failed writes: both are temporary, so 503 with
        // Retry-After tells the client to send the same request again.
        PipelineError::Unavailable(_) | PipelineError::Ledger(_) => {
            let mut r = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                // Details go to the log and /readyz, not to the client.
                json!({"error": "events could not be stored now; nothing from this request was acknowledged; retry after the indicated delay"}),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

/// Records a refused request as one `ingest_rejected` entry (best effort when
/// the pipeline is full) and answers with the refusal.
async fn refuse(src: &HttpSource, via: Via, r: Refusal) -> Response {
    let batch = IngestBatch {
        via,
        items: vec![Item::Rejected {
            raw: r.raw,
            reason: r.error.clone(),
        }],
    };
    if let Err(e) = src.pipeline.try_submit(batch).await {
        tracing::warn!(error = %e, "could not record a refused request");
    }
    json_response(r.status, json!({"error": r.error}))
}

/// Reads the body up to the limit; `None` when it is larger.
async fn read_body(body: Body, limit: usize) -> Result<Option<Vec<u8>>, axum::Error> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(Some(b.to_vec())),
        Err(e) => {
            // to_bytes reports the limit through a boxed LengthLimitError.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Ok(None);
                }
                source = s.source();
            }
            Err(e)
        }
    }
}

pub async fn post_events(
    State(src): State<HttpSource>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let via = Via {
        kind: "http".into(),
        peer: Some(peer.ip().to_string()),
        principal: principal.map(|Extension(p)| p.qualified_name()),
    };
    let header_str = |h| {
        headers
            .get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = match read_body(body, src.limits.max_body_bytes).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            let r = Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {} bytes", src.limits.max_body_bytes),
                b"",
            );
            return refuse(&src, via, r).await;
        }
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("reading the body: {e}")}),
            );
        }
    };
    src.pipeline
        .metrics()
        .received_bytes
        .with_label_values(&["http"])
        .inc_by(body.len() as u64);
    let encoding = header_str(header::CONTENT_ENCODING);
    let content_type = header_str(header::CONTENT_TYPE);
    if !events_content_type_ok(content_type.as_deref()) {
        let r = unsupported_type(
            content_type.as_deref(),
            "application/json or application/x-ndjson",
            &body,
        );
        return refuse(&src, via, r).await;
    }
    let limits = src.limits.clone();
    // Decompressing and parsing a large body is CPU work: off the async workers.
    let parsed = tokio::task::spawn_blocking(move || {
        let decoded = decode_body(encoding.as_deref(), &body, limits.max_decoded_bytes)?;
        parse_body(content_type.as_deref(), &decoded, &limits)
    })
    .await;
    let parsed = match parsed {
        Ok(Ok(p)) => p,
        Ok(Err(r)) => return refuse(&src, via, r).await,
        Err(e) => {
            tracing::error!(error = %e, "parse task failed");
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "internal error"}),
            );
        }
    };
    let mut rejected = Vec::new();
    let mut items = Vec::with_capacity(parsed.len());
    for p in parsed {
        if let Some(error) = p.error {
            rejected.push(json!({"line": p.line, "error": error}));
        }
        items.push(p.item);
    }
    if items.is_empty() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"accepted": 0, "rejected": [], "error": "no events in the body"}),
        );
    }
    let receipt = match src.pipeline.try_submit(IngestBatch { via, items }).await {
        Ok(r) => r,
        Err(e) => return pipeline_error(e),
    };
    respond(&receipt, rejected)
}

fn fhir_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    r
}

fn fhir_issue_text(issue: &FhirIssue) -> String {
    match &issue.expression {
        Some(at) => format!("{at}: {}", issue.diagnostics),
        None => issue.diagnostics.clone(),
    }
}

/// `POST /fhir/AuditEvent`: one FHIR R4 AuditEvent or a batch/collection
/// Bundle of them. 201 when every AuditEvent was stored; otherwise 400 with an
/// OperationOutcome naming each problem (the valid ones are still stored, the
/// invalid ones recorded as `ingest_rejected`).
pub async fn post_fhir(
    State(src): State<HttpSource>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let via = Via {
        kind: "fhir".into(),
        peer: Some(peer.ip().to_string()),
        principal: principal.map(|Extension(p)| p.qualified_name()),
    };
    let outcome = |status, code: &'static str, text: String| {
        fhir_response(
            status,
            operation_outcome(&[FhirIssue {
                severity: "error",
                code,
                diagnostics: text,
                expression: None,
            }]),
        )
    };
    let body = match read_body(body, src.limits.max_body_bytes).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            let error = format!("body is larger than {} bytes", src.limits.max_body_bytes);
            let _ = refuse(
                &src,
                via,
                Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, error.clone(), b""),
            )
            .await;
            return outcome(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", error);
        }
        Err(e) => {
            return outcome(
                StatusCode::BAD_REQUEST,
                "structure",
                format!("reading the body: {e}"),
            );
        }
    };
    src.pipeline
        .metrics()
        .received_bytes
        .with_label_values(&["fhir"])
        .inc_by(body.len() as u64);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !fhir_content_type_ok(content_type) {
        let r = unsupported_type(content_type, "application/fhir+json", &body);
        let (status, error) = (r.status, r.error.clone());
        let _ = refuse(&src, via, r).await;
        return outcome(status, "not-supported", error);
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limits = src.limits.clone();
    let mapped = tokio::task::spawn_blocking(move || {
        let decoded = decode_body(encoding.as_deref(), &body, limits.max_decoded_bytes)?;
        Ok::<_, Refusal>((map_body(&decoded), decoded))
    })
    .await;
    let (mapped, decoded) = match mapped {
        Ok(Ok(m)) => m,
        Ok(Err(r)) => {
            let (status, error) = (r.status, r.error.clone());
            let _ = refuse(&src, via, r).await;
            return outcome(status, "structure", error);
        }
        Err(e) => {
            tracing::error!(error = %e, "fhir task failed");
            return outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "internal error".into(),
            );
        }
    };
    let items = match mapped {
        Ok(items) if items.is_empty() => {
            return outcome(
                StatusCode::BAD_REQUEST,
                "required",
                "the bundle holds no AuditEvent".into(),
            );
        }
        Ok(items) => items,
        Err(issue) => {
            let r = Refusal::new(StatusCode::BAD_REQUEST, fhir_issue_text(&issue), &decoded);
            let _ = refuse(&src, via, r).await;
            return fhir_response(StatusCode::BAD_REQUEST, operation_outcome(&[issue]));
        }
    };
    let mut issues = Vec::new();
    let items: Vec<Item> = items
        .into_iter()
        .map(|item| match item {
            FhirItem::Event(e) => Item::Event(e),
            FhirItem::Invalid { raw, issue } => {
                let reason = fhir_issue_text(&issue);
                issues.push(issue);
                Item::Rejected { raw, reason }
            }
        })
        .collect();
    let receipt = match src.pipeline.try_submit(IngestBatch { via, items }).await {
        Ok(r) => r,
        Err(e) => return pipeline_error(e),
    };
    let summary = format!(
        "stored {} AuditEvent(s){}",
        receipt.accepted(),
        receipt
            .first_index()
            .map(|i| format!(", first ledger index {i}"))
            .unwrap_or_default()
    );
    let info = FhirIssue {
        severity: "information",
        code: "informational",
        diagnostics: summary,
        expression: None,
    };
    if issues.is_empty() {
        fhir_response(StatusCode::CREATED, operation_outcome(&[info]))
    } else {
        issues.push(info);
        fhir_response(StatusCode::BAD_REQUEST, operation_outcome(&issues))
    }
}

fn respond(receipt: &Receipt, rejected: Vec<serde_json::Value>) -> Response {
    let mut body = json!({
        "accepted": receipt.accepted(),
        "duplicates": receipt.duplicates(),
    });
    if let Some(first) = receipt.outcomes.iter().find_map(|o| {
        if let ItemOutcome::Stored(i) = o {
            Some(*i)
        } else {
            None
        }
    }) {
        body["first_index"] = json!(first);
    }
    if rejected.is_empty() {
        json_response(StatusCode::OK, body)
    } else {
        body["rejected"] = json!(rejected);
        json_response(StatusCode::BAD_REQUEST, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_zstd_decode_within_limits_and_bombs_are_refused() {
        let plain = b"{\"a\":1}\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode_body(Some("gzip"), &gz, 1 << 20).unwrap(), plain);
        let zs = zstd::encode_all(&plain[..], 3).unwrap();
        assert_eq!(decode_body(Some("zstd"), &zs, 1 << 20).unwrap(), plain);
        let bomb = zstd::encode_all(&vec![0u8; 10 << 20][..], 19).unwrap();
        assert!(bomb.len() < 10_000);
        let r = decode_body(Some("zstd"), &bomb, 1 << 20).unwrap_err();
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        let r = decode_body(Some("gzip"), &gz[..gz.len() / 2], 1 << 20).unwrap_err();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = decode_body(Some("br"), &gz, 1 << 20).unwrap_err();
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn only_json_content_types_are_taken() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/x-ndjson",
            "application/ndjson",
            "application/fhir+json",
            "application/vnd.example+json ; q=1",
        ] {
            assert!(events_content_type_ok(Some(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/xml",
            "",
        ] {
            assert!(!events_content_type_ok(Some(bad)), "{bad}");
        }
        assert!(!events_content_type_ok(None));
        assert!(fhir_content_type_ok(Some(
            "application/fhir+json; fhirVersion=4.0"
        )));
        assert!(fhir_content_type_ok(Some("application/json")));
        assert!(!fhir_content_type_ok(Some("text/plain")));
        assert!(!fhir_content_type_ok(Some("application/x-ndjson")));
        assert!(!fhir_content_type_ok(None));
    }

    const GOOD: &str =
        r#"{"time":"2026-11-27T14:03:11Z","category":"auth","action":"login","outcome":"success"}"#;

    #[test]
    fn bodies_split_into_numbered_items() {
        let limits = HttpLimits::default();
        let body = format!("{GOOD}\n\n{{not json\n{GOOD}\r\n");
        let p = parse_body(Some("application/x-ndjson"), body.as_bytes(), &limits).unwrap();
        assert_eq!(
            p.iter()
                .map(|p| (p.line, p.error.is_some()))
                .collect::<Vec<_>>(),
            vec![(1, false), (3, true), (4, false)]
        );
        let arr = format!("[{GOOD}, {{\"time\":\"x\"}}]");
        let p = parse_body(Some("application/json"), arr.as_bytes(), &limits).unwrap();
        assert_eq!(
            p.iter()
                .map(|p| (p.line, p.error.is_some()))
                .collect::<Vec<_>>(),
            vec![(1, false), (2, true)]
        );
        let p = parse_body(None, GOOD.as_bytes(), &limits).unwrap();
        assert_eq!(p.len(), 1);
        let small = HttpLimits {
            max_line_bytes: 10,
            ..HttpLimits::default()
        };
        assert_eq!(
            parse_body(None, GOOD.as_bytes(), &small)
                .unwrap_err()
                .status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
