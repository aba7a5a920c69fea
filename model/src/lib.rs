//! chronik-model
