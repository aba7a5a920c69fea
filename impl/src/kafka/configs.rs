//! The topic configs Chronik knows: their defaults (from the broker's settings) and
//! what values it accepts. A value for a behaviour Chronik does not implement (log
//! compaction, broker-side compression) is refused with
//! INVALID_CONFIG rather than stored and silently ignored.

use crate::broker::BrokerConfig;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Long { min: i64 },
    Int { min: i64 },
    OneOf(&'static [&'static str]),
    Bool,
}

impl Kind {
    /// Kafka's ConfigType numbering, for DescribeConfigs v3+.
    pub fn config_type(self) -> i8 {
        match self {
            Kind::Bool => 1,
            Kind::OneOf(_) => 2,
            Kind::Int { .. } => 3,
            Kind::Long { .. } => 5,
        }
    }
}

pub struct TopicConfig {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn(&BrokerConfig) -> String,
}

pub const TOPIC_CONFIGS: &[TopicConfig] = &[
    TopicConfig {
        name: "cleanup.policy",
        kind: Kind::OneOf(&["delete"]),
        default: |_| "delete".into(),
    },
    TopicConfig {
        name: "compression.type",
        kind: Kind::OneOf(&["producer"]),
        default: |_| "producer".into(),
    },
    TopicConfig {
        name: "index.interval.bytes",
        kind: Kind::Int { min: 1 },
        default: |_| "4096".into(),
    },
    TopicConfig {
        name: "max.message.bytes",
        kind: Kind::Int { min: 0 },
        default: |_| "1048588".into(),
    },
    TopicConfig {
        name: "message.timestamp.after.max.ms",
        kind: Kind::Long { min: 0 },
        default: |_| i64::MAX.to_string(),
    },
    TopicConfig {
        name: "message.timestamp.before.max.ms",
        kind: Kind::Long { min: 0 },
        default: |_| i64::MAX.to_string(),
    },
    TopicConfig {
        name: "message.timestamp.difference.max.ms",
        kind: Kind::Long { min: 0 },
        default: |_| i64::MAX.to_string(),
    },
    TopicConfig {
        name: "message.timestamp.type",
        kind: Kind::OneOf(&["CreateTime", "LogAppendTime"]),
        default: |_| "CreateTime".into(),
    },
    TopicConfig {
        name: "min.insync.replicas",
        kind: Kind::Int { min: 1 },
        default: |_| "1".into(),
    },
    TopicConfig {
        name: "retention.bytes",
        kind: Kind::Long { min: -1 },
        default: |_| "-1".into(),
    },
    TopicConfig {
        name: "retention.ms",
        kind: Kind::Long { min: -1 },
        default: |c| c.retention_ms.to_string(),
    },
    TopicConfig {
        name: "segment.bytes",
        kind: Kind::Int { min: 1024 },
        default: |c| c.segment_bytes.to_string(),
    },
    TopicConfig {
        name: "segment.ms",
        kind: Kind::Long { min: 1 },
        default: |_| "604800000".into(),
    },
    TopicConfig {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
        default: |_| "false".into(),
    },
];

pub fn find(name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

/// Checks one topic config; the error message names what is wrong.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(config) = find(name) else {
        return Err(format!("unknown topic config {name}"));
    };
    let ok = match config.kind {
        Kind::Long { min } => value.parse::<i64>().is_ok_and(|v| v >= min),
        Kind::Int { min } => value.parse::<i32>().is_ok_and(|v| i64::from(v) >= min),
        Kind::OneOf(allowed) => allowed.contains(&value),
        Kind::Bool => matches!(value, "true" | "false"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid value {value:?} for {name} ({:?})",
            config.kind
        ))
    }
}
