//! The normalized event model (ingest format v1) and the ledger entry.
//!
//! Bytes come in through [`Event::from_json`] (parse with field paths in
//! errors, then [`Event::validate`]); sealtrail wraps an accepted event in an
//! [`Entry`] whose [`Entry::canonical_bytes`] are what the ledger hashes and
//! stores; directory data joined to the event goes beside it in
//! [`Entry::enriched`]. `schemas/event.schema.json` describes the same contract; limits
//! live in [`limits`].

mod enriched;
mod entry;
mod error;
pub mod limits;
mod model;
pub mod reserved;
mod scan;
mod strict;
mod timestamp;
mod validate;
pub mod view;

#[cfg(test)]
mod tests;

pub use enriched::{
    Enriched, PatientInfo, StaffInfo, check_text as check_enriched_text, is_iso_date,
};
pub use entry::{Entry, Via};
pub use error::EventError;
pub use model::{Actor, Category, Event, Outcome, Patient, Resource, Source};
pub use scan::{entry_event_id, entry_time_ms};
pub use timestamp::{Timestamp, TimestampError};
pub use validate::{is_known_action, known_actions};
