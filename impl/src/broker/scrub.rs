//! The background scrub (R-LOG-16): re-reads every hosted partition log at a
//! bounded rate so that damage in data nobody reads (a sealed segment opened through
//! its index, a follower's copy) is found while a replica can still repair it
//! (R-REPL-4), not when a consumer or a failover first needs the records.
//!
//! A pass walks the partitions in order, each from its log start to its log end; the
//! next pass starts `log_scrub_interval_ms` after one ends. Reading is done on the
//! blocking pool, in slices of a tenth of a second's budget.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::shared::Broker;
use chronik_core::replication::Partitions;

const SLICE: Duration = Duration::from_millis(100);

/// Where a scrub pass is: the partition it reads and the offset it reached there.
#[derive(Debug, Default, Clone)]
pub struct ScrubCursor {
    next: Option<((String, i32), u64)>,
}

impl ScrubCursor {
    /// Scrubs about `budget` bytes from where the pass is; true once the pass is over.
    pub fn step(&mut self, partitions: &Partitions, budget: usize) -> bool {
        let logs: BTreeMap<_, _> = partitions.all().into_iter().collect();
        let mut left = budget;
        let mut at = match self.next.take() {
            Some(next) => next,
            None => match logs.keys().next() {
                Some(first) => (first.clone(), 0),
                None => return true,
            },
        };
        loop {
            // The partition at or after the cursor's: it may have been deleted.
            let Some((key, log)) = logs.range(at.0.clone()..).next() else {
                return true;
            };
            let from = if *key == at.0 { at.1 } else { 0 };
            let (reached, read) = log.scrub(from, left).unwrap_or_else(|e| {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e,
                    "scrub could not read a partition; going on with the next");
                (None, 0)
            });
            left = left.saturating_sub(read);
            if let Some(offset) = reached {
                self.next = Some((key.clone(), offset));
                return false;
            }
            let Some((next, _)) = logs.range((key.0.clone(), key.1 + 1)..).next() else {
                return true;
            };
            at = (next.clone(), 0);
            if left == 0 {
                self.next = Some(at);
                return false;
            }
        }
    }
}

/// Scrubs forever at `log_scrub_bytes_per_sec`, if it is not 0.
pub async fn run(broker: Arc<Broker>) {
    let rate = broker.config.log_scrub_bytes_per_sec;
    if rate == 0 {
        return;
    }
    let per_slice = usize::try_from(rate / 10).unwrap_or(usize::MAX).max(1);
    let pause = Duration::from_millis(broker.config.log_scrub_interval_ms);
    let mut cursor = ScrubCursor::default();
    loop {
        tokio::time::sleep(SLICE).await;
        let partitions = Arc::clone(&broker.partitions);
        let mut moved = std::mem::take(&mut cursor);
        let stepped = tokio::task::spawn_blocking(move || {
            let done = moved.step(&partitions, per_slice);
            (moved, done)
        })
        .await;
        let Ok((next, done)) = stepped else {
            continue;
        };
        cursor = next;
        if done {
            cursor = ScrubCursor::default();
            tracing::debug!("scrub pass over every partition done");
            tokio::time::sleep(pause).await;
        }
    }
}
