//! The broker-wide budget of request bytes (Kafka's `queued.max.request.bytes`),
//! R-WIRE-12.
//!
//! A connection takes its frame's bytes from the budget once the frame's size is
//! read and checked, before the body is read, and gives them back when the request
//! has been handled. A frame that does not fit waits, and its connection is not read
//! meanwhile: the client sees backpressure (TCP flow control), not an error. Kafka does
//! the same with its memory pool, muting a channel whose next receive does not fit.
//!
//! Kafka's pool lets a full budget hold up every request, however small; here frames
//! of at most [`SMALL_FRAME`] bytes that find the budget taken draw on a separate
//! [`SMALL_RESERVE`], so ApiVersions, Metadata, heartbeats and a follower's Fetch are
//! never queued behind large produce requests (an acks=all produce holding the budget
//! waits for exactly those follower fetches). Memory held by requests stays below
//! the budget plus the reserve.
//!
//! A claim made before the body arrives can be made by a client that never sends
//! the body: a few connections that each send only a frame size held Kafka's pool,
//! and this budget, for the whole receive timeout. So a small frame is read first
//! and claims its bytes only once whole (what it holds meanwhile is bounded by the
//! connections: at most [`SMALL_FRAME`] each), and a large frame's claim first takes
//! its client address's share ([`RequestMemory::share_of`]): the large frames one
//! address is receiving at once hold at most half the budget.

use super::Metrics;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The most a control-sized request takes: every request but Produce and large
/// metadata changes fits far below it.
pub const SMALL_FRAME: usize = 64 * 1024;
/// Room for 128 small frames in flight when the budget is full.
pub const SMALL_RESERVE: usize = 8 * 1024 * 1024;

pub struct RequestMemory {
    capacity: usize,
    budget: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    /// Each client address's share, alive while a connection from it holds it.
    shares: Mutex<HashMap<IpAddr, Weak<Semaphore>>>,
    metrics: Arc<Metrics>,
}

/// The budget one client address's large frames may hold while they arrive.
#[derive(Clone)]
pub struct AddressShare {
    room: Arc<Semaphore>,
    bytes: usize,
}

/// A large frame's part of its address's share, held until its body has arrived.
pub struct Receiving {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Bytes taken from the budget; given back when dropped.
pub struct Held {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    metrics: Arc<Metrics>,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A frame that can never fit, however long it waits.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub capacity: usize,
}

impl RequestMemory {
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        // A semaphore counts at most usize::MAX >> 3 permits.
        let capacity = capacity.min(Semaphore::MAX_PERMITS);
        RequestMemory {
            capacity,
            budget: Arc::new(Semaphore::new(capacity)),
            reserve: Arc::new(Semaphore::new(SMALL_RESERVE)),
            shares: Mutex::default(),
            metrics,
        }
    }

    /// The share of the budget that large frames from `address` may hold while they
    /// arrive, the same for every connection from it: half the budget, so that no
    /// one address sending frame sizes and no bodies can hold all of it.
    pub fn share_of(&self, address: IpAddr) -> AddressShare {
        let bytes = (self.capacity / 2).max(1);
        // A poisoned map only means a panicking holder; the shares stay valid.
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(room) = shares.get(&address).and_then(Weak::upgrade) {
            return AddressShare { room, bytes };
        }
        shares.retain(|_, share| share.strong_count() > 0);
        let room = Arc::new(Semaphore::new(bytes));
        shares.insert(address, Arc::downgrade(&room));
        AddressShare { room, bytes }
    }

    /// Waits until a large frame of `size` bytes fits its address's `share` (all of
    /// it, for a frame larger than the share), then holds that part of it.
    pub async fn start_receiving(&self, share: &AddressShare, size: usize) -> Receiving {
        let part = u32::try_from(size.min(share.bytes)).unwrap_or(u32::MAX);
        let permit = match Arc::clone(&share.room).try_acquire_many_owned(part) {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.metrics.request_memory_wait();
                // Never closed (an error would only mean no share to wait for).
                Arc::clone(&share.room).acquire_many_owned(part).await.ok()
            }
        };
        Receiving { _permit: permit }
    }

    /// Waits until `size` bytes fit, then holds them.
    pub async fn acquire(&self, size: usize) -> Result<Held, TooLarge> {
        let too_large = TooLarge {
            capacity: self.capacity,
        };
        if size > self.capacity {
            return Err(too_large);
        }
        let n = u32::try_from(size).map_err(|_| too_large)?;
        let small = size <= SMALL_FRAME;
        let permit = match self.take_now(n, small) {
            Some(permit) => permit,
            None => {
                self.metrics.request_memory_wait();
                let pool = if small { &self.reserve } else { &self.budget };
                // Never closed: both semaphores live as long as `self`.
                Arc::clone(pool)
                    .acquire_many_owned(n)
                    .await
                    .map_err(|_| TooLarge { capacity: 0 })?
            }
        };
        self.metrics.request_memory_held(size as i64);
        Ok(Held {
            _permit: permit,
            bytes: size,
            metrics: Arc::clone(&self.metrics),
        })
    }

    fn take_now(&self, n: u32, small: bool) -> Option<OwnedSemaphorePermit> {
        let from_budget = Arc::clone(&self.budget).try_acquire_many_owned(n).ok();
        if from_budget.is_some() || !small {
            return from_budget;
        }
        Arc::clone(&self.reserve).try_acquire_many_owned(n).ok()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.metrics.request_memory_held(-(self.bytes as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn memory(capacity: usize) -> RequestMemory {
        RequestMemory::new(capacity, Arc::new(Metrics::default()))
    }

    async fn pending<T>(f: impl std::future::Future<Output = T>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn r_wire_12_a_frame_larger_than_the_budget_is_refused() {
        let m = memory(1000);
        assert_eq!(
            m.acquire(1001).await.err(),
            Some(TooLarge { capacity: 1000 })
        );
        assert!(m.acquire(1000).await.is_ok());
    }

    #[tokio::test]
    async fn r_wire_12_a_large_frame_waits_until_the_budget_frees() {
        let m = memory(300_000);
        let first = m.acquire(200_000).await;
        assert!(first.is_ok());
        assert!(pending(m.acquire(200_000)).await, "does not fit yet");
        drop(first);
        assert!(
            m.acquire(200_000).await.is_ok(),
            "fits once the first is handled"
        );
    }

    #[tokio::test]
    async fn r_wire_12_small_frames_pass_a_budget_full_of_large_ones() {
        let m = Arc::new(memory(200_000));
        let _held = m.acquire(200_000).await;
        let waiting = tokio::spawn({
            let m = Arc::clone(&m);
            async move { m.acquire(100_000).await.is_ok() }
        });
        tokio::task::yield_now().await;
        let small = tokio::time::timeout(Duration::from_secs(5), m.acquire(SMALL_FRAME)).await;
        assert!(matches!(small, Ok(Ok(_))), "a small frame uses the reserve");
        waiting.abort();
    }

    #[tokio::test]
    async fn r_wire_12_an_address_receives_at_most_half_the_budget() {
        let m = memory(400_000);
        let (a, b) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let first = m.start_receiving(&m.share_of(a), 150_000).await;
        let share = m.share_of(a);
        assert!(
            pending(m.start_receiving(&share, 100_000)).await,
            "the address's second frame waits"
        );
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            m.start_receiving(&m.share_of(b), 300_000),
        )
        .await;
        assert!(
            other.is_ok(),
            "another address has its own share, all of it for a large frame"
        );
        drop(first);
        assert!(!pending(m.start_receiving(&share, 100_000)).await);
    }

    #[test]
    fn r_wire_12_an_address_share_lives_while_a_connection_holds_it() {
        let m = memory(1000);
        let a = "127.0.0.2".parse().unwrap();
        let share = m.share_of(a);
        drop(m.share_of("127.0.0.3".parse().unwrap()));
        let _new = m.share_of("127.0.0.4".parse().unwrap());
        let shares = m.shares.lock().unwrap();
        assert!(shares.contains_key(&a));
        assert!(
            !shares.contains_key(&"127.0.0.3".parse().unwrap()),
            "pruned"
        );
        drop(share);
    }
}
