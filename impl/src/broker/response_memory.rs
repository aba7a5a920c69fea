//! The broker-wide budget of consumer Fetch response bytes (R-WIRE-12,
//! `fetch_response_memory_bytes`).
//!
//! Kafka sends fetched records from the page cache with sendfile, so its fetch
//! answers cost no heap; here they are read into memory and held until written,
//! so a thousand consumers asking for `fetch.max.bytes` each could hold gigabytes.
//! A consumer Fetch therefore takes its bytes from this budget before it reads, and
//! gives them back when its answer has been written (the grant travels inside the
//! response's `Bytes`). When the budget is short the answer gets smaller instead of
//! later: a grant is whatever is free, down to [`MIN_GRANT`], which is waited for.
//! Follower fetches do not draw on it: their memory is bounded by the number of
//! followers times `replica_fetch_response_max_bytes`, and starving them would stall
//! every acks=all produce.

use super::Metrics;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The smallest grant: a few batches, so a consumer always makes progress.
pub const MIN_GRANT: usize = 64 * 1024;

pub struct ResponseMemory {
    capacity: usize,
    budget: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// Response bytes taken from the budget; given back when dropped.
pub struct Grant {
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
    metrics: Arc<Metrics>,
}

impl Grant {
    /// How many bytes the response may hold (its first batch excepted, KIP-74).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives back what a response of `used` bytes does not need.
    pub fn shrink_to(&mut self, used: usize) {
        let Some(permit) = self.permit.as_mut() else {
            return;
        };
        let spare = self.bytes.saturating_sub(used);
        if spare > 0 {
            drop(permit.split(spare));
            self.bytes -= spare;
            self.metrics.fetch_response_memory_held(-(spare as i64));
        }
    }

    /// The encoded response, holding this grant until the last copy of it is
    /// dropped (once written to the socket).
    pub fn attach(self, response: Bytes) -> Bytes {
        Bytes::from_owner(Holding {
            response,
            _grant: self,
        })
    }
}

struct Holding {
    response: Bytes,
    _grant: Grant,
}

impl AsRef<[u8]> for Holding {
    fn as_ref(&self) -> &[u8] {
        &self.response
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if self.permit.is_some() {
            self.metrics
                .fetch_response_memory_held(-(self.bytes as i64));
        }
    }
}

impl ResponseMemory {
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        let capacity = capacity.clamp(MIN_GRANT, Semaphore::MAX_PERMITS);
        ResponseMemory {
            capacity,
            budget: Arc::new(Semaphore::new(capacity)),
            metrics,
        }
    }

    /// A grant of up to `want` bytes: all of it if free now, else whatever is free,
    /// at least [`MIN_GRANT`] (waited for).
    pub async fn grant(&self, want: usize) -> Grant {
        let want = want.clamp(1, self.capacity);
        let floor = want.min(MIN_GRANT);
        loop {
            let free = self.budget.available_permits().min(want);
            if free >= floor {
                if let Some(grant) = self.try_take(free) {
                    if free < want {
                        self.metrics.fetch_response_shrunk();
                    }
                    return grant;
                }
                continue;
            }
            self.metrics.fetch_response_shrunk();
            // Never closed: the semaphore lives as long as `self`.
            let Ok(n) = u32::try_from(floor) else {
                return self.unbounded(floor);
            };
            match Arc::clone(&self.budget).acquire_many_owned(n).await {
                Ok(permit) => return self.held(permit, floor),
                Err(_) => return self.unbounded(floor),
            }
        }
    }

    fn try_take(&self, bytes: usize) -> Option<Grant> {
        let n = u32::try_from(bytes).ok()?;
        let permit = Arc::clone(&self.budget).try_acquire_many_owned(n).ok()?;
        Some(self.held(permit, bytes))
    }

    fn held(&self, permit: OwnedSemaphorePermit, bytes: usize) -> Grant {
        self.metrics.fetch_response_memory_held(bytes as i64);
        Grant {
            permit: Some(permit),
            bytes,
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// A grant outside the budget (a follower's fetch).
    pub fn unbounded(&self, bytes: usize) -> Grant {
        Grant {
            permit: None,
            bytes,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn memory(capacity: usize) -> ResponseMemory {
        ResponseMemory::new(capacity, Arc::new(Metrics::default()))
    }

    #[tokio::test]
    async fn r_wire_12_fetch_answers_shrink_when_the_budget_is_short() {
        let m = memory(1 << 20);
        let first = m.grant(800 * 1024).await;
        assert_eq!(first.bytes(), 800 * 1024);
        // What is left, not what was asked.
        let second = m.grant(800 * 1024).await;
        assert_eq!(second.bytes(), 224 * 1024);
        // Nothing left: waits for the smallest grant.
        let waiting = tokio::time::timeout(Duration::from_millis(50), m.grant(1 << 20)).await;
        assert!(waiting.is_err(), "no room: the fetch waits");
        drop(second);
        assert_eq!(m.grant(1 << 20).await.bytes(), 224 * 1024);
    }

    #[tokio::test]
    async fn r_wire_12_a_grant_is_held_until_its_response_is_dropped() {
        let m = memory(MIN_GRANT * 2);
        let mut grant = m.grant(MIN_GRANT * 2).await;
        grant.shrink_to(1000);
        assert_eq!(grant.bytes(), 1000);
        let response = grant.attach(Bytes::from_static(b"answer"));
        let copy = response.clone();
        assert_eq!(&copy[..], b"answer");
        assert_eq!(m.budget.available_permits(), MIN_GRANT * 2 - 1000);
        drop(response);
        assert_eq!(m.budget.available_permits(), MIN_GRANT * 2 - 1000);
        drop(copy);
        assert_eq!(m.budget.available_permits(), MIN_GRANT * 2);
    }
}
