//! Reports built from search results.

pub mod patient_access;
