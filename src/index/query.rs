//! Search over the index: Lucene-style queries, a time range, newest
//! first, cursor pagination, exact totals, terms counts and date
//! histograms, all under a deadline.
//!
//! Query syntax (tantivy's `QueryParser` over the event's field names):
//! `actor.user:u0042 AND action:export`, `patient.id:MRN-0012345`,
//! `"encounter note"` (phrase in `message`, the default field),
//! `records:[100 TO *]`, `time:[2026-11-01T00:00:00Z TO 2026-12-01T00:00:00Z}`,
//! `NOT outcome:success`, `-reason:treatment`, `action:IN [export print]`,
//! `actor.user:/u00[0-4].*/` (regex), `attrs.change_ticket:*` (field exists),
//! `enriched.patient.vip:true`. An empty query or `*` matches everything.
//!
//! The deadline is checked before each index segment, every
//! [`DEADLINE_CHECK_DOCS`] matching documents inside a segment and every 64
//! hits while loading them. Building a query's matcher for one segment
//! (e.g. expanding a regex over the term dictionary) is not interruptible,
//! so a query can overrun its deadline by that much.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, EnableScoring, Occur, Query, QueryParser, RangeQuery,
    RegexQuery,
};
use tantivy::query_grammar::{self, Delimiter, UserInputAst, UserInputBound, UserInputLeaf};
use tantivy::{
    COLLECT_BLOCK_BUFFER_LEN, DocSet, Index, IndexReader, ReloadPolicy, TantivyError, Term,
};
use thiserror::Error;

use super::hit::Hit;
use super::schema::{Fields, KEYWORD_FIELDS, OBJECT_FIELDS};
use super::zones::{DocRange, TimeWindow, ZoneMaps};
use crate::event::Timestamp;
use crate::ledger::entries::EntryReader;

/// Most hits one page returns.
pub const MAX_LIMIT: usize = 1000;
/// Most buckets one aggregation returns.
pub const MAX_BUCKETS: usize = 1000;
/// Default time a query may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Matching documents between two deadline checks inside a segment.
pub const DEADLINE_CHECK_DOCS: u64 = 1024;
/// Hits read from the ledger between two deadline checks.
const LOAD_CHUNK: usize = 256;
/// Hits from which reading them is split over threads.
const PARALLEL_LOAD_MIN: usize = 1024;
const MAX_LOAD_THREADS: usize = 4;
/// Memory the aggregations of one query may use.
const AGG_MEMORY: u64 = 64 << 20;
/// Most aggregations one request may ask for.
pub const MAX_AGGS: usize = 16;
/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses in a query. The query grammar recurses
/// per level and per `NOT`: a thousand of either overflowed the search
/// thread's stack and killed the process.
pub const MAX_QUERY_NESTING: usize = 32;
/// Most terms and operators in a query (300,000 `OR`ed terms took 2.9 s
/// and 650 MB to plan).
pub const MAX_QUERY_TOKENS: usize = 1024;
/// Most wildcard and regex terms in one query: each walks a term
/// dictionary, which the deadline cannot interrupt.
pub const MAX_QUERY_PATTERNS: usize = 16;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error("syntax error{}: {reason}", position.map(|p| format!(" at position {p}")).unwrap_or_default())]
    Syntax {
        /// Byte offset in the query, when known.
        position: Option<usize>,
        reason: String,
    },
    #[error("unknown field {field:?}; searchable fields: {known}")]
    UnknownField { field: String, known: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("query ran longer than {}ms and was stopped; narrow the query or the time range", limit.as_millis())]
    TooSlow { limit: Duration },
    #[error("search index: {0}")]
    Index(#[from] TantivyError),
    #[error("stored entry {index} is unreadable: {reason}")]
    Stored { index: u64, reason: String },
}

impl QueryError {
    /// True when the request is at fault (HTTP 400), not the server.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            QueryError::Syntax { .. } | QueryError::UnknownField { .. } | QueryError::Invalid(_)
        )
    }
}

/// One aggregation over the matching events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggRequest {
    /// Counts by value of `field` (e.g. `action`, `actor.ip`), the `size`
    /// most frequent first.
    Terms { field: String, size: usize },
    /// Counts per `interval` of event `time`.
    DateHistogram { interval: Duration },
}

#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    /// Query text; empty or `*` matches everything.
    pub q: String,
    /// Event time at or after (inclusive).
    pub from: Option<Timestamp>,
    /// Event time before (exclusive).
    pub to: Option<Timestamp>,
    /// Hits per page, at most [`MAX_LIMIT`] (larger values are capped); 0
    /// returns only `total` and aggregations.
    pub limit: usize,
    /// The `cursor` of the previous page: returns events with a smaller index.
    pub cursor: Option<u64>,
    pub aggs: Vec<AggRequest>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchResponse {
    /// Events matching query and time range (whatever the cursor).
    pub total: u64,
    /// Newest first (by global index, which is arrival order).
    pub hits: Vec<Hit>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub cursor: Option<u64>,
    /// One result per requested aggregation, in request order:
    /// `{"buckets": [{"key", "doc_count"}...], ...}` (histograms also
    /// carry `key_as_string`).
    pub aggs: Value,
}

/// Read side of the index; cheap to share between threads.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    parser: QueryParser,
    timeout: Duration,
    entries: EntryReader,
    zones: ZoneMaps,
}

impl SearchIndex {
    /// Searches the index in `index_dir` (reloaded shortly after each
    /// commit); hits are read from the ledger in `data_dir`.
    pub fn open(index_dir: &Path, data_dir: &Path) -> Result<SearchIndex, QueryError> {
        SearchIndex::new(Index::open_in_dir(index_dir)?, data_dir)
    }

    /// Searches `index`, e.g. the indexer's own (`Indexer::index`), of the
    /// ledger in `data_dir`.
    pub fn new(index: Index, data_dir: &Path) -> Result<SearchIndex, QueryError> {
        let fields = Fields::new();
        if index.schema() != fields.schema {
            return Err(QueryError::Invalid(
                "the search index has another schema; run `sealtrail reindex`".into(),
            ));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        let mut parser = QueryParser::for_index(&index, vec![fields.message]);
        parser.allow_regexes();
        Ok(SearchIndex {
            index,
            reader,
            fields,
            parser,
            timeout: DEFAULT_TIMEOUT,
            entries: EntryReader::open(data_dir),
            zones: ZoneMaps::default(),
        })
    }

    /// How long one query may run (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sees the latest commit now rather than after the reload delay.
    pub fn reload(&self) -> Result<(), QueryError> {
        Ok(self.reader.reload()?)
    }

    /// One page of hits (newest first), the total and the aggregations.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse, QueryError> {
        let deadline = Deadline::new(self.timeout);
        let limit = req.limit.min(MAX_LIMIT);
        let mut eligible = 0u64;
        // Min-heap of the `limit` largest indices seen.
        let mut top: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(limit + 1);
        let (total, aggs) = self.scan(req, &deadline, |index| {
            if req.cursor.is_some_and(|c| index >= c) {
                return Ok(());
            }
            eligible += 1;
            if limit == 0 {
                return Ok(());
            }
            if top.len() < limit {
                top.push(Reverse(index));
            } else if top.peek().is_some_and(|Reverse(min)| index > *min) {
                top.pop();
                top.push(Reverse(index));
            }
            Ok(())
        })?;
        let mut picked: Vec<u64> = top.into_iter().map(|Reverse(i)| i).collect();
        picked.sort_unstable_by_key(|&index| Reverse(index));
        let hits = self.load_hits(&picked, &deadline)?;
        let cursor = match hits.last() {
            Some(last) if eligible > hits.len() as u64 => Some(last.index),
            _ => None,
        };
        Ok(SearchResponse {
            total,
            hits,
            cursor,
            aggs,
        })
    }

    /// Every hit (newest first) in one pass, for reports and exports;
    /// refuses with a clear error when more than `max` events match.
    /// `limit`, `cursor` and `aggs` of the request are ignored.
    pub fn search_all(&self, req: &SearchRequest, max: usize) -> Result<Vec<Hit>, QueryError> {
        let deadline = Deadline::new(self.timeout);
        let req = SearchRequest {
            aggs: Vec::new(),
            ..req.clone()
        };
        let mut all = Vec::new();
        self.scan(&req, &deadline, |index| {
            if all.len() >= max {
                return Err(QueryError::Invalid(format!(
                    "more than {max} matching events; narrow the query or the period"
                )));
            }
            all.push(index);
            Ok(())
        })?;
        all.sort_unstable_by_key(|&index| Reverse(index));
        self.load_hits(&all, &deadline)
    }

    /// Runs the query over every index segment, calling `on_match` with the
    /// global index of each live document in the time window; returns the
    /// number of matches and the aggregations' output.
    fn scan(
        &self,
        req: &SearchRequest,
        deadline: &Deadline,
        mut on_match: impl FnMut(u64) -> Result<(), QueryError>,
    ) -> Result<(u64, Value), QueryError> {
        let (query, window) = self.build_query(req)?;
        let aggs = self.build_aggs(req)?;
        let searcher = self.reader.searcher();
        let weight = query.weight(EnableScoring::disabled_from_searcher(&searcher))?;
        let collector = aggs.map(|a| {
            let limits = AggregationLimitsGuard::new(Some(AGG_MEMORY), Some(MAX_BUCKETS as u32));
            AggregationCollector::from_aggs(
                a,
                AggContextParams::new(limits, self.index.tokenizers().clone()),
            )
        });
        let mut agg_fruits = Vec::new();
        let mut total = 0u64;
        let mut alive = Vec::with_capacity(COLLECT_BLOCK_BUFFER_LEN);
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            deadline.check()?;
            // Segment ordinals are u32 in tantivy; a searcher never has more.
            let ord = ord as u32;
            let index_column = segment.fast_fields().u64("index")?;
            // Doc ranges of the segment that can hold events of the window
            // (from its zone map), and whether each needs a per-document
            // time check.
            let ranges = match window {
                Some(w) => {
                    let col = segment.fast_fields().date("time")?;
                    let zones = self.zones.get(segment, &col);
                    Some((zones.ranges(w, segment.max_doc()), w, col))
                }
                None => None,
            };
            if ranges.as_ref().is_some_and(|(r, _, _)| r.is_empty()) {
                continue;
            }
            let mut agg_segment = match &collector {
                Some(c) => Some(c.for_segment(ord, segment)?),
                None => None,
            };
            let mut scorer = weight.scorer(segment, 1.0)?;
            let bitset = segment.alive_bitset();
            let whole = [DocRange {
                start: 0,
                end: segment.max_doc(),
                check_time: false,
            }];
            let doc_ranges = match &ranges {
                Some((r, _, _)) => r.as_slice(),
                None => &whole,
            };
            let mut since_check = 0u64;
            for range in doc_ranges {
                if scorer.doc() < range.start {
                    scorer.seek(range.start);
                }
                loop {
                    alive.clear();
                    while alive.len() < COLLECT_BLOCK_BUFFER_LEN {
                        let d = scorer.doc();
                        if d >= range.end {
                            break;
                        }
                        scorer.advance();
                        since_check += 1;
                        if bitset.is_some_and(|b| !b.is_alive(d)) {
                            continue;
                        }
                        if range.check_time
                            && let Some((_, w, col)) = &ranges
                            && !col
                                .first(d)
                                .is_some_and(|t| w.contains(t.into_timestamp_millis()))
                        {
                            continue;
                        }
                        alive.push(d);
                    }
                    if alive.is_empty() && scorer.doc() >= range.end {
                        break;
                    }
                    total += alive.len() as u64;
                    if let Some(a) = agg_segment.as_mut() {
                        a.collect_block(&alive);
                    }
                    for &doc in &alive {
                        if let Some(index) = index_column.first(doc) {
                            on_match(index)?;
                        }
                    }
                    if since_check >= DEADLINE_CHECK_DOCS {
                        since_check = 0;
                        deadline.check()?;
                    }
                    if scorer.doc() >= range.end {
                        break;
                    }
                }
            }
            if let Some(a) = agg_segment {
                agg_fruits.push(a.harvest());
            }
        }
        let aggs = match &collector {
            Some(c) => self.agg_output(req, c.merge_fruits(agg_fruits).map_err(agg_error)?)?,
            None => Value::Array(Vec::new()),
        };
        Ok((total, aggs))
    }

    /// Reads the hits' entries from the ledger, in the order given; large
    /// sets (reports, exports) on several threads, each taking a contiguous
    /// run of indices so it reads its own segments.
    fn load_hits(&self, indices: &[u64], deadline: &Deadline) -> Result<Vec<Hit>, QueryError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_LOAD_THREADS);
        if indices.len() < PARALLEL_LOAD_MIN || threads < 2 {
            return self.load_run(indices, deadline);
        }
        let per = indices.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Hit>, QueryError>> = std::thread::scope(|scope| {
            let running: Vec<_> = indices
                .chunks(per)
                .map(|run| scope.spawn(move || self.load_run(run, deadline)))
                .collect();
            running
                .into_iter()
                .map(|t| {
                    t.join().unwrap_or_else(|_| {
                        Err(QueryError::Invalid(
                            "reading hits failed (a thread panicked)".into(),
                        ))
                    })
                })
                .collect()
        });
        let mut hits = Vec::with_capacity(indices.len());
        for part in parts {
            hits.extend(part?);
        }
        Ok(hits)
    }

    fn load_run(&self, indices: &[u64], deadline: &Deadline) -> Result<Vec<Hit>, QueryError> {
        let mut hits = Vec::with_capacity(indices.len());
        for chunk in indices.chunks(LOAD_CHUNK) {
            deadline.check()?;
            let entries = self
                .entries
                .read_many(chunk)
                .map_err(|e| QueryError::Stored {
                    index: chunk[0],
                    reason: e.to_string(),
                })?;
            for (&index, bytes) in chunk.iter().zip(entries) {
                hits.push(
                    Hit::new(index, bytes)
                        .map_err(|reason| QueryError::Stored { index, reason })?,
                );
            }
        }
        Ok(hits)
    }

    /// The query front end alone (shape, grammar, fields, query tree), for
    /// the fuzz target: nothing is searched.
    #[doc(hidden)]
    pub fn parse_only(&self, q: &str) -> Result<(), QueryError> {
        let req = SearchRequest {
            q: q.to_owned(),
            ..SearchRequest::default()
        };
        self.build_query(&req).map(|_| ())
    }

    /// The user's query, restricted to the time range.
    /// The query to run, and the time window to check per matching document
    /// when the query itself is selective (see `TimeWindow`).
    fn build_query(
        &self,
        req: &SearchRequest,
    ) -> Result<(Box<dyn Query>, Option<TimeWindow>), QueryError> {
        let text = req.q.trim();
        check_shape(text)?;
        let match_all = text.is_empty() || text == "*";
        let user: Box<dyn Query> = if text.is_empty() || text == "*" {
            Box::new(AllQuery)
        } else {
            let (ast, errors) = query_grammar::parse_query_lenient(text);
            if let Some(e) = errors.into_iter().next() {
                return Err(QueryError::Syntax {
                    position: Some(e.pos + (req.q.len() - req.q.trim_start().len())),
                    reason: lowercase_first(&e.message),
                });
            }
            if query_grammar::parse_query(text).is_err() {
                return Err(QueryError::Syntax {
                    position: None,
                    reason: "the query is malformed".into(),
                });
            }
            check_fields(&ast, &self.fields)?;
            self.to_query(complete_negations(ast))?
        };
        if req.from.is_none() && req.to.is_none() {
            return Ok((user, None));
        }
        if let (Some(from), Some(to)) = (req.from, req.to)
            && from >= to
        {
            return Err(QueryError::Invalid("`from` must be before `to`".into()));
        }
        if !match_all {
            // A range query over `time` walks the whole column, whatever the
            // other clauses match (8-9 ms per 10M documents, measured): when
            // the query names terms, checking the time of each match is far
            // cheaper.
            return Ok((
                user,
                Some(TimeWindow {
                    from_ms: req.from.map_or(i64::MIN, |t| t.unix_ms()),
                    to_ms: req.to.map_or(i64::MAX, |t| t.unix_ms()),
                }),
            ));
        }
        let bound = |t: Option<Timestamp>, inclusive: bool| match t {
            None => Bound::Unbounded,
            Some(t) => {
                let term = Term::from_field_date(self.fields.time, super::schema::to_date(t));
                if inclusive {
                    Bound::Included(term)
                } else {
                    Bound::Excluded(term)
                }
            }
        };
        let range = RangeQuery::new(bound(req.from, true), bound(req.to, false));
        Ok((
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, user),
                (Occur::Must, Box::new(range)),
            ])),
            None,
        ))
    }

    /// Builds the query tree clause by clause, so leaves tantivy's parser
    /// cannot build (regexes and wildcards on JSON paths) are built here.
    fn to_query(&self, ast: UserInputAst) -> Result<Box<dyn Query>, QueryError> {
        match ast {
            UserInputAst::Clause(children) => {
                let mut clauses = Vec::with_capacity(children.len());
                for (occur, child) in children {
                    clauses.push((occur.unwrap_or(Occur::Should), self.to_query(child)?));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            UserInputAst::Boost(inner, boost) => Ok(Box::new(BoostQuery::new(
                self.to_query(*inner)?,
                boost.into_inner() as f32,
            ))),
            UserInputAst::Leaf(leaf) => {
                let json_regex = match leaf.as_ref() {
                    UserInputLeaf::Regex {
                        field: Some(name),
                        pattern,
                    } => Some((name.as_str(), pattern.as_str())),
                    // `attrs` is not fast, so tantivy's exists query cannot
                    // serve it: any string term under the path will do.
                    UserInputLeaf::Exists { field } if field.starts_with("attrs.") => {
                        Some((field.as_str(), ".*"))
                    }
                    _ => None,
                };
                if let Some((name, pattern)) = json_regex
                    && let Some((field, path)) = self.fields.schema.find_field(name)
                    && !path.is_empty()
                {
                    // JSON terms are `path (segments joined by 0x01) 0x00 type value`.
                    let mut full = path
                        .split('.')
                        .map(regex::escape)
                        .collect::<Vec<_>>()
                        .join("\\x01");
                    full.push_str("\\x00s");
                    // Grouped, so an alternation like `ehr|billing` applies to
                    // the value only, not to the whole term with its path.
                    full.push_str("(?:");
                    full.push_str(pattern);
                    full.push(')');
                    return RegexQuery::from_pattern(&full, field)
                        .map(|q| Box::new(q) as Box<dyn Query>)
                        .map_err(|e| QueryError::Syntax {
                            position: None,
                            reason: format!("regex {pattern:?}: {e}"),
                        });
                }
                self.parser
                    .build_query_from_user_input_ast(UserInputAst::Leaf(leaf))
                    .map_err(parser_error)
            }
        }
    }

    fn build_aggs(&self, req: &SearchRequest) -> Result<Option<Aggregations>, QueryError> {
        if req.aggs.is_empty() {
            return Ok(None);
        }
        if req.aggs.len() > MAX_AGGS {
            return Err(QueryError::Invalid(format!(
                "at most {MAX_AGGS} aggregations per request"
            )));
        }
        let mut spec = serde_json::Map::new();
        for (i, agg) in req.aggs.iter().enumerate() {
            let body = match agg {
                AggRequest::Terms { field, size } => {
                    if *size == 0 || *size > MAX_BUCKETS {
                        return Err(QueryError::Invalid(format!(
                            "terms size must be between 1 and {MAX_BUCKETS}"
                        )));
                    }
                    check_agg_field(field)?;
                    json!({"terms": {"field": field, "size": size}})
                }
                AggRequest::DateHistogram { interval } => {
                    let ms = interval.as_millis();
                    if ms == 0 {
                        return Err(QueryError::Invalid(
                            "histogram interval must be at least 1ms".into(),
                        ));
                    }
                    if let (Some(from), Some(to)) = (req.from, req.to) {
                        let span = (to.unix_ms() - from.unix_ms()).max(0) as u128;
                        if span / ms >= MAX_BUCKETS as u128 {
                            return Err(QueryError::Invalid(format!(
                                "histogram would have more than {MAX_BUCKETS} buckets; use a larger interval"
                            )));
                        }
                    }
                    let mut h = json!({"field": "time", "fixed_interval": format!("{ms}ms")});
                    if req.from.is_some() || req.to.is_some() {
                        h["hard_bounds"] = json!({
                            "min": req.from.map_or(f64::MIN, |t| t.unix_ms() as f64),
                            "max": req.to.map_or(f64::MAX, |t| t.unix_ms() as f64),
                        });
                    }
                    json!({ "date_histogram": h })
                }
            };
            spec.insert(format!("a{i}"), body);
        }
        serde_json::from_value(Value::Object(spec))
            .map_err(|e| QueryError::Invalid(format!("aggregation: {e}")))
    }

    /// Tantivy's named results as an array in request order.
    fn agg_output(
        &self,
        req: &SearchRequest,
        results: tantivy::aggregation::agg_result::AggregationResults,
    ) -> Result<Value, QueryError> {
        let mut named = match serde_json::to_value(&results) {
            Ok(Value::Object(m)) => m,
            Ok(_) | Err(_) => return Err(QueryError::Invalid("aggregation result".into())),
        };
        Ok(Value::Array(
            (0..req.aggs.len())
                .map(|i| named.remove(&format!("a{i}")).unwrap_or(Value::Null))
                .collect(),
        ))
    }
}

struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    fn new(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    fn check(&self) -> Result<(), QueryError> {
        if Instant::now() >= self.at {
            return Err(QueryError::TooSlow { limit: self.limit });
        }
        Ok(())
    }
}

fn agg_error(e: TantivyError) -> QueryError {
    match e {
        TantivyError::AggregationError(a) => QueryError::Invalid(lowercase_first(&a.to_string())),
        e => QueryError::Index(e),
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn parser_error(e: tantivy::query::QueryParserError) -> QueryError {
    use tantivy::query::QueryParserError as P;
    match e {
        P::FieldDoesNotExist(field) => QueryError::UnknownField {
            field,
            known: known_fields(),
        },
        P::SyntaxError(reason) => QueryError::Syntax {
            position: None,
            reason: lowercase_first(&reason),
        },
        other => QueryError::Syntax {
            position: None,
            reason: lowercase_first(&other.to_string()),
        },
    }
}

/// One field a query can name: what the console completes and the error
/// for an unknown field lists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QueryField {
    /// As written in a query; `attrs.*` stands for any `attrs.<name>`.
    pub name: String,
    /// `keyword` (exact values), `text` (words), `number` or `time` (ranges).
    pub kind: &'static str,
    /// Whether a terms aggregation can count by it (and so suggest values).
    pub countable: bool,
}

/// Top-level keyword fields whose values are few enough to count by.
const COUNTABLE_TOP: [&str; 5] = ["category", "action", "outcome", "target_user", "reason"];

/// Every field a query can name, in the order the console offers them.
pub fn searchable_fields() -> Vec<QueryField> {
    let field = |name: String, kind, countable| QueryField {
        name,
        kind,
        countable,
    };
    let mut out: Vec<QueryField> = KEYWORD_FIELDS
        .iter()
        .map(|f| field((*f).to_owned(), "keyword", COUNTABLE_TOP.contains(f)))
        .collect();
    for (object, subs) in OBJECT_FIELDS {
        out.extend(
            subs.iter()
                .map(|s| field(format!("{object}.{s}"), "keyword", true)),
        );
    }
    out.push(field("message".into(), "text", false));
    out.push(field("attrs.*".into(), "text", false));
    out.push(field("records".into(), "number", true));
    out.push(field("index".into(), "number", false));
    out.push(field("time".into(), "time", false));
    out.push(field("received".into(), "time", false));
    out
}

/// Every searchable field name, for error messages.
pub fn known_fields() -> String {
    let names: Vec<String> = searchable_fields().into_iter().map(|f| f.name).collect();
    names.join(", ")
}

/// Whether `name`, as written in a query, is a field of the index.
fn is_known_field(name: &str, fields: &Fields) -> bool {
    let name = name.replace("\\.", ".");
    if let Some(rest) = name.strip_prefix("attrs.") {
        return !rest.is_empty();
    }
    if let Some((object, path)) = name.split_once('.') {
        return OBJECT_FIELDS
            .iter()
            .any(|(o, subs)| *o == object && subs.contains(&path));
    }
    fields.schema.get_field(&name).is_ok()
}

fn check_fields(ast: &UserInputAst, fields: &Fields) -> Result<(), QueryError> {
    let mut unknown = None;
    walk_fields(ast, &mut |name| {
        if unknown.is_none() && !is_known_field(name, fields) {
            unknown = Some(name.to_owned());
        }
    });
    match unknown {
        Some(field) => Err(QueryError::UnknownField {
            field,
            known: known_fields(),
        }),
        None => Ok(()),
    }
}

/// Refuses queries whose size or nesting the grammar cannot take safely:
/// longer than [`MAX_QUERY_BYTES`], parentheses deeper than
/// [`MAX_QUERY_NESTING`], more than [`MAX_QUERY_TOKENS`] terms and
/// operators, or runs of `NOT` (the grammar recurses on each). Quoted
/// phrases are skipped (a `(` inside quotes is text).
fn check_shape(text: &str) -> Result<(), QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::Invalid(format!(
            "the query is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    // A NUL or other control character inside a field path is tantivy's
    // own JSON path separator: it tripped an assertion in its term
    // building (found by the `query` fuzz target). No query needs one.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(QueryError::Invalid(format!(
            "the query holds a control character ({:?})",
            c
        )));
    }
    let (mut depth, mut tokens, mut nots) = (0usize, 0usize, 0usize);
    let mut patterns = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    let mut word = String::new();
    let mut end_word = |word: &mut String, tokens: &mut usize, nots: &mut usize| {
        if word.is_empty() {
            return Ok(());
        }
        *tokens += 1;
        // `field:/regex/`, `svc-*`, `u00?1`: each expands over a dictionary.
        let value = word.rsplit_once(':').map_or(word.as_str(), |(_, v)| v);
        if value.starts_with('/') || value.contains(['*', '?']) {
            patterns += 1;
            if patterns > MAX_QUERY_PATTERNS {
                return Err(QueryError::Invalid(format!(
                    "the query has more than {MAX_QUERY_PATTERNS} wildcard or regex terms"
                )));
            }
        }
        // NOT NOT x, or -NOT x: each unary operator is a level of the grammar.
        let signs = word.len() - word.trim_start_matches(['-', '+']).len();
        if signs > 4 {
            return Err(QueryError::Invalid(
                "too many - or + in a row (at most 4)".into(),
            ));
        }
        let unary = word == "NOT" || signs == word.len();
        *nots = if unary { *nots + 1 } else { 0 };
        word.clear();
        if *nots > 4 {
            return Err(QueryError::Invalid(
                "too many NOT in a row (at most 4)".into(),
            ));
        }
        if *tokens > MAX_QUERY_TOKENS {
            return Err(QueryError::Invalid(format!(
                "the query has more than {MAX_QUERY_TOKENS} terms and operators"
            )));
        }
        Ok(())
    };
    for c in text.chars() {
        if quoted {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => {
                end_word(&mut word, &mut tokens, &mut nots)?;
                quoted = true;
                tokens += 1;
            }
            '(' => {
                end_word(&mut word, &mut tokens, &mut nots)?;
                depth += 1;
                if depth > MAX_QUERY_NESTING {
                    return Err(QueryError::Invalid(format!(
                        "parentheses nested deeper than {MAX_QUERY_NESTING}"
                    )));
                }
            }
            ')' => {
                end_word(&mut word, &mut tokens, &mut nots)?;
                depth = depth.saturating_sub(1);
            }
            c if c.is_whitespace() => end_word(&mut word, &mut tokens, &mut nots)?,
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut tokens, &mut nots)
}

/// Gives every clause made only of exclusions (`NOT b`, or the `(-b)` that
/// `a AND NOT b` parses into) something to exclude from: all documents.
/// Tantivy matches nothing for such a clause, so `a AND NOT b` would
/// otherwise never match.
fn complete_negations(ast: UserInputAst) -> UserInputAst {
    match ast {
        UserInputAst::Clause(children) => {
            let mut children: Vec<_> = children
                .into_iter()
                .map(|(occur, child)| (occur, complete_negations(child)))
                .collect();
            if !children.is_empty() && children.iter().all(|(o, _)| *o == Some(Occur::MustNot)) {
                children.push((
                    Some(Occur::Must),
                    UserInputAst::Leaf(Box::new(UserInputLeaf::All)),
                ));
            }
            UserInputAst::Clause(children)
        }
        UserInputAst::Boost(inner, boost) => {
            UserInputAst::Boost(Box::new(complete_negations(*inner)), boost)
        }
        UserInputAst::Leaf(leaf) => exact_as_range(wildcard_as_regex(*leaf)),
    }
}

/// Fields kept only as columns (their values are unique per event, so a
/// term dictionary over them would be the largest part of the index).
const COLUMN_ONLY_FIELDS: [&str; 3] = ["index", "time", "received"];

/// An exact value (or a set of them) of a column-only field becomes a
/// one-value range, which tantivy answers from the column.
fn exact_as_range(leaf: UserInputLeaf) -> UserInputAst {
    let column_only = |f: &Option<String>| {
        f.as_deref()
            .is_some_and(|f| COLUMN_ONLY_FIELDS.contains(&f))
    };
    let range = |field: Option<String>, value: String| {
        UserInputAst::Leaf(Box::new(UserInputLeaf::Range {
            field,
            lower: UserInputBound::Inclusive(value.clone()),
            upper: UserInputBound::Inclusive(value),
        }))
    };
    match leaf {
        UserInputLeaf::Literal(lit) if column_only(&lit.field_name) && !lit.prefix => {
            range(lit.field_name, lit.phrase)
        }
        UserInputLeaf::Set { field, elements } if column_only(&field) => UserInputAst::Clause(
            elements
                .into_iter()
                .map(|e| (Some(Occur::Should), range(field.clone(), e)))
                .collect(),
        ),
        other => UserInputAst::Leaf(Box::new(other)),
    }
}

/// An unquoted word with wildcards (`actor.user:u00*`, `MRN-00?2`) as a
/// regex over the field's terms (`*` any run, `?` one character):
/// tantivy's parser would look the word up literally.
fn wildcard_as_regex(leaf: UserInputLeaf) -> UserInputLeaf {
    match leaf {
        UserInputLeaf::Literal(l)
            if matches!(l.delimiter, Delimiter::None)
                && (l.phrase.contains('*') || l.phrase.contains('?')) =>
        {
            // Text fields (`message`, `attrs`) hold lowercased tokens.
            let text = l
                .field_name
                .as_deref()
                .is_none_or(|f| f == "message" || f.starts_with("attrs."));
            let word = if text {
                l.phrase.to_lowercase()
            } else {
                l.phrase.clone()
            };
            let mut pattern = String::new();
            for part in word.split_inclusive(['*', '?']) {
                let (lit, wild) = match part.strip_suffix('*') {
                    Some(lit) => (lit, ".*"),
                    None => match part.strip_suffix('?') {
                        Some(lit) => (lit, "."),
                        None => (part, ""),
                    },
                };
                pattern.push_str(&regex::escape(lit));
                pattern.push_str(wild);
            }
            UserInputLeaf::Regex {
                // A bare word searches the default field.
                field: Some(l.field_name.unwrap_or_else(|| "message".to_owned())),
                pattern,
            }
        }
        other => other,
    }
}

/// The field names `q` mentions, as written (`actor.user`, `attrs.x`),
/// each once, in order of appearance; an empty query names none.
pub fn query_fields(q: &str) -> Result<Vec<String>, QueryError> {
    let text = q.trim();
    check_shape(text)?;
    if text.is_empty() || text == "*" {
        return Ok(Vec::new());
    }
    let (ast, errors) = query_grammar::parse_query_lenient(text);
    if let Some(e) = errors.into_iter().next() {
        return Err(QueryError::Syntax {
            position: Some(e.pos),
            reason: lowercase_first(&e.message),
        });
    }
    let mut names: Vec<String> = Vec::new();
    walk_fields(&ast, &mut |name| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    });
    Ok(names)
}

fn walk_fields(ast: &UserInputAst, f: &mut impl FnMut(&str)) {
    match ast {
        UserInputAst::Clause(children) => children.iter().for_each(|(_, c)| walk_fields(c, f)),
        UserInputAst::Boost(inner, _) => walk_fields(inner, f),
        UserInputAst::Leaf(leaf) => match leaf.as_ref() {
            UserInputLeaf::Literal(l) => l.field_name.iter().for_each(|n| f(n)),
            UserInputLeaf::Range { field, .. }
            | UserInputLeaf::Set { field, .. }
            | UserInputLeaf::Regex { field, .. } => field.iter().for_each(|n| f(n)),
            UserInputLeaf::Exists { field } => f(field),
            UserInputLeaf::All => {}
        },
    }
}

/// Fields a terms aggregation can count by: the fast ones.
fn check_agg_field(field: &str) -> Result<(), QueryError> {
    if searchable_fields()
        .iter()
        .any(|f| f.countable && f.name == field)
    {
        Ok(())
    } else {
        Err(QueryError::Invalid(format!(
            "cannot count by {field:?}; use category, action, outcome, target_user, reason, records or a sub-field of actor, patient, resource, source, via, enriched"
        )))
    }
}
