//! The core's loom-aware primitives, and the thread spawning only the shell does.

pub(crate) use chronik_core::sync::{lock, Condvar, Mutex};
#[cfg(feature = "loom")]
pub(crate) use loom::thread;
#[cfg(not(feature = "loom"))]
pub(crate) use std::thread;
