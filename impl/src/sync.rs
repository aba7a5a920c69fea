//! The synchronisation primitives used by concurrent code that loom checks.
//!
//! Under `--cfg loom` these are loom's instrumented types, so the loom tests explore
//! every interleaving of the code that uses them; otherwise they are std's.

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread;

#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;

/// Locks a mutex, treating poisoning as harmless: the data it guards is kept
/// consistent by each critical section before anything in it can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
