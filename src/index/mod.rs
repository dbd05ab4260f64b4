//! The search index: a tantivy index derived from the ledger.
//!
//! `follow` reads ledger entries in global-index order beside the live
//! writer; `indexer` turns them into documents (`schema`) and commits them
//! with its cursor, near real time; `query` answers searches. The index is
//! disposable: [`reindex`] rebuilds it from the ledger.

pub mod follow;
pub mod hit;
pub mod indexer;
pub mod query;
pub mod schema;
pub mod zones;

pub use follow::{FollowError, LedgerFollower, ledger_end};
pub use hit::Hit;
pub use indexer::{
    IndexError, IndexRecovery, Indexer, IndexerOptions, REINDEX_PROGRESS_EVERY, index_dir, reindex,
    reindex_with, run_indexer,
};
pub use query::{
    AggRequest, QueryError, QueryField, SearchIndex, SearchRequest, SearchResponse,
    searchable_fields,
};
