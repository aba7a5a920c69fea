//! The broker config catalogue (KIP-226): the configs Kafka 3.9 lets AlterConfigs
//! change on a running broker, with Kafka's type, default, level and what Chronik
//! does with each, and the read-only ones DescribeConfigs reports. The broker
//! configs that set a topic config's default take their type, default and effect
//! from the topic catalogue, so the two cannot disagree (R-WIRE-16).

use super::configs::{self, DefaultValue, Effect, Kind};
use crate::broker::config::BrokerConfig;
use chronik_core::log::LogConfig;
use chronik_core::metadata::broker_configs::TOPIC_CONFIG_SYNONYMS;
use std::collections::BTreeMap;

/// Where a dynamic config may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// For the cluster (resource name "") or one broker.
    ClusterWide,
    /// For one broker only, as Kafka's listener and SASL configs.
    PerBroker,
    /// Not at all: DescribeConfigs reports it, AlterConfigs refuses it.
    ReadOnly,
}

#[derive(Debug, Clone, Copy)]
pub struct BrokerConfigDef {
    pub name: &'static str,
    pub kind: Kind,
    pub default: BrokerDefault,
    pub level: Level,
    pub effect: Effect,
    pub doc: &'static str,
}

impl BrokerConfigDef {
    /// The value without a dynamic one, and whether the broker's static settings
    /// (rather than Kafka's default) chose it.
    pub fn static_value(&self, broker: &BrokerConfig) -> (String, bool) {
        match self.default {
            BrokerDefault::Own(default) => default.on(broker),
            BrokerDefault::Topic(default) => default.on(&broker.log_defaults()),
        }
    }
}

/// A broker config's default: its own, or that of the topic config it is the
/// broker-wide default of (read from the broker's log defaults).
#[derive(Debug, Clone, Copy)]
pub enum BrokerDefault {
    Own(DefaultValue<BrokerConfig>),
    Topic(DefaultValue<LogConfig>),
}

const THREADS: &str = "requests, replication and housekeeping run as tokio tasks on a runtime \
                       sized by the machine's cores, not in Kafka's thread pools";
const NO_KERBEROS: &str = "Chronik has no GSSAPI (Kerberos) login";
const NO_OAUTH: &str = "Chronik has no OAUTHBEARER login to refresh";
const NOT_THROTTLED: &str = "replication is not throttled";

const fn dynamic(
    name: &'static str,
    kind: Kind,
    default: DefaultValue<BrokerConfig>,
    level: Level,
    effect: Effect,
    doc: &'static str,
) -> BrokerConfigDef {
    BrokerConfigDef {
        name,
        kind,
        default: BrokerDefault::Own(default),
        level,
        effect,
        doc,
    }
}

use DefaultValue::Fixed;
use Effect::NoEffect;
use Level::{ClusterWide, PerBroker, ReadOnly};

const INT_MAX: Kind = Kind::Int {
    min: 1,
    max: i32::MAX as i64,
};
const INT_NON_NEGATIVE: Kind = Kind::Int {
    min: 0,
    max: i32::MAX as i64,
};
const INT_OR_UNLIMITED: Kind = Kind::Int {
    min: -1,
    max: i32::MAX as i64,
};

/// Kafka 3.9's dynamic broker configs that are not a topic config's default, and
/// the read-only ones Chronik reports, in name order.
const OWN_CONFIGS: &[BrokerConfigDef] = &[
    dynamic(
        "auto.create.topics.enable",
        Kind::Bool,
        DefaultValue::Broker(|c| c.auto_create_topics.to_string(), "true"),
        ReadOnly,
        Effect::Enforced,
        "Whether Metadata and Produce create unknown topics.",
    ),
    dynamic(
        "background.threads",
        INT_MAX,
        Fixed("10"),
        ClusterWide,
        NoEffect(THREADS),
        "Threads of Kafka's background tasks.",
    ),
    dynamic(
        "broker.id",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64,
        },
        DefaultValue::Broker(|c| c.node_id.to_string(), "1"),
        ReadOnly,
        Effect::Enforced,
        "This broker's id.",
    ),
    dynamic(
        "broker.rack",
        Kind::Text,
        DefaultValue::Broker(|c| c.broker_rack.clone().unwrap_or_default(), ""),
        ReadOnly,
        Effect::Enforced,
        "This broker's rack, matched against consumers' client.rack (KIP-392).",
    ),
    dynamic(
        "fetch.max.bytes",
        INT_NON_NEGATIVE,
        DefaultValue::Broker(|c| c.fetch_max_bytes.to_string(), "57671680"),
        ReadOnly,
        Effect::Enforced,
        "The most bytes of records one Fetch answer holds.",
    ),
    dynamic(
        "follower.replication.throttled.rate",
        Kind::Long { min: 0 },
        Fixed(configs::LONG_MAX),
        PerBroker,
        NoEffect(NOT_THROTTLED),
        "Bytes per second throttled followers may fetch.",
    ),
    dynamic(
        "leader.replication.throttled.rate",
        Kind::Long { min: 0 },
        Fixed(configs::LONG_MAX),
        PerBroker,
        NoEffect(NOT_THROTTLED),
        "Bytes per second a leader serves throttled replicas.",
    ),
    dynamic(
        "log.cleaner.backoff.ms",
        Kind::Long { min: 0 },
        DefaultValue::Broker(|c| c.log_cleaner_backoff_ms.to_string(), "15000"),
        ClusterWide,
        Effect::Enforced,
        "Pause of the cleaner between rounds; a dynamic value takes effect from the next round.",
    ),
    dynamic(
        "log.cleaner.dedupe.buffer.size",
        Kind::Long { min: 0 },
        DefaultValue::Broker(
            |c| c.log_cleaner_dedupe_buffer_size.to_string(),
            "134217728",
        ),
        ClusterWide,
        Effect::Enforced,
        "Memory the cleaner's key map may use in one pass; a dynamic value takes effect from the next round.",
    ),
    dynamic(
        "log.cleaner.io.buffer.load.factor",
        Kind::Double { min: 0.0, max: 1.0 },
        Fixed("0.9"),
        ClusterWide,
        NoEffect("the cleaner's key map is a hash map that grows as it needs"),
        "Load factor of the cleaner's dedupe buffer.",
    ),
    dynamic(
        "log.cleaner.io.buffer.size",
        INT_NON_NEGATIVE,
        Fixed("524288"),
        ClusterWide,
        NoEffect("the cleaner reads through the log's own reader"),
        "I/O buffer of the cleaner.",
    ),
    dynamic(
        "log.cleaner.io.max.bytes.per.second",
        Kind::Double {
            min: f64::MIN,
            max: f64::MAX,
        },
        Fixed("1.7976931348623157E308"),
        ClusterWide,
        NoEffect("the cleaner is not throttled"),
        "Throttle of the cleaner's I/O.",
    ),
    dynamic(
        "log.cleaner.threads",
        INT_NON_NEGATIVE,
        Fixed("1"),
        ClusterWide,
        NoEffect("one cleaner task per broker"),
        "Threads of the log cleaner.",
    ),
    dynamic(
        "max.connection.creation.rate",
        INT_NON_NEGATIVE,
        Fixed("2147483647"),
        ClusterWide,
        NoEffect("connection creation is not rate-limited; max.connections bounds it"),
        "New connections a second the broker accepts.",
    ),
    dynamic(
        "max.connections",
        INT_NON_NEGATIVE,
        DefaultValue::Broker(|c| c.max_connections.to_string(), "2147483647"),
        ClusterWide,
        Effect::Enforced,
        "Connections the broker accepts at once; a dynamic value holds for connections accepted after it.",
    ),
    dynamic(
        "max.connections.per.ip",
        INT_NON_NEGATIVE,
        DefaultValue::Broker(|c| c.max_connections_per_ip.to_string(), "2147483647"),
        ClusterWide,
        Effect::Enforced,
        "Connections one address may hold at once; a dynamic value holds for connections accepted after it.",
    ),
    dynamic(
        "max.connections.per.ip.overrides",
        Kind::Text,
        Fixed(""),
        ClusterWide,
        NoEffect("there are no per-address overrides; max.connections.per.ip holds for all"),
        "Per-address exceptions to max.connections.per.ip.",
    ),
    dynamic(
        "metric.reporters",
        Kind::Text,
        Fixed(""),
        ClusterWide,
        NoEffect("metrics are served in Prometheus form at /metrics (--http-listen)"),
        "Classes that report the broker's metrics.",
    ),
    dynamic(
        "num.io.threads",
        INT_MAX,
        Fixed("8"),
        ClusterWide,
        NoEffect(THREADS),
        "Threads that handle requests.",
    ),
    dynamic(
        "num.network.threads",
        INT_MAX,
        Fixed("3"),
        ClusterWide,
        NoEffect(THREADS),
        "Threads that read and write sockets.",
    ),
    dynamic(
        "num.partitions",
        INT_MAX,
        DefaultValue::Broker(|c| c.default_partitions.to_string(), "1"),
        ReadOnly,
        Effect::Enforced,
        "Partitions of an auto-created topic.",
    ),
    dynamic(
        "num.recovery.threads.per.data.dir",
        INT_MAX,
        Fixed("2"),
        ClusterWide,
        NoEffect(THREADS),
        "Threads that recover logs at start-up.",
    ),
    dynamic(
        "num.replica.fetchers",
        INT_MAX,
        Fixed("1"),
        ClusterWide,
        NoEffect(THREADS),
        "Threads that fetch from each leader.",
    ),
    dynamic(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        Kind::Long { min: 0 },
        Fixed(configs::LONG_MAX),
        PerBroker,
        NoEffect("a broker has one data directory; nothing moves between directories"),
        "Throttle of moves between log directories.",
    ),
    dynamic(
        "replica.fetch.response.max.bytes",
        INT_NON_NEGATIVE,
        DefaultValue::Broker(
            |c| c.replica_fetch_response_max_bytes.to_string(),
            "10485760",
        ),
        ReadOnly,
        Effect::Enforced,
        "The most bytes of records one follower Fetch answer holds.",
    ),
    dynamic(
        "replica.selector.class",
        Kind::Text,
        DefaultValue::Broker(|c| c.replica_selector_class.clone().unwrap_or_default(), ""),
        ReadOnly,
        Effect::Enforced,
        "RackAwareReplicaSelector sends a consumer to an in-sync replica in its rack.",
    ),
    dynamic(
        "sasl.kerberos.kinit.cmd",
        Kind::Text,
        Fixed("/usr/bin/kinit"),
        PerBroker,
        NoEffect(NO_KERBEROS),
        "Kerberos kinit command.",
    ),
    dynamic(
        "sasl.kerberos.min.time.before.relogin",
        Kind::Long { min: 0 },
        Fixed("60000"),
        PerBroker,
        NoEffect(NO_KERBEROS),
        "Sleep between Kerberos refresh attempts.",
    ),
    dynamic(
        "sasl.kerberos.principal.to.local.rules",
        Kind::Text,
        Fixed("DEFAULT"),
        PerBroker,
        NoEffect(NO_KERBEROS),
        "Rules from Kerberos principals to short names.",
    ),
    dynamic(
        "sasl.kerberos.service.name",
        Kind::Text,
        Fixed(""),
        PerBroker,
        NoEffect(NO_KERBEROS),
        "Kerberos principal name Kafka runs as.",
    ),
    dynamic(
        "sasl.kerberos.ticket.renew.jitter",
        Kind::Double { min: 0.0, max: 1.0 },
        Fixed("0.05"),
        PerBroker,
        NoEffect(NO_KERBEROS),
        "Jitter added to the Kerberos renewal time.",
    ),
    dynamic(
        "sasl.kerberos.ticket.renew.window.factor",
        Kind::Double { min: 0.0, max: 1.0 },
        Fixed("0.8"),
        PerBroker,
        NoEffect(NO_KERBEROS),
        "Share of a Kerberos ticket's life before renewal.",
    ),
    dynamic(
        "sasl.login.refresh.buffer.seconds",
        Kind::Int { min: 0, max: 3600 },
        Fixed("300"),
        PerBroker,
        NoEffect(NO_OAUTH),
        "Time before expiry at which a login refreshes.",
    ),
    dynamic(
        "sasl.login.refresh.min.period.seconds",
        Kind::Int { min: 0, max: 900 },
        Fixed("60"),
        PerBroker,
        NoEffect(NO_OAUTH),
        "Shortest wait between login refreshes.",
    ),
    dynamic(
        "sasl.login.refresh.window.factor",
        Kind::Double { min: 0.5, max: 1.0 },
        Fixed("0.8"),
        PerBroker,
        NoEffect(NO_OAUTH),
        "Share of a login's life before it refreshes.",
    ),
    dynamic(
        "sasl.login.refresh.window.jitter",
        Kind::Double {
            min: 0.0,
            max: 0.25,
        },
        Fixed("0.05"),
        PerBroker,
        NoEffect(NO_OAUTH),
        "Jitter added to the login refresh time.",
    ),
    dynamic(
        "socket.request.max.bytes",
        INT_MAX,
        DefaultValue::Broker(|c| c.max_request_bytes.to_string(), "104857600"),
        ReadOnly,
        Effect::Enforced,
        "The largest request the broker reads.",
    ),
    dynamic(
        "transaction.partition.verification.enable",
        Kind::Bool,
        Fixed("true"),
        ClusterWide,
        NoEffect("transactions are not built"),
        "Verify a transactional produce's partition first (KIP-890).",
    ),
];

/// The broker configs that are a topic config's default: the topic config's type,
/// default and effect under the broker's name. The minutes and hours forms of a
/// milliseconds config take an int or long of their own unit.
fn topic_default(broker_name: &'static str) -> Option<BrokerConfigDef> {
    let &(_, topic_name, unit_ms) = TOPIC_CONFIG_SYNONYMS
        .iter()
        .find(|(name, _, _)| *name == broker_name)?;
    let topic = configs::find(topic_name)?;
    let (kind, default) = match (unit_ms, broker_name) {
        (1, _) => (topic.kind, topic.default),
        (_, "log.retention.hours") => (INT_OR_UNLIMITED, Fixed("168")),
        (_, "log.roll.hours") => (INT_MAX, Fixed("168")),
        (_, "log.roll.jitter.hours") => (INT_NON_NEGATIVE, Fixed("0")),
        // log.retention.minutes: unset unless given.
        _ => (INT_OR_UNLIMITED, Fixed("")),
    };
    Some(BrokerConfigDef {
        default: BrokerDefault::Topic(default),
        ..dynamic(
            broker_name,
            kind,
            Fixed(""),
            ClusterWide,
            topic.effect,
            topic.doc,
        )
    })
}

/// Every broker config of the catalogue, in name order.
pub fn all() -> Vec<BrokerConfigDef> {
    let mut all: Vec<BrokerConfigDef> = TOPIC_CONFIG_SYNONYMS
        .iter()
        .filter_map(|(name, _, _)| topic_default(name))
        .chain(OWN_CONFIGS.iter().copied())
        .collect();
    all.sort_by_key(|c| c.name);
    all
}

pub fn find(name: &str) -> Option<BrokerConfigDef> {
    OWN_CONFIGS
        .iter()
        .find(|c| c.name == name)
        .copied()
        .or_else(|| {
            TOPIC_CONFIG_SYNONYMS
                .iter()
                .find(|(n, _, _)| *n == name)
                .and_then(|(n, _, _)| topic_default(n))
        })
}

/// Checks one broker config for the level `per_broker` names (a broker id, or the
/// cluster default); the message names what is wrong, as Kafka's
/// `DynamicBrokerConfig.validateConfigs` does.
pub fn validate(name: &str, value: &str, per_broker: bool) -> Result<(), String> {
    let Some(config) = find(name) else {
        return Err(format!("unknown broker config {name}"));
    };
    match config.level {
        ReadOnly => return Err(format!("Cannot update these configs dynamically: {name}")),
        PerBroker if !per_broker => {
            return Err(format!(
                "Cannot update these configs at default cluster level, broker id must be \
                 specified: {name}"
            ))
        }
        _ => {}
    }
    if !config.kind.admits(value) {
        return Err(format!(
            "invalid value {value:?} for {name}: expected {}",
            config.kind.expectation()
        ));
    }
    if let Some(topic_name) = topic_name_of(name) {
        configs::validate(topic_name, &in_topic_unit(name, value))?;
    }
    Ok(())
}

/// The topic config a broker config sets the default of.
pub fn topic_name_of(broker_name: &str) -> Option<&'static str> {
    TOPIC_CONFIG_SYNONYMS
        .iter()
        .find(|(n, _, _)| *n == broker_name)
        .map(|(_, topic, _)| *topic)
}

/// The value a minutes or hours config stands for in milliseconds, for the topic
/// config's own checks; any other value as it is.
fn in_topic_unit(broker_name: &str, value: &str) -> String {
    let level: BTreeMap<String, String> = [(broker_name.to_string(), value.to_string())].into();
    topic_name_of(broker_name)
        .and_then(|topic| chronik_core::metadata::broker_configs::topic_default_at(&level, topic))
        .map_or_else(|| value.to_string(), |(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::configs::TOPIC_CONFIGS;

    #[test]
    fn r_wire_16_every_topic_config_with_a_broker_synonym_has_it_in_the_core_table() {
        for topic in TOPIC_CONFIGS {
            if let Some(synonym) = topic.synonym {
                assert_eq!(
                    topic_name_of(synonym),
                    Some(topic.name),
                    "{synonym} sets {}",
                    topic.name
                );
            }
        }
        for (broker_name, topic_name, _) in TOPIC_CONFIG_SYNONYMS {
            assert!(configs::find(topic_name).is_some(), "{topic_name}");
            assert!(find(broker_name).is_some(), "{broker_name}");
        }
    }

    #[test]
    fn r_wire_16_every_default_is_a_valid_value_and_names_are_unique() {
        let broker = BrokerConfig::default();
        let all = all();
        for c in &all {
            let (value, _) = c.static_value(&broker);
            if c.level != ReadOnly && !value.is_empty() {
                assert_eq!(validate(c.name, &value, true), Ok(()), "{}", c.name);
            }
        }
        let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
        names.dedup();
        assert_eq!(names.len(), all.len(), "each name once");
    }

    #[test]
    fn r_wire_16_levels_and_values_are_checked_as_kafka_does() {
        assert_eq!(validate("log.retention.ms", "1000", false), Ok(()));
        assert_eq!(validate("log.retention.hours", "-1", false), Ok(()));
        assert_eq!(
            validate("log.cleanup.policy", "compact,delete", false),
            Ok(())
        );
        assert_eq!(validate("background.threads", "9", true), Ok(()));
        assert_eq!(
            validate("sasl.kerberos.min.time.before.relogin", "58000", true),
            Ok(())
        );
        let refused = [
            (
                "sasl.kerberos.min.time.before.relogin",
                "58000",
                false,
                "broker id",
            ),
            ("broker.id", "2", true, "dynamically"),
            ("log.retention.ms", "-2", false, "expected"),
            ("log.segment.bytes", "100", false, "expected"),
            ("background.threads", "0", true, "expected"),
            ("no.such.config", "1", true, "unknown"),
            ("log.cleanup.policy", "archive", false, "expected"),
        ];
        for (name, value, per_broker, why) in refused {
            assert!(
                validate(name, value, per_broker).is_err_and(|m| m.contains(why)),
                "{name}={value}"
            );
        }
    }
}
