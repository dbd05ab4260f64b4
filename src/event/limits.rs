//! Size limits of ingest format v1. `schemas/event.schema.json` states the
//! same numbers; `tests/event_schema.rs` checks the two agree.
//!
//! Lengths are in characters (Unicode scalar values), as JSON Schema
//! `maxLength` counts them, except where a name says bytes.

/// Whole event document in bytes, checked before parsing. JSON Schema
/// cannot express a byte size, so this is a transport rule of the decoder
/// rather than a schema rule; it bounds what the structural limits below
/// allow.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// `id`.
pub const MAX_ID_CHARS: usize = 128;
/// `action`.
pub const MAX_ACTION_CHARS: usize = 64;
/// Every other short string: `actor.*`, `patient.id`, `resource.*`,
/// `target_user`, `source.*`, `reason`, and the entry's `via` strings.
pub const MAX_SHORT_CHARS: usize = 256;
/// `message`.
pub const MAX_MESSAGE_CHARS: usize = 16 * 1024;
/// `records`: the largest integer a JSON number holds exactly (2^53 - 1).
pub const MAX_RECORDS: u64 = (1 << 53) - 1;
/// Nesting of objects and arrays in `attrs`, counting `attrs` itself as 1.
pub const MAX_ATTRS_DEPTH: usize = 8;
/// Members of any object inside `attrs` (and of `attrs`).
pub const MAX_ATTRS_ENTRIES: usize = 64;
/// Items of any array inside `attrs`.
pub const MAX_ATTRS_ITEMS: usize = 64;
/// Keys of any object inside `attrs` (non-empty).
pub const MAX_ATTRS_KEY_CHARS: usize = 128;
/// Any string inside `attrs`.
pub const MAX_ATTRS_STRING_CHARS: usize = 8 * 1024;
/// `via.kind`.
pub const MAX_VIA_KIND_CHARS: usize = 32;
/// Raw input kept by an `ingest_rejected` event, in bytes.
pub const MAX_REJECTED_RAW_BYTES: usize = 4 * 1024;
/// Reason kept by an `ingest_rejected` event.
pub const MAX_REJECTED_REASON_CHARS: usize = 1024;
/// How many bytes PHI masking may add to one event (tokens can be longer
/// than the values they replace); past this, masked strings are cut so they
/// do not grow. See `transforms::mask`.
pub const MAX_MASK_GROWTH_BYTES: usize = 16 * 1024;
/// Any string in the entry's `enriched` member (directory data).
pub const MAX_ENRICHED_CHARS: usize = MAX_SHORT_CHARS;
/// The entry's `enriched` member, in bytes. Its strings are at most
/// `MAX_ENRICHED_CHARS` characters without control characters, so at most 4
/// bytes a character in JSON: 12 strings and 4 dates come to under 14 KiB
/// with keys (`enriched::tests` checks the largest value).
pub const MAX_ENRICHED_BYTES: usize = 16 * 1024;
/// Entry bytes: an event plus the envelope and enrichment, as stored. Larger
/// than `MAX_EVENT_BYTES` because canonical form can be longer than the input
/// (`1e1` is written `10.0`) and masking and enrichment add to it; equal to
/// the ledger's frame limit, and checked after canonicalization by the ingest
/// pipeline.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
