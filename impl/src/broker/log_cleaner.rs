//! The log cleaner's shell (R-LOG-18): every `log_cleaner_backoff_ms` (or its dynamic
//! `log.cleaner.backoff.ms`), one round
//! over the hosted partitions of compacted topics, on the blocking pool. What a
//! pass cleans and how it swaps files is the core's (`PartitionLog::clean`); this
//! only keeps time, counts, and logs a partition when its cleaning starts failing
//! and when it recovers, not every round.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::shared::{now_ms, Broker};

type Key = (String, i32);

/// Cleans forever, unless `log_cleaner_enable` is off.
pub async fn run(broker: Arc<Broker>) {
    if !broker.config.log_cleaner_enable {
        return;
    }
    let mut failing = BTreeSet::new();
    loop {
        let backoff = broker
            .dynamic_setting("log.cleaner.backoff.ms")
            .unwrap_or(broker.config.log_cleaner_backoff_ms);
        tokio::time::sleep(Duration::from_millis(backoff.max(1))).await;
        let budget = broker
            .dynamic_setting("log.cleaner.dedupe.buffer.size")
            .unwrap_or(broker.config.log_cleaner_dedupe_buffer_size);
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        let b = Arc::clone(&broker);
        let before = std::mem::take(&mut failing);
        match tokio::task::spawn_blocking(move || round(&b, budget, before)).await {
            Ok(now_failing) => failing = now_failing,
            Err(e) => tracing::error!(error = %e, "log cleaner round panicked"),
        }
    }
}

/// One pass over every compacted partition; returns those whose pass failed.
fn round(broker: &Broker, budget: usize, mut failing: BTreeSet<Key>) -> BTreeSet<Key> {
    let logs = broker.partitions.all();
    failing.retain(|key| logs.iter().any(|(k, _)| k == key));
    for (key, log) in logs {
        if log.config().compaction.is_none() {
            failing.remove(&key);
            continue;
        }
        let (topic, partition) = (&key.0, key.1);
        match log.clean(now_ms(), budget) {
            Ok(outcome) => {
                if failing.remove(&key) {
                    tracing::info!(%topic, partition, "log cleaning recovered");
                }
                if outcome.segments_written > 0 {
                    broker.metrics.cleaned(&outcome);
                    tracing::debug!(%topic, partition, ?outcome, "log cleaned");
                }
            }
            Err(e) => {
                broker.metrics.cleaner_failure();
                if failing.insert(key.clone()) {
                    tracing::error!(%topic, partition, error = %e,
                        "log cleaning failing (logged again when it recovers)");
                }
            }
        }
    }
    failing
}
