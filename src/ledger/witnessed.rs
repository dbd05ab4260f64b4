//! `verify --witness-vkey`: which witnesses an auditor trusts. The check of
//! the stored cosigned checkpoint (`ledger/checkpoint.witnessed`) is the
//! verifier crate's (`sealtrail_verify::witnessed`); the witness client and
//! server write that file.

use super::cosignature::WitnessVerifier;

pub use sealtrail_verify::witnessed::{WITNESSED_FILE, WitnessedSummary};

/// Which witnesses an auditor trusts and how many must have cosigned.
#[derive(Clone, Debug)]
pub struct WitnessPolicy {
    pub witnesses: Vec<WitnessVerifier>,
    pub quorum: usize,
}
