//! The partition logs this broker hosts, opened and closed as the metadata assigns
//! and removes partitions.

use crate::disk::Disk;
use crate::log::{GroupCommitter, LogConfig, LogError, PartitionLog};
use crate::metadata::MetadataState;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub type TopicPartition = (String, i32);

pub struct Partitions {
    disk: Arc<dyn Disk>,
    root: PathBuf,
    committer: GroupCommitter,
    defaults: LogConfig,
    logs: RwLock<BTreeMap<TopicPartition, Arc<PartitionLog>>>,
    metrics: Arc<super::Metrics>,
}

fn dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Maps Kafka topic configs onto the log's configuration.
pub fn log_config(defaults: &LogConfig, configs: &BTreeMap<String, String>) -> LogConfig {
    let mut c = defaults.clone();
    let num = |k: &str| configs.get(k).and_then(|v| v.parse::<i64>().ok());
    if let Some(v) = num("segment.bytes").filter(|v| *v > 0) {
        c.segment_bytes = v as u64;
    }
    if let Some(v) = num("segment.ms").filter(|v| *v > 0) {
        c.segment_ms = v as u64;
    }
    if let Some(v) = num("retention.ms") {
        c.retention_ms = (v >= 0).then_some(v as u64);
    }
    if let Some(v) = num("retention.bytes") {
        c.retention_bytes = (v >= 0).then_some(v as u64);
    }
    if let Some(v) = num("max.message.bytes").filter(|v| *v > 0) {
        c.max_batch_bytes = v as usize;
    }
    if let Some(v) = num("index.interval.bytes").filter(|v| *v > 0) {
        c.index_interval_bytes = v as u64;
    }
    c
}

impl Partitions {
    pub fn new(
        disk: Arc<dyn Disk>,
        root: PathBuf,
        defaults: LogConfig,
        metrics: Arc<super::Metrics>,
    ) -> Self {
        Partitions {
            disk,
            root,
            committer: GroupCommitter::start(),
            defaults,
            logs: RwLock::new(BTreeMap::new()),
            metrics,
        }
    }

    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        self.logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn all(&self) -> Vec<(TopicPartition, Arc<PartitionLog>)> {
        self.logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// Opens the logs of partitions assigned to `broker_id`, applies topic configs,
    /// and deletes the logs of topics that no longer exist.
    pub fn reconcile(&self, state: &MetadataState, broker_id: i32) -> Result<(), LogError> {
        let mut wanted = BTreeMap::new();
        for (name, topic) in &state.topics {
            for (i, p) in topic.partitions.iter().enumerate() {
                if p.replicas.contains(&broker_id) {
                    wanted.insert(
                        (name.clone(), i as i32),
                        log_config(&self.defaults, &topic.configs),
                    );
                }
            }
        }
        let mut logs = self.logs.write().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<TopicPartition> = logs
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(log) = logs.remove(&key) {
                if let Ok(log) = Arc::try_unwrap(log) {
                    log.delete()?;
                } else {
                    // Still in use by a request: remove the directory anyway; open
                    // handles keep working until dropped.
                    let dir = self.root.join(dir_name(&key.0, key.1));
                    self.disk
                        .remove_dir_all(&dir)
                        .map_err(|e| LogError::io("remove directory", &dir, e))?;
                }
            }
        }
        for (key, config) in wanted {
            match logs.get(&key) {
                Some(log) => {
                    if log.config() != config {
                        log.set_config(config)?;
                    }
                }
                None => {
                    let dir = self.root.join(dir_name(&key.0, key.1));
                    let log = PartitionLog::open(
                        Arc::clone(&self.disk),
                        &dir,
                        config,
                        Some(self.committer.queue()),
                    )?;
                    // A single-replica partition's durable log is all committed.
                    log.advance_single_replica_high_watermark();
                    let metrics = Arc::clone(&self.metrics);
                    log.set_sync_observer(Arc::new(move |took| metrics.fsync(took)));
                    logs.insert(key, Arc::new(log));
                }
            }
        }
        Ok(())
    }

    /// Periodic duties: checkpoints, interval fsyncs, retention.
    pub fn housekeeping(&self, now_ms: u64) {
        for ((topic, partition), log) in self.all() {
            let result = log
                .sync_if_due(now_ms)
                .and_then(|_| log.enforce_retention(now_ms))
                .and_then(|_| log.checkpoint());
            if let Err(e) = result {
                tracing::error!(%topic, partition, error = %e, "partition housekeeping failed");
            }
        }
    }

    /// Flushes and closes every log (clean shutdown).
    pub fn close_all(&self) {
        for ((topic, partition), log) in self.all() {
            if let Err(e) = log.close() {
                tracing::error!(%topic, partition, error = %e, "closing partition log failed");
            }
        }
    }
}
