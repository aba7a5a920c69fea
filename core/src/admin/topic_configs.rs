//! The topic config catalogue: every topic config of Kafka 3.9 (its `LogConfig`),
//! with Kafka's type, default, valid values and broker-level synonym, and what
//! Chronik does with it. A config is either enforced, or accepted for compatibility
//! with a stated reason why it changes nothing here (R-WIRE-11); a value Chronik
//! cannot honour (log compaction, tiered storage) is refused with INVALID_CONFIG
//! rather than stored and silently ignored.

use crate::log::{compression, LogConfig};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Long {
        min: i64,
    },
    Int {
        min: i64,
        max: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    Bool,
    OneOf(&'static [&'static str]),
    /// A comma-separated list of some of these.
    ListOf(&'static [&'static str]),
    /// A Kafka version such as `2.8` or `3.0-IV1` (message.format.version).
    Version,
    /// `*`, or `partition:broker` pairs separated by commas (replication throttles).
    ThrottledReplicas,
    /// Any string (class names, Kerberos commands and rules).
    Text,
}

impl Kind {
    /// Kafka's ConfigType numbering, for DescribeConfigs v3+.
    pub fn config_type(self) -> i8 {
        match self {
            Kind::Bool => 1,
            Kind::OneOf(_) | Kind::Version | Kind::Text => 2,
            Kind::Int { .. } => 3,
            Kind::Long { .. } => 5,
            Kind::Double { .. } => 6,
            Kind::ListOf(_) | Kind::ThrottledReplicas => 7,
        }
    }

    pub fn admits(self, value: &str) -> bool {
        match self {
            Kind::Long { min } => value.trim().parse::<i64>().is_ok_and(|v| v >= min),
            Kind::Int { min, max } => value
                .trim()
                .parse::<i32>()
                .is_ok_and(|v| (min..=max).contains(&i64::from(v))),
            Kind::Double { min, max } => value
                .trim()
                .parse::<f64>()
                .is_ok_and(|v| v >= min && v <= max),
            Kind::Bool => matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false"),
            Kind::OneOf(allowed) => allowed.contains(&value.trim()),
            Kind::ListOf(allowed) => value.split(',').all(|item| allowed.contains(&item.trim())),
            Kind::Version => is_version(value.trim()),
            Kind::ThrottledReplicas => value.trim() == "*" || value.split(',').all(is_replica_pair),
            Kind::Text => true,
        }
    }

    pub fn expectation(self) -> String {
        match self {
            Kind::Long { min } => format!("a long of at least {min}"),
            Kind::Int { min, max } => format!("an int in [{min}, {max}]"),
            Kind::Double { min, max } => format!("a double in [{min}, {max}]"),
            Kind::Bool => "true or false".into(),
            Kind::OneOf(allowed) => format!("one of {}", allowed.join(", ")),
            Kind::ListOf(allowed) => format!("a list of {}", allowed.join(", ")),
            Kind::Version => "a Kafka version such as 3.0-IV1".into(),
            Kind::ThrottledReplicas => "* or partition:broker pairs".into(),
            Kind::Text => "a string".into(),
        }
    }
}

/// `MAJOR.MINOR[.PATCH][-IVn]`, the shape Kafka's MetadataVersion parses.
/// A version string as Kafka's `MetadataVersion.fromVersionString` reads it: it keeps
/// the first three segments of a 0.x version and the first two of any other, so
/// "0.10.0.0" (librdkafka's test 0092) and "3.0.1" are accepted as Kafka accepts them.
fn is_version(value: &str) -> bool {
    let (numbers, iv) = value.split_once("-IV").unwrap_or((value, "0"));
    let parts: Vec<&str> = numbers.split('.').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (2..=4).contains(&parts.len()) && parts.iter().all(|p| digits(p)) && digits(iv)
}

fn is_replica_pair(item: &str) -> bool {
    let item = item.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    item.is_empty()
        || item
            .split_once(':')
            .is_some_and(|(p, b)| digits(p) && digits(b))
}

/// What Chronik does with a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Enforced,
    /// Accepted and stored, changes nothing; the reason says why.
    NoEffect(&'static str),
}

/// Where a config's default comes from. `C` is what the broker's own settings are
/// read from: the log defaults for a topic config, the shell's whole configuration
/// for a broker config.
pub enum DefaultValue<C: 'static> {
    /// Kafka's default, which Chronik has too.
    Fixed(&'static str),
    /// A broker setting (its synonym); the second field is Kafka's default for it,
    /// so a broker configured otherwise reports STATIC_BROKER_CONFIG.
    Broker(fn(&C) -> String, &'static str),
}

impl<C> Clone for DefaultValue<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for DefaultValue<C> {}

impl<C> std::fmt::Debug for DefaultValue<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DefaultValue::Fixed(value) => write!(f, "Fixed({value:?})"),
            DefaultValue::Broker(_, kafka) => write!(f, "Broker(kafka default {kafka:?})"),
        }
    }
}

impl<C> DefaultValue<C> {
    /// The value on this broker, and whether the broker's own settings (rather than
    /// Kafka's default) chose it.
    pub fn on(self, broker: &C) -> (String, bool) {
        match self {
            DefaultValue::Fixed(v) => (v.to_string(), false),
            DefaultValue::Broker(f, kafka) => {
                let v = f(broker);
                let from_broker = v != kafka;
                (v, from_broker)
            }
        }
    }
}

pub struct TopicConfig {
    pub name: &'static str,
    pub kind: Kind,
    pub default: DefaultValue<LogConfig>,
    /// The broker config that sets its default in Kafka (`log.retention.ms`...).
    pub synonym: Option<&'static str>,
    pub effect: Effect,
    /// Values Kafka accepts that Chronik refuses, and why (compared per list item).
    pub unsupported: &'static [(&'static str, &'static str)],
    pub doc: &'static str,
}

impl TopicConfig {
    /// The default value on this broker, and whether the broker's own settings
    /// (rather than Kafka's default) chose it.
    pub fn default_value(&self, log_defaults: &LogConfig) -> (String, bool) {
        self.default.on(log_defaults)
    }
}

const NO_TIERED: &str = "tiered storage is not built; it only matters with \
                         remote.storage.enable=true, which is refused";
pub const LONG_MAX: &str = "9223372036854775807";

const fn cfg(
    name: &'static str,
    kind: Kind,
    default: DefaultValue<LogConfig>,
    synonym: Option<&'static str>,
    effect: Effect,
    doc: &'static str,
) -> TopicConfig {
    TopicConfig {
        name,
        kind,
        default,
        synonym,
        effect,
        unsupported: &[],
        doc,
    }
}

use DefaultValue::Fixed;
use Effect::{Enforced, NoEffect};

/// Kafka 3.9's topic configs in name order.
pub const TOPIC_CONFIGS: &[TopicConfig] = &[
    cfg(
        "cleanup.policy",
        Kind::ListOf(&["compact", "delete"]),
        Fixed("delete"),
        Some("log.cleanup.policy"),
        Enforced,
        "What happens to old segments: delete (by retention.ms and retention.bytes), \
         compact (the cleaner keeps the last record of every key, R-LOG-18; keyless \
         records are refused), or both.",
    ),
    cfg(
        "compression.gzip.level",
        Kind::Int { min: -1, max: 9 },
        Fixed("-1"),
        Some("compression.gzip.level"),
        NoEffect("recompression uses the codec's default level"),
        "Level of gzip when the broker recompresses (KIP-390); -1 is gzip's default.",
    ),
    cfg(
        "compression.lz4.level",
        Kind::Int { min: 1, max: 17 },
        Fixed("9"),
        Some("compression.lz4.level"),
        NoEffect("recompression uses the codec's default level"),
        "Level of lz4 when the broker recompresses (KIP-390).",
    ),
    cfg(
        "compression.type",
        Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        Fixed("producer"),
        Some("compression.type"),
        Enforced,
        "Codec of the stored batches: producer keeps the producer's; any other value \
         makes the broker recompress batches in another codec.",
    ),
    cfg(
        "compression.zstd.level",
        Kind::Int { min: -131_072, max: 22 },
        Fixed("3"),
        Some("compression.zstd.level"),
        NoEffect("recompression uses the codec's default level"),
        "Level of zstd when the broker recompresses (KIP-390).",
    ),
    cfg(
        "delete.retention.ms",
        Kind::Long { min: 0 },
        Fixed("86400000"),
        Some("log.cleaner.delete.retention.ms"),
        Enforced,
        "How long tombstones are kept on compacted topics.",
    ),
    cfg(
        "file.delete.delay.ms",
        Kind::Long { min: 0 },
        Fixed("60000"),
        Some("log.segment.delete.delay.ms"),
        NoEffect("segment files are removed as soon as the new log start is durable"),
        "How long Kafka waits before deleting a segment file.",
    ),
    cfg(
        "flush.messages",
        Kind::Long { min: 1 },
        Fixed(LONG_MAX),
        Some("log.flush.interval.messages"),
        NoEffect("fsync is the broker-wide --fsync-interval-ms policy; by default every acknowledged batch is fsynced"),
        "Force an fsync after this many messages.",
    ),
    cfg(
        "flush.ms",
        Kind::Long { min: 0 },
        Fixed(LONG_MAX),
        Some("log.flush.interval.ms"),
        NoEffect("fsync is the broker-wide --fsync-interval-ms policy; by default every acknowledged batch is fsynced"),
        "Force an fsync after this many milliseconds.",
    ),
    cfg(
        "follower.replication.throttled.replicas",
        Kind::ThrottledReplicas,
        Fixed(""),
        None,
        NoEffect("replication is not throttled"),
        "Replicas whose follower fetches are throttled.",
    ),
    cfg(
        "index.interval.bytes",
        Kind::Int { min: 0, max: i32::MAX as i64 },
        Fixed("4096"),
        Some("log.index.interval.bytes"),
        Enforced,
        "Bytes of log between two offset index entries (0: every batch).",
    ),
    cfg(
        "leader.replication.throttled.replicas",
        Kind::ThrottledReplicas,
        Fixed(""),
        None,
        NoEffect("replication is not throttled"),
        "Replicas whose leader side is throttled.",
    ),
    cfg(
        "local.retention.bytes",
        Kind::Long { min: -2 },
        Fixed("-2"),
        Some("log.local.retention.bytes"),
        NoEffect(NO_TIERED),
        "Local retention by size with tiered storage (-2: retention.bytes).",
    ),
    cfg(
        "local.retention.ms",
        Kind::Long { min: -2 },
        Fixed("-2"),
        Some("log.local.retention.ms"),
        NoEffect(NO_TIERED),
        "Local retention by time with tiered storage (-2: retention.ms).",
    ),
    cfg(
        "max.compaction.lag.ms",
        Kind::Long { min: 1 },
        Fixed(LONG_MAX),
        Some("log.cleaner.max.compaction.lag.ms"),
        Enforced,
        "The longest a record stays uncompacted.",
    ),
    cfg(
        "max.message.bytes",
        Kind::Int { min: 0, max: i32::MAX as i64 },
        Fixed("1048588"),
        Some("message.max.bytes"),
        Enforced,
        "The largest batch a produce may append (MESSAGE_TOO_LARGE beyond); its records \
         may decompress to at most 16 times this.",
    ),
    cfg(
        "message.downconversion.enable",
        Kind::Bool,
        Fixed("true"),
        Some("log.message.downconversion.enable"),
        Enforced,
        "Whether Fetch v0-3 get records converted down to message format v0/v1; false \
         answers them UNSUPPORTED_VERSION, as Kafka does (deprecated, removed in Kafka 4.0).",
    ),
    cfg(
        "message.format.version",
        Kind::Version,
        Fixed("3.0-IV1"),
        Some("log.message.format.version"),
        NoEffect("deprecated (removed in Kafka 4.0); batches are always stored as RecordBatch v2, as Kafka does from 3.0"),
        "The record format version of the topic.",
    ),
    cfg(
        "message.timestamp.after.max.ms",
        Kind::Long { min: 0 },
        Fixed(LONG_MAX),
        Some("log.message.timestamp.after.max.ms"),
        Enforced,
        "How far a CreateTime record may be ahead of the broker's clock \
         (INVALID_TIMESTAMP beyond; KIP-937).",
    ),
    cfg(
        "message.timestamp.before.max.ms",
        Kind::Long { min: 0 },
        Fixed(LONG_MAX),
        Some("log.message.timestamp.before.max.ms"),
        Enforced,
        "How far a CreateTime record may be behind the broker's clock \
         (INVALID_TIMESTAMP beyond; KIP-937).",
    ),
    cfg(
        "message.timestamp.difference.max.ms",
        Kind::Long { min: 0 },
        Fixed(LONG_MAX),
        Some("log.message.timestamp.difference.max.ms"),
        Enforced,
        "Deprecated (removed in Kafka 4.0): both bounds at once, for a side whose \
         KIP-937 config is left at its default.",
    ),
    cfg(
        "message.timestamp.type",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
        Fixed("CreateTime"),
        Some("log.message.timestamp.type"),
        Enforced,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch \
         with the broker's clock.",
    ),
    cfg(
        "min.cleanable.dirty.ratio",
        Kind::Double { min: 0.0, max: 1.0 },
        Fixed("0.5"),
        Some("log.cleaner.min.cleanable.ratio"),
        Enforced,
        "How much of a compacted log may be uncleaned before it is cleaned.",
    ),
    cfg(
        "min.compaction.lag.ms",
        Kind::Long { min: 0 },
        Fixed("0"),
        Some("log.cleaner.min.compaction.lag.ms"),
        Enforced,
        "The shortest a record stays uncompacted.",
    ),
    cfg(
        "min.insync.replicas",
        Kind::Int { min: 1, max: i32::MAX as i64 },
        Fixed("1"),
        Some("min.insync.replicas"),
        Enforced,
        "acks=all produces need this many in-sync replicas (NOT_ENOUGH_REPLICAS).",
    ),
    cfg(
        "preallocate",
        Kind::Bool,
        Fixed("false"),
        Some("log.preallocate"),
        NoEffect("segment files are not preallocated"),
        "Preallocate segment files.",
    ),
    cfg(
        "remote.log.copy.disable",
        Kind::Bool,
        Fixed("false"),
        None,
        NoEffect(NO_TIERED),
        "Stop copying segments to tiered storage.",
    ),
    cfg(
        "remote.log.delete.on.disable",
        Kind::Bool,
        Fixed("false"),
        None,
        NoEffect(NO_TIERED),
        "Delete tiered data when tiered storage is turned off.",
    ),
    TopicConfig {
        unsupported: &[("true", "tiered storage is not built")],
        ..cfg(
            "remote.storage.enable",
            Kind::Bool,
            Fixed("false"),
            None,
            Enforced,
            "Tiered storage for the topic; only false is accepted.",
        )
    },
    cfg(
        "retention.bytes",
        Kind::Long { min: i64::MIN },
        Fixed("-1"),
        Some("log.retention.bytes"),
        Enforced,
        "Old segments are deleted while a partition is larger (negative: no limit).",
    ),
    cfg(
        "retention.ms",
        Kind::Long { min: -1 },
        DefaultValue::Broker(
            |c| c.retention_ms.map_or(-1, |ms| ms as i64).to_string(),
            "604800000",
        ),
        Some("log.retention.ms"),
        Enforced,
        "Segments whose newest record is older are deleted (-1: no limit).",
    ),
    cfg(
        "segment.bytes",
        Kind::Int { min: 1024, max: i32::MAX as i64 },
        DefaultValue::Broker(|c| c.segment_bytes.to_string(), "1073741824"),
        Some("log.segment.bytes"),
        Enforced,
        "Size at which a segment is rolled (Chronik's minimum is 1024; Kafka's is 14).",
    ),
    cfg(
        "segment.index.bytes",
        Kind::Int { min: 4, max: i32::MAX as i64 },
        Fixed("10485760"),
        Some("log.index.size.max.bytes"),
        NoEffect("index files are written at their size, not preallocated"),
        "Size of a segment's preallocated index files.",
    ),
    cfg(
        "segment.jitter.ms",
        Kind::Long { min: 0 },
        Fixed("0"),
        Some("log.roll.jitter.ms"),
        NoEffect("segments roll at segment.ms exactly"),
        "Random jitter subtracted from segment.ms.",
    ),
    cfg(
        "segment.ms",
        Kind::Long { min: 1 },
        Fixed("604800000"),
        Some("log.roll.ms"),
        Enforced,
        "Age at which a segment is rolled.",
    ),
    cfg(
        "unclean.leader.election.enable",
        Kind::Bool,
        Fixed("false"),
        Some("unclean.leader.election.enable"),
        NoEffect("leaders are only ever elected from the ISR"),
        "Allow an out-of-sync replica to become leader (losing data).",
    ),
];

pub fn find(name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

/// Checks one topic config; the error message names what is wrong.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(config) = find(name) else {
        return Err(format!("unknown topic config {name}"));
    };
    if !config.kind.admits(value) {
        return Err(format!(
            "invalid value {value:?} for {name}: expected {}",
            config.kind.expectation()
        ));
    }
    let items = value.split(',').map(str::trim);
    for item in items {
        let refused = config
            .unsupported
            .iter()
            .find(|(v, _)| v.eq_ignore_ascii_case(item));
        if let Some((_, why)) = refused {
            return Err(format!("{name}={value} is not supported: {why}"));
        }
    }
    Ok(())
}

/// The codec a topic's `compression.type` asks the broker to store, None for
/// `producer` (each batch keeps its own).
pub fn target_codec(value: Option<&str>) -> Option<i16> {
    value.and_then(compression::from_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_wire_11_every_default_is_a_valid_value() {
        let defaults = LogConfig::default();
        for c in TOPIC_CONFIGS {
            let (value, _) = c.default_value(&defaults);
            assert_eq!(validate(c.name, &value), Ok(()), "{}", c.name);
        }
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "in name order, each once");
    }

    #[test]
    fn r_wire_11_values_are_checked_as_kafka_does() {
        let ok = [
            ("compression.type", "zstd"),
            ("compression.type", "uncompressed"),
            ("message.format.version", "2.8"),
            ("message.format.version", "0.10.2-IV0"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("retention.bytes", "-5"),
            ("leader.replication.throttled.replicas", "0:1,1:2"),
            ("leader.replication.throttled.replicas", "*"),
            ("unclean.leader.election.enable", "TRUE"),
            ("cleanup.policy", "delete"),
            ("compression.zstd.level", "-7"),
        ];
        for (name, value) in ok {
            assert_eq!(validate(name, value), Ok(()), "{name}={value}");
        }
        let bad = [
            ("compression.type", "brotli"),
            ("message.format.version", "three"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("retention.ms", "-2"),
            ("segment.bytes", "100"),
            ("max.message.bytes", "2147483648"),
            ("compression.gzip.level", "10"),
            ("leader.replication.throttled.replicas", "0-1"),
            ("preallocate", "yes"),
            ("cleanup.policy", "delete,archive"),
        ];
        for (name, value) in bad {
            assert!(
                validate(name, value).is_err_and(|m| m.contains("expected")),
                "{name}={value}"
            );
        }
        assert_eq!(
            validate("no.such.config", "1"),
            Err("unknown topic config no.such.config".into())
        );
    }

    #[test]
    fn r_wire_11_what_chronik_cannot_honour_is_refused() {
        for value in ["compact", "compact,delete", "delete, compact"] {
            assert_eq!(validate("cleanup.policy", value), Ok(()), "R-LOG-18");
        }
        assert!(validate("remote.storage.enable", "true").is_err());
        assert_eq!(validate("remote.storage.enable", "false"), Ok(()));
    }

    #[test]
    fn r_wire_11_compression_type_names_a_codec() {
        assert_eq!(target_codec(Some("producer")), None);
        assert_eq!(target_codec(None), None);
        assert_eq!(target_codec(Some("uncompressed")), Some(compression::NONE));
        assert_eq!(target_codec(Some("zstd")), Some(compression::ZSTD));
    }
}
