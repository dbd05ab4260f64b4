//! The indexer: a ledger consumer that keeps `DATA/index/` (tantivy) up to
//! date, near real time.
//!
//! Its cursor (the next global index to index) is written in the tantivy
//! commit payload, so documents and cursor become durable together: after a
//! crash, tantivy discards what was not committed and the indexer resumes
//! from the committed cursor with no gap and no duplicate. The payload also
//! carries the CRC-32C of the last indexed entry, so an index that ran ahead
//! of its ledger (a ledger restored from an older backup, or one that lost an
//! unsynced tail) is noticed on open and rolled back.

use crate::ledger::health::{Backoff, Outage};
use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::collector::Count;
use tantivy::directory::MmapDirectory;
use tantivy::indexer::{LogMergePolicy, NoMergePolicy};
use tantivy::query::RangeQuery;
use tantivy::{Index, IndexSettings, IndexWriter, TantivyDocument, TantivyError, Term};
use thiserror::Error;

use super::follow::{FollowError, LedgerFollower, ledger_end};
use super::schema::{Fields, SCHEMA_VERSION};
use crate::ledger::log::LedgerPaths;

/// Memory the tantivy writer may use before it flushes a segment.
pub const WRITER_MEMORY: usize = 64 << 20;
/// Documents a rebuild indexes between two commits, so a crash during a
/// long rebuild resumes rather than starts over.
const REBUILD_COMMIT_EVERY: u64 = 200_000;

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] TantivyError),
    #[error("reading the ledger: {0}")]
    Follow(#[from] FollowError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("data directory {0} is in use by a running sealtrail; stop it before reindexing")]
    Busy(PathBuf),
    #[error("search index is in use by another indexer ({0})")]
    Locked(PathBuf),
    #[error("indexer thread: {0}")]
    Thread(String),
}

fn io_err(path: &Path, source: io::Error) -> IndexError {
    IndexError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the commit payload records, as JSON.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    /// Schema and mapping version the documents were made with.
    schema: u32,
    /// Next global index to index.
    cursor: u64,
    /// CRC-32C of the entry at `cursor - 1` (0 when `cursor` is 0).
    last_crc: u32,
}

/// What `Indexer::open` found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexRecovery {
    /// The index was created (new, or rebuilt after a schema change or a
    /// ledger that no longer matches).
    pub created: bool,
    /// Documents at or past the ledger's end were deleted (the index had
    /// run ahead of the ledger); the cursor moved back to the ledger's end.
    pub rolled_back_from: Option<u64>,
    /// Why the index was started over, when it was.
    pub rebuilt_because: Option<String>,
}

/// The single writer of `DATA/index/`.
pub struct Indexer {
    data_dir: PathBuf,
    dir: PathBuf,
    index: Index,
    writer: IndexWriter<TantivyDocument>,
    fields: Fields,
    follower: LedgerFollower,
    buf: Vec<u8>,
    cursor: u64,
    last_crc: u32,
    committed: Payload,
    dirty: bool,
    recovery: IndexRecovery,
}

/// Index settings. Documents store nothing (hits are read from the
/// ledger), so the doc store settings only matter for its empty blocks.
fn settings() -> IndexSettings {
    IndexSettings::default()
}

/// `DATA/index`, where the search index of a data directory lives.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

impl Indexer {
    /// Opens (creating if needed) the index in `index_dir` for the ledger in
    /// `data_dir`, checks it against the ledger and repairs it (see
    /// [`IndexRecovery`]).
    pub fn open(index_dir: &Path, data_dir: &Path) -> Result<Indexer, IndexError> {
        let mut recovery = IndexRecovery::default();
        let fields = Fields::new();
        let (index, payload) = match open_existing(index_dir, &fields)? {
            Ok(found) => found,
            Err(reason) => {
                recovery.created = true;
                if let Some(reason) = reason {
                    tracing::warn!(dir = %index_dir.display(), %reason, "rebuilding search index");
                    recovery.rebuilt_because = Some(reason);
                }
                (create(index_dir, &fields)?, Payload::default())
            }
        };
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| match e {
                TantivyError::LockFailure(..) => IndexError::Locked(index_dir.to_owned()),
                e => IndexError::Tantivy(e),
            })?;
        writer.set_merge_policy(Box::new(merge_policy()));
        let mut indexer = Indexer {
            data_dir: data_dir.to_owned(),
            dir: index_dir.to_owned(),
            index,
            writer,
            follower: LedgerFollower::new(data_dir, payload.cursor),
            fields,
            buf: Vec::new(),
            cursor: payload.cursor,
            last_crc: payload.last_crc,
            committed: payload,
            dirty: recovery.created,
            recovery,
        };
        indexer.reconcile()?;
        Ok(indexer)
    }

    /// Next global index to index (documents before it are added, maybe not
    /// yet committed).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Next global index after the last commit: what survives a crash.
    pub fn committed_cursor(&self) -> u64 {
        self.committed.cursor
    }

    pub fn recovery(&self) -> &IndexRecovery {
        &self.recovery
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Indexes every entry from the cursor up to `durable_limit` (the
    /// ledger writer's durable next index); returns how many it added.
    /// Stops early at a partial frame (retried by the next call).
    pub fn catch_up(&mut self, durable_limit: u64) -> Result<u64, IndexError> {
        self.catch_up_bounded(durable_limit, u64::MAX)
    }

    /// Like `catch_up`, adding at most `max` documents.
    pub fn catch_up_bounded(&mut self, durable_limit: u64, max: u64) -> Result<u64, IndexError> {
        let mut added = 0;
        while added < max {
            let Some(index) = self.follower.next_entry(durable_limit, &mut self.buf)? else {
                break;
            };
            debug_assert_eq!(index, self.cursor);
            let (doc, parsed) = self.fields.document(index, &self.buf);
            if let Err(reason) = parsed {
                tracing::warn!(index, %reason, "indexing an entry that does not parse");
            }
            self.writer.add_document(doc)?;
            self.cursor = index + 1;
            self.last_crc = crc32c::crc32c(&self.buf);
            self.dirty = true;
            added += 1;
        }
        if added == 0
            && self.cursor < durable_limit
            && let Some(reason) = self.follower.stalled()
        {
            tracing::warn!(cursor = self.cursor, durable_limit, %reason, "indexer waits at a frame it cannot read");
        }
        Ok(added)
    }

    /// Commits the added documents with the cursor as payload, atomically.
    /// Does nothing when nothing changed since the last commit.
    pub fn commit(&mut self) -> Result<(), IndexError> {
        if !self.dirty {
            return Ok(());
        }
        let payload = Payload {
            schema: SCHEMA_VERSION,
            cursor: self.cursor,
            last_crc: self.last_crc,
        };
        // Invariant: a struct of integers always serializes.
        let text = serde_json::to_string(&payload).unwrap_or_default();
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&text);
        prepared.commit()?;
        self.committed = payload;
        self.dirty = false;
        Ok(())
    }

    /// Commits and waits for background merges to finish.
    pub fn close(mut self) -> Result<(), IndexError> {
        self.commit()?;
        self.writer.wait_merging_threads()?;
        Ok(())
    }

    /// Makes the committed index agree with the ledger: no document at or
    /// past the cursor, a cursor not past the ledger's end, and the same
    /// entry just before the cursor.
    fn reconcile(&mut self) -> Result<(), IndexError> {
        let cursor = self.cursor;
        // Documents at or past the cursor cannot be committed with it, but an
        // index written by another tool could hold some: never show them twice.
        if self.count_from(cursor)? > 0 {
            self.delete_from(cursor)?;
        }
        if cursor == 0 {
            return self.commit();
        }
        let mut probe = LedgerFollower::new(&self.data_dir, cursor - 1);
        let mut bytes = Vec::new();
        match probe.next_entry(cursor, &mut bytes)? {
            Some(_) if crc32c::crc32c(&bytes) == self.last_crc => {}
            Some(_) => {
                // A different ledger (or a rewritten one): start over.
                tracing::warn!(cursor, "search index does not match the ledger; rebuilding");
                self.writer.delete_all_documents()?;
                self.recovery.rebuilt_because =
                    Some(format!("entry {} differs from the indexed one", cursor - 1));
                self.set_cursor(0, 0);
            }
            None => {
                let end = ledger_end(&self.data_dir)?;
                if end < cursor {
                    tracing::warn!(
                        cursor,
                        ledger_end = end,
                        "search index is ahead of the ledger; rolling back"
                    );
                    self.delete_from(end)?;
                    self.recovery.rolled_back_from = Some(cursor);
                    let crc = if end == 0 {
                        0
                    } else {
                        let mut f = LedgerFollower::new(&self.data_dir, end - 1);
                        f.next_entry(end, &mut bytes)?;
                        crc32c::crc32c(&bytes)
                    };
                    self.set_cursor(end, crc);
                }
                // Otherwise the entry is not readable yet (torn tail awaiting
                // the writer's recovery): keep the cursor.
            }
        }
        self.commit()
    }

    fn set_cursor(&mut self, cursor: u64, crc: u32) {
        self.cursor = cursor;
        self.last_crc = crc;
        self.follower = LedgerFollower::new(&self.data_dir, cursor);
        self.dirty = true;
    }

    fn count_from(&self, from: u64) -> Result<usize, IndexError> {
        let reader = self.index.reader()?;
        let query = RangeQuery::new(
            Bound::Included(Term::from_field_u64(self.fields.index, from)),
            Bound::Unbounded,
        );
        Ok(reader.searcher().search(&query, &Count)?)
    }

    fn delete_from(&mut self, from: u64) -> Result<(), IndexError> {
        let query = RangeQuery::new(
            Bound::Included(Term::from_field_u64(self.fields.index, from)),
            Bound::Unbounded,
        );
        self.writer.delete_query(Box::new(query))?;
        self.dirty = true;
        Ok(())
    }
}

fn merge_policy() -> LogMergePolicy {
    // Near-real-time commits make many tiny segments; merge them early.
    let mut policy = LogMergePolicy::default();
    policy.set_min_num_segments(4);
    policy
}

/// The existing index and its payload; `Err(None)` if there is none,
/// `Err(Some(reason))` if it must be rebuilt.
#[allow(clippy::type_complexity)]
fn open_existing(
    dir: &Path,
    fields: &Fields,
) -> Result<Result<(Index, Payload), Option<String>>, IndexError> {
    if !dir.join("meta.json").exists() {
        return Ok(Err(None));
    }
    let index = match Index::open_in_dir(dir) {
        Ok(i) => i,
        Err(e) => return Ok(Err(Some(format!("cannot open it: {e}")))),
    };
    if index.schema() != fields.schema {
        return Ok(Err(Some("its schema changed".into())));
    }
    let payload = match index.load_metas()?.payload {
        None => Payload {
            schema: SCHEMA_VERSION,
            ..Payload::default()
        },
        Some(text) => match serde_json::from_str::<Payload>(&text) {
            Ok(p) => p,
            Err(e) => return Ok(Err(Some(format!("its commit payload is unreadable: {e}")))),
        },
    };
    if payload.schema != SCHEMA_VERSION {
        return Ok(Err(Some(format!(
            "it was built with schema version {}, this is {SCHEMA_VERSION}",
            payload.schema
        ))));
    }
    Ok(Ok((index, payload)))
}

fn create(dir: &Path, fields: &Fields) -> Result<Index, IndexError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mmap = MmapDirectory::open(dir).map_err(|e| IndexError::Tantivy(e.into()))?;
    Ok(Index::builder()
        .schema(fields.schema.clone())
        .settings(settings())
        .open_or_create(mmap)?)
}

/// How the indexer thread paces itself.
#[derive(Clone, Debug)]
pub struct IndexerOptions {
    /// Time between rounds when caught up (an acknowledged event becomes
    /// searchable within about this plus the commit time).
    pub interval: Duration,
    /// Documents added per round at most, so a large backlog is committed
    /// in steps (and a stop request is seen) rather than in one go.
    pub max_per_round: u64,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            interval: Duration::from_millis(500),
            max_per_round: 50_000,
        }
    }
}

/// The indexer loop, for a dedicated thread (blocking I/O, not for tokio):
/// every `interval`, index up to `durable()` (the writer's durable next
/// index, e.g. `WriterStatus::next_index`) and commit. Returns when `stop`
/// receives a message or its sender is dropped, after a last round.
/// `committed` runs after each commit that added documents, with the
/// index's cursor (entries indexed): a searcher in the same process reloads
/// there, instead of noticing the commit up to half a second later by
/// polling `meta.json`, and the index lag is measured from it.
pub fn run_indexer(
    mut indexer: Indexer,
    durable: impl Fn() -> u64,
    stop: &Receiver<()>,
    options: &IndexerOptions,
    committed: impl Fn(u64),
) -> Result<Indexer, IndexError> {
    let (index_dir, data_dir) = (indexer.dir.clone(), indexer.data_dir.clone());
    let mut outage = Outage::new("search indexing");
    let mut backoff = Backoff::default();
    let mut wait = Duration::ZERO;
    loop {
        let stopping = match stop.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        let started = Instant::now();
        let limit = durable();
        let max = if stopping {
            u64::MAX
        } else {
            options.max_per_round
        };
        let round = indexer
            .catch_up_bounded(limit, max)
            .and_then(|added| indexer.commit().map(|()| added));
        let added = match round {
            Ok(added) => {
                outage.succeeded();
                backoff.reset();
                added
            }
            Err(e) => {
                // A full disk or no file handles: the writer may be unusable
                // after a failed commit, so the index is reopened from its
                // last commit (cursor and all) and the round runs again.
                outage.failed(&e);
                if stopping {
                    return Err(e);
                }
                drop(indexer);
                indexer = loop {
                    std::thread::sleep(backoff.next_delay());
                    match Indexer::open(&index_dir, &data_dir) {
                        Ok(i) => break i,
                        Err(e) => {
                            outage.failed(&e);
                            if matches!(
                                stop.try_recv(),
                                Ok(()) | Err(std::sync::mpsc::TryRecvError::Disconnected)
                            ) {
                                return Err(e);
                            }
                        }
                    }
                };
                wait = Duration::ZERO;
                continue;
            }
        };
        if added > 0 {
            committed(indexer.cursor());
        }
        if stopping {
            return Ok(indexer);
        }
        // A full round means a backlog: go on at once.
        wait = if added >= options.max_per_round {
            Duration::ZERO
        } else {
            options.interval.saturating_sub(started.elapsed())
        };
    }
}

/// Rebuilds `DATA/index/` from the ledger: deletes it and indexes every
/// entry. Refuses while a sealtrail process holds the data directory.
/// Returns the number of entries indexed.
pub fn reindex(data_dir: &Path) -> Result<u64, IndexError> {
    reindex_with(data_dir, &mut |_, _| {})
}

/// Entries between two progress reports of [`reindex_with`].
pub const REINDEX_PROGRESS_EVERY: u64 = 4096;

/// [`reindex`], calling `progress(done, total)` after every
/// [`REINDEX_PROGRESS_EVERY`] entries and once at the end: `done` never
/// goes down, and ends at the number indexed (the total, unless the ledger
/// ends early at a frame it cannot read).
pub fn reindex_with(
    data_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, IndexError> {
    let paths = LedgerPaths::new(data_dir);
    // Hold the data directory's lock, so no writer (and no service indexer)
    // runs while the index is replaced.
    let _lock = match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&paths.lock)
    {
        Ok(lock) => match lock.try_lock() {
            Ok(()) => Some(lock),
            Err(fs::TryLockError::WouldBlock) => return Err(IndexError::Busy(data_dir.to_owned())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&paths.lock, e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&paths.lock, e)),
    };
    let dir = index_dir(data_dir);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    }
    let end = ledger_end(data_dir)?;
    let mut indexer = Indexer::open(&dir, data_dir)?;
    // One big segment per flush is better than merging while rebuilding.
    indexer.writer.set_merge_policy(Box::new(NoMergePolicy));
    let (mut total, mut uncommitted) = (0, 0);
    progress(0, end);
    loop {
        let added = indexer.catch_up_bounded(end, REINDEX_PROGRESS_EVERY)?;
        total += added;
        uncommitted += added;
        if uncommitted >= REBUILD_COMMIT_EVERY || added < REINDEX_PROGRESS_EVERY {
            indexer.commit()?;
            uncommitted = 0;
        }
        if added < REINDEX_PROGRESS_EVERY {
            break;
        }
        progress(total, end);
    }
    progress(total, end);
    indexer.writer.set_merge_policy(Box::new(merge_policy()));
    indexer.close()?;
    Ok(total)
}
