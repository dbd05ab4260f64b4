//! `GET /v1/catch-up`: how far the search index and detection are behind
//! the ledger, for the console's "index catching up: N of M events" bar and
//! the search view's notice. After a restart the indexer reads what it has
//! not yet indexed (after `sealtrail reindex`, or with a lost index, from
//! the first entry), and detection replays its window of recent entries;
//! searches meanwhile miss the newest events, and alerts come late. The
//! numbers are the ones `/metrics` exports (`appended_events`,
//! `indexed_events`, `detection_position`), read without touching the disk,
//! so polling it is cheap. It returns counts only, no event data, and is
//! not recorded.

use crate::pipeline::Pipeline;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// Below this many events behind, a consumer is keeping up (the index
/// commits about once a second, so a live stream always leaves it a few
/// events behind).
pub const CATCHING_UP_FROM: u64 = 1000;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Lag {
    /// Entries this part has processed.
    pub events: u64,
    /// Entries in the ledger.
    pub of: u64,
    /// `of - events`.
    pub behind: u64,
    /// Behind by [`CATCHING_UP_FROM`] or more.
    pub catching_up: bool,
}

impl Lag {
    pub fn new(events: u64, of: u64) -> Lag {
        let behind = of.saturating_sub(events);
        Lag {
            events: events.min(of),
            of,
            behind,
            catching_up: behind >= CATCHING_UP_FROM,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CatchUp {
    /// Entries in the ledger (appended, durable).
    pub ledger_events: u64,
    pub index: Lag,
    /// The rules consumer (its start-up replay starts inside the ledger, at
    /// its replay window, so `events` starts there too).
    pub detection: Lag,
}

pub fn routes(pipeline: Pipeline) -> Router {
    Router::new()
        .route("/v1/catch-up", get(get_catch_up))
        .with_state(pipeline)
}

async fn get_catch_up(State(pipeline): State<Pipeline>) -> Response {
    let m = pipeline.metrics();
    let indexed = u64::try_from(m.indexed_events.get()).unwrap_or(0);
    let ledger = m
        .writer
        .get()
        .map_or(indexed, |w| w.next_index.load(Ordering::Acquire));
    let detected = u64::try_from(m.detect.position.get()).unwrap_or(0);
    Json(CatchUp {
        ledger_events: ledger,
        index: Lag::new(indexed, ledger),
        detection: Lag::new(detected, ledger),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_counted_and_a_small_one_is_not_catching_up() {
        assert_eq!(
            Lag::new(10, 5000),
            Lag {
                events: 10,
                of: 5000,
                behind: 4990,
                catching_up: true
            }
        );
        let live = Lag::new(4990, 5000);
        assert_eq!(live.behind, 10);
        assert!(!live.catching_up);
        // Never negative: an index ahead of a just-read writer status.
        assert_eq!(Lag::new(7, 5).behind, 0);
        assert_eq!(Lag::new(7, 5).events, 5);
    }
}
