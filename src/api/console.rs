//! The analyst console: a static shell (HTML, CSS, ES modules) embedded in
//! the binary and served at `/` and `/console/<file>`. Everything it shows
//! comes from the role-checked `/v1` API with the session cookie; the shell
//! itself holds no data, so it is public (`auth::gate::ROUTES`).
//!
//! Assets are revalidated on every use (`Cache-Control: no-cache`) against an
//! ETag that is a hash of their bytes, so a new binary is picked up at once
//! and an unchanged asset costs a 304.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::{Arc, LazyLock};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/api.js"),
    },
    Asset {
        name: "verify.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/verify.js"),
    },
    Asset {
        name: "integrity.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/integrity.js"),
    },
    Asset {
        name: "print.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/print.css"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/dom.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/charts.js"),
    },
    Asset {
        name: "format.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/format.js"),
    },
    Asset {
        name: "complete.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/complete.js"),
    },
    Asset {
        name: "dashboards.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/dashboards.js"),
    },
    Asset {
        name: "exports.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/exports.js"),
    },
    Asset {
        name: "catchup.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/catchup.js"),
    },
    Asset {
        name: "dashboards.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/dashboards.css"),
    },
    Asset {
        name: "silences.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/silences.js"),
    },
    Asset {
        name: "silences.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/silences.css"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../console/favicon.svg"),
    },
];

/// `"<first 16 bytes of SHA-256, hex>"` of each asset, in `ASSETS` order.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            format!("\"{}\"", hex::encode(&digest[..16]))
        })
        .collect()
});

/// The console's routes; `vkey` is the log's verifier key line (C2SP vkey),
/// handed to the console so it can check checkpoint signatures itself.
pub fn routes(vkey: Option<String>) -> Router {
    let router = Router::new()
        .route("/", get(index))
        .route("/console/{file}", get(asset));
    match vkey {
        Some(v) => router.merge(
            Router::new()
                .route("/v1/log/vkey", get(log_vkey))
                .with_state(Arc::new(v)),
        ),
        None => router,
    }
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let (asset, etag) = (&ASSETS[i], &ETAGS[i]);
    let cache = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::ETAG,
            HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

/// `GET /v1/log/vkey`: the log's verifier key, `{"vkey": "<name>+<id>+<key>"}`.
async fn log_vkey(State(vkey): State<Arc<String>>) -> Response {
    axum::Json(serde_json::json!({ "vkey": vkey.as_str() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn assets_have_types_etags_and_revalidate() {
        let app = routes(None);
        let r = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = r.headers()[header::ETAG].clone();
        let r = app
            .clone()
            .oneshot(Request::get("/console/app.js").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let r = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header(header::IF_NONE_MATCH, etag)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = app
            .oneshot(
                Request::get("/console/../Cargo.toml")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_shell_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains(" style="), "inline style attribute");
        assert!(!html.contains("<style"), "inline style element");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "external resource"
        );
    }
}
