//! `GET /v1/alerts`: the alerts the rules raised, newest first, read from the
//! search index (alerts are ledger events, so the list survives restarts
//! and every alert links to its proof by its ledger `index`).

use crate::api::query::{BadRequest, QueryState, audit, error, parse_time, query_error};
use crate::auth::Principal;
use crate::detect::alert::{ALERT_ACTION, Alert, SERVICE_VIA};
use crate::index::SearchRequest;
use axum::Json;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;

/// Most alerts one page may hold.
pub const MAX_ALERTS_PAGE: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// Raised at or after (RFC 3339; the alert event's time).
    from: Option<String>,
    to: Option<String>,
    /// Only this rule's alerts (its id).
    rule: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
}

/// An alert as listed: the DESIGN.md alert object plus its ledger index.
#[derive(Debug, Serialize)]
pub struct ListedAlert {
    #[serde(flatten)]
    pub alert: Alert,
    pub index: u64,
}

/// The search that finds alert events (only the service's own).
pub fn alerts_query(rule: Option<&str>) -> String {
    let mut q = format!("category:system AND action:{ALERT_ACTION} AND via.kind:{SERVICE_VIA}");
    if let Some(r) = rule {
        let quoted = r.replace('\\', "\\\\").replace('"', "\\\"");
        q.push_str(&format!(" AND resource.id:\"{quoted}\""));
    }
    q
}

pub async fn get_alerts(
    State(state): State<QueryState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Query(p): Query<AlertParams>,
) -> Response {
    let (from, to) = match (parse_time("from", &p.from), parse_time("to", &p.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_ALERTS_PAGE {
        return BadRequest(format!("`limit` must be between 1 and {MAX_ALERTS_PAGE}"))
            .into_response();
    }
    if let Err(r) = audit(
        &state.pipeline,
        &peer,
        &principal,
        "siem_search",
        json!({"alerts": true, "rule": p.rule, "from": p.from, "to": p.to, "limit": limit, "cursor": p.cursor}),
        "alerts list".to_owned(),
    )
    .await
    {
        return r;
    }
    let req = SearchRequest {
        q: alerts_query(p.rule.as_deref().filter(|r| !r.is_empty())),
        from,
        to,
        limit,
        cursor: p.cursor,
        aggs: Vec::new(),
    };
    let index = state.index.clone();
    let found = tokio::task::spawn_blocking(move || {
        let resp = index.search(&req)?;
        let mut alerts = Vec::with_capacity(resp.hits.len());
        for hit in &resp.hits {
            // Hits come from the ledger; one that does not decode as an
            // alert (an older shape) is left out rather than failing the page.
            match hit.entry().ok().as_ref().and_then(Alert::from_entry) {
                Some(alert) => alerts.push(ListedAlert {
                    alert,
                    index: hit.index,
                }),
                None => tracing::warn!(index = hit.index, "alert event without an alert object"),
            }
        }
        Ok::<_, crate::index::QueryError>((resp.total, alerts, resp.cursor))
    })
    .await;
    match found {
        Ok(Ok((total, alerts, cursor))) => {
            Json(json!({"total": total, "alerts": alerts, "cursor": cursor})).into_response()
        }
        Ok(Err(e)) => query_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("alerts task failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_filter_is_quoted() {
        assert_eq!(
            alerts_query(Some("a\"b")),
            "category:system AND action:alert AND via.kind:sealtrail AND resource.id:\"a\\\"b\""
        );
    }
}
