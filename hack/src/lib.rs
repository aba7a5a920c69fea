//! Nothing to import: this crate exists for its `Cargo.toml` (see the comment there).
