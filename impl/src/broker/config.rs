use crate::log::{FsyncPolicy, LogConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Broker settings: from the TOML file, then overridden by command-line flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// This broker's id, also its Raft id (so it must be at least 1).
    pub node_id: i32,
    pub data_dir: PathBuf,
    /// Where the Kafka listener binds.
    pub listen: SocketAddr,
    /// The host and port clients are told to connect to (default: `listen`).
    pub advertised_host: Option<String>,
    pub advertised_port: Option<u16>,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub max_request_bytes: usize,
    pub max_connections: usize,
    /// Raft tick; an election takes 10 to 20 ticks.
    pub tick_ms: u64,
    /// The longest a request waits for the metadata group.
    pub metadata_timeout_ms: u64,
    /// fsync policy of partition logs: 0 means every acknowledged append is
    /// fdatasync'ed first (the default); N > 0 syncs every N ms (weaker).
    pub fsync_interval_ms: u64,
    pub segment_bytes: u64,
    /// -1 keeps data forever.
    pub retention_ms: i64,
    /// Where /metrics and /health are served, if anywhere.
    pub http_listen: Option<SocketAddr>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            data_dir: PathBuf::from("data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_host: None,
            advertised_port: None,
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 1024,
            tick_ms: 50,
            metadata_timeout_ms: 5000,
            fsync_interval_ms: 0,
            segment_bytes: crate::log::DEFAULT_SEGMENT_BYTES,
            retention_ms: 7 * 24 * 3600 * 1000,
            http_listen: None,
        }
    }
}

impl BrokerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id < 1 {
            return Err(format!("node_id {} must be at least 1", self.node_id));
        }
        if self.default_partitions < 1 {
            return Err("default_partitions must be at least 1".into());
        }
        if self.tick_ms == 0 {
            return Err("tick_ms must be positive".into());
        }
        self.log_defaults().validate().map_err(|e| e.to_string())
    }

    pub fn log_defaults(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            retention_ms: (self.retention_ms >= 0).then_some(self.retention_ms as u64),
            fsync: match self.fsync_interval_ms {
                0 => FsyncPolicy::Always,
                ms => FsyncPolicy::Interval { ms },
            },
            ..LogConfig::default()
        }
    }
}
