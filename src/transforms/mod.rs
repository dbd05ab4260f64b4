//! Transforms: what happens to an event between decoding and the ledger.
//!
//! The stage order is fixed:
//!
//! 1. **normalize / validate**: the sources decode their input into an
//!    [`Event`](crate::event::Event) (`Event::from_json`, the FHIR and
//!    syslog mappings) and [`Event::validate`](crate::event::Event::validate)
//!    it; input that fails becomes a `system/ingest_rejected` event.
//! 2. **enrich** ([`enrich`]): `actor.user`, `target_user` and `patient.id`
//!    are looked up in the practice's directories (`staff.csv`,
//!    `patients.csv`); what matched goes into
//!    [`Entry::enriched`](crate::event::Entry::enriched), beside the event,
//!    which stays as the source sent it. Enrichment reads identifiers, so it
//!    runs before masking, which never touches identifiers anyway.
//! 3. **mask** ([`mask`]): PHI in the free text (`message`, strings in
//!    `attrs`, including the raw input kept by `ingest_rejected`) is
//!    replaced by keyed tokens `[name:HASH]`, so it is never sealed into
//!    the ledger in clear.
//!
//! Then the ledger appender seals the entry. Both stages are synchronous
//! and lock-free per event: the pipeline takes an
//! [`Enricher::snapshot`] per batch, and a [`Masker`] is shared by
//! reference.
//!
//! ```
//! use sealtrail::event::{Entry, Event, Timestamp, Via};
//! use sealtrail::transforms::{Lookups, MaskConfig, Masker, enrich};
//!
//! let mut event = Event::from_json(
//!     br#"{"time":"2026-11-27T14:03:11Z","category":"access","action":"view",
//!          "outcome":"success","message":"called back at 555-123-4567"}"#,
//! )
//! .unwrap();
//! let lookups = Lookups::default(); // normally Enricher::snapshot()
//! let masker = Masker::new(&MaskConfig::default(), &[7u8; 32]).unwrap();
//! let enriched = enrich(&lookups, &event);
//! masker.mask_event(&mut event);
//! assert!(event.message.as_deref().unwrap().starts_with("called back at [phone:"));
//! let entry = Entry {
//!     received: Timestamp::now(),
//!     via: Via { kind: "http".into(), peer: None, principal: None },
//!     event,
//!     enriched,
//! };
//! assert!(Entry::from_canonical_bytes(&entry.canonical_bytes()).is_ok());
//! ```

pub mod enrich;
pub mod mask;
mod networks;

#[cfg(test)]
mod tests;

pub use enrich::{EnrichError, Enricher, LoadNote, LoadReport, Lookups, enrich};
pub use mask::{
    MaskConfig, MaskError, MaskStats, Masker, Normalize, PatternConfig, load_or_create_key,
};
