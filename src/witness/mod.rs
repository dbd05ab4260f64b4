//! Witness cosigning (C2SP `tlog-witness`, `tlog-cosignature`).
//!
//! `keys` writes and loads the witness key files; `server` is `sealtrail
//! witness serve` (POST /add-checkpoint) with `state` remembering the latest
//! cosigned checkpoint per log; `submit` is the log side run by `serve`:
//! every new checkpoint goes to each `[[witness]]` and the cosignatures are
//! kept with it in `DATA/ledger/checkpoint.witnessed` (`store`).

pub mod keys;
pub mod publish;
pub mod server;
pub mod state;
pub mod store;
pub mod submit;
