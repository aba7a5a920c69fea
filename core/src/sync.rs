//! The synchronisation primitives of code that loom checks (the commit queue, the
//! coalesced sync of blocking appends, and the broker's flusher built on them).
//!
//! With the `loom` feature these are loom's instrumented types, so the loom tests explore
//! every interleaving of the code that uses them; otherwise they are std's. Nothing
//! here spawns: threads belong to the shell.

#[cfg(feature = "loom")]
pub use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(feature = "loom"))]
pub use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks a mutex, treating poisoning as harmless: the data it guards is kept
/// consistent by each critical section before anything in it can panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
