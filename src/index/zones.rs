//! Zone maps: the earliest and latest event time of each run of
//! [`ZONE_DOCS`] documents of an index segment, so a time window only
//! visits the documents that can hold its events (PostgreSQL's BRIN idea).
//!
//! Documents enter the index in ledger order, which is arrival order, so
//! event time rises with document id inside each run; merges keep runs of
//! consecutive documents together. A zone wholly inside the window needs no
//! per-document time check, a zone wholly outside is skipped (postings are
//! sought past it), and only zones at the window's edges (or holding late
//! events) are checked document by document. Segments are immutable, so a
//! segment's map is computed once, on first use, and cached by segment id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::{DateTime, DocId, SegmentReader};

/// Documents per zone.
pub const ZONE_DOCS: u32 = 4096;
/// Zone maps kept before the cache is emptied (merged-away segments leave
/// entries behind; a map is a few bytes per 4,096 documents).
const CACHED_SEGMENTS: usize = 4096;

/// An event-time window `[from_ms, to_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl TimeWindow {
    pub fn contains(&self, ms: i64) -> bool {
        self.from_ms <= ms && ms < self.to_ms
    }
}

/// Documents `[start, end)` of a segment to visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocRange {
    pub start: DocId,
    pub end: DocId,
    /// Whether each document's time must be checked against the window.
    pub check_time: bool,
}

/// Per zone: min and max event time, and whether every document has one.
#[derive(Debug)]
pub struct ZoneMap {
    min: Vec<i64>,
    max: Vec<i64>,
    complete: Vec<bool>,
}

impl ZoneMap {
    pub fn build(time: &Column<DateTime>, max_doc: DocId) -> ZoneMap {
        let zones = max_doc.div_ceil(ZONE_DOCS) as usize;
        let mut map = ZoneMap {
            min: vec![i64::MAX; zones],
            max: vec![i64::MIN; zones],
            complete: vec![true; zones],
        };
        for doc in 0..max_doc {
            let z = (doc / ZONE_DOCS) as usize;
            match time.first(doc) {
                Some(t) => {
                    let ms = t.into_timestamp_millis();
                    map.min[z] = map.min[z].min(ms);
                    map.max[z] = map.max[z].max(ms);
                }
                None => map.complete[z] = false,
            }
        }
        map
    }

    /// The document ranges that can hold events of `window`, adjacent
    /// zones of the same kind merged, in document order.
    pub fn ranges(&self, window: TimeWindow, max_doc: DocId) -> Vec<DocRange> {
        let mut out: Vec<DocRange> = Vec::new();
        for z in 0..self.min.len() {
            let (min, max) = (self.min[z], self.max[z]);
            if min > max || max < window.from_ms || min >= window.to_ms {
                continue;
            }
            let check_time = !(self.complete[z] && window.contains(min) && window.contains(max));
            // Zone numbers fit in u32: there are at most max_doc / ZONE_DOCS.
            let start = z as u32 * ZONE_DOCS;
            let end = (start + ZONE_DOCS).min(max_doc);
            match out.last_mut() {
                Some(last) if last.end == start && last.check_time == check_time => {
                    last.end = end;
                }
                _ => out.push(DocRange {
                    start,
                    end,
                    check_time,
                }),
            }
        }
        out
    }
}

/// Zone maps of the segments searched so far.
#[derive(Default)]
pub struct ZoneMaps {
    cache: Mutex<HashMap<SegmentId, Arc<ZoneMap>>>,
}

impl ZoneMaps {
    /// The zone map of `segment`, whose `time` column is `time`.
    pub fn get(&self, segment: &SegmentReader, time: &Column<DateTime>) -> Arc<ZoneMap> {
        let id = segment.segment_id();
        // A panic while holding the lock leaves whole entries behind.
        if let Some(map) = self.lock().get(&id) {
            return map.clone();
        }
        // Built outside the lock: other searches go on meanwhile.
        let map = Arc::new(ZoneMap::build(time, segment.max_doc()));
        let mut cache = self.lock();
        if cache.len() >= CACHED_SEGMENTS {
            cache.clear();
        }
        cache.insert(id, map.clone());
        map
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<ZoneMap>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(zones: &[(i64, i64, bool)]) -> ZoneMap {
        ZoneMap {
            min: zones.iter().map(|z| z.0).collect(),
            max: zones.iter().map(|z| z.1).collect(),
            complete: zones.iter().map(|z| z.2).collect(),
        }
    }

    #[test]
    fn zones_outside_are_skipped_inside_unchecked_and_edges_checked() {
        let m = map(&[
            (0, 99, true),               // before
            (100, 199, true),            // edge: starts before the window
            (200, 299, true),            // inside
            (300, 399, true),            // inside
            (400, 499, false),           // inside but a document has no time
            (450, 700, true),            // edge: ends after
            (800, 900, true),            // after
            (i64::MAX, i64::MIN, false), // no times at all
        ]);
        let w = TimeWindow {
            from_ms: 150,
            to_ms: 600,
        };
        let n = 8 * ZONE_DOCS - 10;
        assert_eq!(
            m.ranges(w, n),
            vec![
                DocRange {
                    start: ZONE_DOCS,
                    end: 2 * ZONE_DOCS,
                    check_time: true
                },
                DocRange {
                    start: 2 * ZONE_DOCS,
                    end: 4 * ZONE_DOCS,
                    check_time: false
                },
                DocRange {
                    start: 4 * ZONE_DOCS,
                    end: 6 * ZONE_DOCS,
                    check_time: true
                },
            ]
        );
        // The window's end is exclusive, its start inclusive.
        let at = |from_ms, to_ms| m.ranges(TimeWindow { from_ms, to_ms }, n);
        assert!(at(900, 1000).iter().any(|r| r.start == 6 * ZONE_DOCS));
        assert!(at(901, 1000).is_empty());
        assert!(at(0, 0).is_empty());
        assert!(!at(200, 300)[0].check_time);
        assert!(at(200, 299)[0].check_time);
    }
}
