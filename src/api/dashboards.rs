//! `GET /v1/dashboards` and `GET /v1/dashboards/{id}`: the shipped
//! dashboard definitions (`dashboards/*.json`, embedded in the binary) for
//! the console. Each panel carries the `POST /v1/search` body that answers
//! it now ([`Panel::search_body`]), so the console asks exactly what the
//! definition says; the searches themselves are role-checked and recorded
//! like any other.

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::LazyLock;

use crate::dashboards::{Dashboard, Panel, PanelKind};
use crate::event::Timestamp;

/// The shipped definitions, in display order.
const SHIPPED: &[&str] = &[
    include_str!("../../dashboards/hipaa-overview.json"),
    include_str!("../../dashboards/authentication.json"),
    include_str!("../../dashboards/ephi-access.json"),
    include_str!("../../dashboards/admin-changes.json"),
    include_str!("../../dashboards/integrity.json"),
];

/// The shipped dashboards that parse (all of them: `tests/integration/dashboards.rs`
/// checks every file, and a unit test below checks this list).
static DASHBOARDS: LazyLock<Vec<Dashboard>> = LazyLock::new(|| {
    SHIPPED
        .iter()
        .filter_map(|text| Dashboard::parse(text).ok())
        .collect()
});

pub fn routes() -> Router {
    Router::new()
        .route("/v1/dashboards", get(list))
        .route("/v1/dashboards/{id}", get(one))
}

fn kind_name(kind: PanelKind) -> &'static str {
    match kind {
        PanelKind::Timeseries => "timeseries",
        PanelKind::Top => "top",
        PanelKind::Stat => "stat",
        PanelKind::Table => "table",
    }
}

fn panel_json(p: &Panel, d: &Dashboard, now: Timestamp) -> Value {
    let mut v = json!({
        "id": p.id,
        "title": p.title,
        "kind": kind_name(p.kind),
        "query": p.query,
        "range": p.range(d).text(),
        "description": p.description,
        "request": p.search_body(d, now),
    });
    if let Some(f) = &p.field {
        v["field"] = json!(f);
    }
    if p.kind == PanelKind::Timeseries {
        v["interval"] = json!(p.interval(d).text());
    }
    v
}

/// `{"dashboards": [{"id", "title", "description", "range", "panels"}]}`
/// (`panels`: how many).
async fn list() -> Response {
    let items: Vec<Value> = DASHBOARDS
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "title": d.title,
                "description": d.description,
                "range": d.range.text(),
                "panels": d.panels.len(),
            })
        })
        .collect();
    Json(json!({ "dashboards": items })).into_response()
}

/// One dashboard with its panels, each with `request`: the search body
/// for its range ending now.
async fn one(Path(id): Path<String>) -> Response {
    let Some(d) = DASHBOARDS.iter().find(|d| d.id == id) else {
        return super::query::error(StatusCode::NOT_FOUND, "no such dashboard");
    };
    let now = Timestamp::now();
    let panels: Vec<Value> = d.panels.iter().map(|p| panel_json(p, d, now)).collect();
    Json(json!({
        "id": d.id,
        "title": d.title,
        "description": d.description,
        "range": d.range.text(),
        "panels": panels,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_dashboard_is_embedded_and_parses() {
        assert_eq!(DASHBOARDS.len(), SHIPPED.len());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
        let on_disk = crate::dashboards::load_dir(&dir).unwrap();
        let mut a: Vec<_> = on_disk.iter().map(|d| d.id.clone()).collect();
        let mut b: Vec<_> = DASHBOARDS.iter().map(|d| d.id.clone()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "a dashboards/*.json file is missing from SHIPPED");
    }

    #[tokio::test]
    async fn a_dashboard_carries_each_panels_search_request() {
        use axum::body::Body;
        use axum::http::Request;
        use tower::ServiceExt;
        let r = routes()
            .oneshot(
                Request::get("/v1/dashboards/hipaa-overview")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let panels = v["panels"].as_array().unwrap();
        assert!(!panels.is_empty());
        for p in panels {
            assert_eq!(p["request"]["q"], p["query"]);
            assert!(p["request"]["from"].is_string() && p["request"]["to"].is_string());
        }
        let r = routes()
            .oneshot(
                Request::get("/v1/dashboards/nope")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
