//! The normalized event model.
