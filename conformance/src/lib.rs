//! chronik-conformance
