//! Dynamic broker configs (KIP-226) as the replicated state keeps them, and the
//! one decision they feed: which default a topic config takes on a broker. A
//! topic's own value wins; then the value set for this broker; then the one set
//! for the whole cluster; then the broker's static settings, which the caller's
//! `LogConfig` defaults already hold (R-WIRE-16).

use super::{MetadataState, TopicInfo};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The resource name of the cluster-wide default level, as Kafka names it.
pub const CLUSTER_DEFAULT: &str = "";

/// Kafka's broker configs that set a topic config's default
/// (`ServerTopicConfigSynonyms`): broker name, topic name, and the milliseconds in
/// one unit of the broker config for those given in minutes or hours. Where one
/// topic config has several, the first set at a level wins, as in Kafka
/// (`log.retention.ms` over `log.retention.minutes` over `log.retention.hours`).
pub const TOPIC_CONFIG_SYNONYMS: &[(&str, &str, i64)] = &[
    ("log.cleanup.policy", "cleanup.policy", 1),
    ("compression.gzip.level", "compression.gzip.level", 1),
    ("compression.lz4.level", "compression.lz4.level", 1),
    ("compression.type", "compression.type", 1),
    ("compression.zstd.level", "compression.zstd.level", 1),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms", 1),
    ("log.segment.delete.delay.ms", "file.delete.delay.ms", 1),
    ("log.flush.interval.messages", "flush.messages", 1),
    ("log.flush.interval.ms", "flush.ms", 1),
    ("log.index.interval.bytes", "index.interval.bytes", 1),
    ("log.local.retention.bytes", "local.retention.bytes", 1),
    ("log.local.retention.ms", "local.retention.ms", 1),
    (
        "log.cleaner.max.compaction.lag.ms",
        "max.compaction.lag.ms",
        1,
    ),
    ("message.max.bytes", "max.message.bytes", 1),
    (
        "log.message.downconversion.enable",
        "message.downconversion.enable",
        1,
    ),
    ("log.message.format.version", "message.format.version", 1),
    (
        "log.message.timestamp.after.max.ms",
        "message.timestamp.after.max.ms",
        1,
    ),
    (
        "log.message.timestamp.before.max.ms",
        "message.timestamp.before.max.ms",
        1,
    ),
    (
        "log.message.timestamp.difference.max.ms",
        "message.timestamp.difference.max.ms",
        1,
    ),
    ("log.message.timestamp.type", "message.timestamp.type", 1),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
        1,
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        "min.compaction.lag.ms",
        1,
    ),
    ("min.insync.replicas", "min.insync.replicas", 1),
    ("log.preallocate", "preallocate", 1),
    ("log.retention.bytes", "retention.bytes", 1),
    ("log.retention.ms", "retention.ms", 1),
    ("log.retention.minutes", "retention.ms", 60_000),
    ("log.retention.hours", "retention.ms", 3_600_000),
    ("log.segment.bytes", "segment.bytes", 1),
    ("log.index.size.max.bytes", "segment.index.bytes", 1),
    ("log.roll.jitter.ms", "segment.jitter.ms", 1),
    ("log.roll.jitter.hours", "segment.jitter.ms", 3_600_000),
    ("log.roll.ms", "segment.ms", 1),
    ("log.roll.hours", "segment.ms", 3_600_000),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        1,
    ),
];

/// The broker config set at one level that gives topic config `topic_config` its
/// default there, with the value in the topic config's unit: `(broker name, value)`.
pub fn topic_default_at(
    level: &BTreeMap<String, String>,
    topic_config: &str,
) -> Option<(&'static str, String)> {
    TOPIC_CONFIG_SYNONYMS
        .iter()
        .filter(|(_, topic, _)| *topic == topic_config)
        .find_map(|&(name, _, unit_ms)| {
            let value = level.get(name)?;
            Some((name, in_unit(value, unit_ms)))
        })
}

/// The topic defaults one level sets, by topic config name; where several
/// synonyms of one topic config are set, the first of the table wins.
fn topic_defaults_of(level: &BTreeMap<String, String>) -> BTreeMap<&'static str, String> {
    let mut chosen: BTreeMap<&'static str, (usize, String)> = BTreeMap::new();
    for (name, value) in level {
        let synonym = TOPIC_CONFIG_SYNONYMS
            .iter()
            .enumerate()
            .find(|(_, (broker_name, _, _))| broker_name == name);
        let Some((rank, &(_, topic_config, unit_ms))) = synonym else {
            continue;
        };
        if chosen.get(topic_config).is_none_or(|(r, _)| rank < *r) {
            chosen.insert(topic_config, (rank, in_unit(value, unit_ms)));
        }
    }
    chosen
        .into_iter()
        .map(|(topic_config, (_, value))| (topic_config, value))
        .collect()
}

/// A minutes or hours value in milliseconds; a negative one (no limit) stays
/// negative. What does not parse is passed on unchanged for the reader to ignore,
/// as it ignores any unreadable topic config (the handler validated it).
fn in_unit(value: &str, unit_ms: i64) -> String {
    if unit_ms == 1 {
        return value.to_string();
    }
    match value.trim().parse::<i64>() {
        Ok(n) if n < 0 => "-1".to_string(),
        Ok(n) => n.saturating_mul(unit_ms).to_string(),
        Err(_) => value.to_string(),
    }
}

impl MetadataState {
    /// The dynamic configs set for `resource`: [`CLUSTER_DEFAULT`] or a broker id.
    pub fn broker_configs_of(&self, resource: &str) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(resource)
    }

    /// A broker config set dynamically for `broker`: its own level's value, else the
    /// cluster's.
    pub fn broker_config_on(&self, broker: i32, name: &str) -> Option<&str> {
        [broker.to_string(), CLUSTER_DEFAULT.to_string()]
            .iter()
            .find_map(|level| self.broker_configs.get(level)?.get(name))
            .map(String::as_str)
    }

    /// `min.insync.replicas` of a topic as the controller applies it to ISR
    /// changes (R-REPL-6): the topic's, else the cluster-wide dynamic default, else
    /// 1. A default set for one broker only is that broker's to enforce on produce.
    pub fn controller_min_isr(&self, topic: &TopicInfo) -> usize {
        let name = "min.insync.replicas";
        topic
            .configs
            .get(name)
            .or_else(|| self.broker_configs.get(CLUSTER_DEFAULT)?.get(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// A topic's configs as broker `broker` enforces them: its own, over the topic
    /// defaults set dynamically for this broker, over those set for the cluster.
    /// Borrowed when no dynamic default is set, which is the common case on the
    /// produce path.
    pub fn topic_configs_on<'a>(
        &'a self,
        topic: &'a TopicInfo,
        broker: i32,
    ) -> Cow<'a, BTreeMap<String, String>> {
        let levels = [
            self.broker_configs.get(CLUSTER_DEFAULT),
            self.broker_configs.get(&broker.to_string()),
        ];
        let mut defaults = BTreeMap::new();
        for level in levels.into_iter().flatten() {
            defaults.extend(topic_defaults_of(level));
        }
        // Broker configs that set no topic default (thread pools, the cleaner's
        // tuning) leave the produce path without a copy.
        if defaults.is_empty() {
            return Cow::Borrowed(&topic.configs);
        }
        let mut merged: BTreeMap<String, String> = defaults
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect();
        merged.extend(topic.configs.iter().map(|(k, v)| (k.clone(), v.clone())));
        Cow::Owned(merged)
    }

    /// Applies `AlterBrokerConfigs`; the handler validated names and values.
    pub(super) fn alter_broker_configs(
        &mut self,
        resource: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
        replace: bool,
    ) {
        let level = self.broker_configs.entry(resource.to_string()).or_default();
        if replace {
            level.clear();
        }
        for name in remove {
            level.remove(name);
        }
        level.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        if level.is_empty() {
            self.broker_configs.remove(resource);
        }
    }
}

/// Whether `resource` names a level of broker configs: the cluster default or a
/// broker id, as Kafka's controller checks it.
pub fn is_broker_resource(resource: &str) -> bool {
    resource == CLUSTER_DEFAULT
        || resource
            .parse::<u32>()
            .is_ok_and(|id| id <= i32::MAX as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(configs: &[(&str, &str)]) -> TopicInfo {
        TopicInfo {
            topic_id: "t".into(),
            partitions: vec![],
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn set(state: &mut MetadataState, resource: &str, configs: &[(&str, &str)]) {
        let set = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        state.alter_broker_configs(resource, &set, &[], false);
    }

    #[test]
    fn r_wire_16_topic_over_broker_over_cluster() {
        let mut state = MetadataState::default();
        let t = topic(&[("retention.ms", "1000")]);
        assert!(matches!(state.topic_configs_on(&t, 1), Cow::Borrowed(_)));
        set(&mut state, "1", &[("background.threads", "9")]);
        assert!(
            matches!(state.topic_configs_on(&t, 1), Cow::Borrowed(_)),
            "no topic default set: no copy"
        );
        set(
            &mut state,
            CLUSTER_DEFAULT,
            &[("log.retention.ms", "5"), ("min.insync.replicas", "2")],
        );
        set(&mut state, "1", &[("min.insync.replicas", "3")]);
        let on_1 = state.topic_configs_on(&t, 1);
        assert_eq!(on_1.get("retention.ms").map(String::as_str), Some("1000"));
        assert_eq!(
            on_1.get("min.insync.replicas").map(String::as_str),
            Some("3")
        );
        let on_2 = state.topic_configs_on(&t, 2);
        assert_eq!(
            on_2.get("min.insync.replicas").map(String::as_str),
            Some("2")
        );
        assert_eq!(state.broker_config_on(1, "min.insync.replicas"), Some("3"));
        assert_eq!(state.broker_config_on(2, "min.insync.replicas"), Some("2"));
        assert_eq!(state.broker_config_on(2, "log.cleaner.backoff.ms"), None);
    }

    #[test]
    fn r_wire_16_milliseconds_win_over_minutes_and_hours() {
        let mut state = MetadataState::default();
        set(&mut state, CLUSTER_DEFAULT, &[("log.retention.hours", "2")]);
        let t = topic(&[]);
        let value = |s: &MetadataState| s.topic_configs_on(&t, 1).get("retention.ms").cloned();
        assert_eq!(value(&state).as_deref(), Some("7200000"));
        set(
            &mut state,
            CLUSTER_DEFAULT,
            &[("log.retention.minutes", "3")],
        );
        assert_eq!(value(&state).as_deref(), Some("180000"));
        set(&mut state, CLUSTER_DEFAULT, &[("log.retention.ms", "7")]);
        assert_eq!(value(&state).as_deref(), Some("7"));
        // A broker's own level overrides the cluster's even through a coarser synonym.
        set(&mut state, "1", &[("log.retention.hours", "-1")]);
        assert_eq!(value(&state).as_deref(), Some("-1"));
    }

    #[test]
    fn r_wire_16_removing_the_last_config_removes_the_level() {
        let mut state = MetadataState::default();
        set(&mut state, "3", &[("log.cleanup.policy", "compact")]);
        state.alter_broker_configs("3", &BTreeMap::new(), &["log.cleanup.policy".into()], false);
        assert!(state.broker_configs.is_empty());
        assert!(is_broker_resource("") && is_broker_resource("7"));
        assert!(!is_broker_resource("-1") && !is_broker_resource("b1"));
    }
}
