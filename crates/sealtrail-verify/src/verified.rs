//! Proof-carrying results: a `Verified<T>` is only made by the checks in
//! this crate (its constructor is private to the crate), so a caller that
//! holds a `Verified<Checkpoint>` knows its signature was checked, and "no
//! error was returned" can never be mistaken for "verified".

use std::ops::Deref;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub(crate) fn new(value: T) -> Self {
        Verified(value)
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
