//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: topic configs
//! (R-WIRE-11) and dynamic broker configs at the cluster and the broker level
//! (KIP-226, R-WIRE-16), both kept in the replicated metadata.

use super::authorize::Caller;
use super::broker_configs::{self, BrokerConfigDef, Level};
use super::common::{propose, str_bytes};
use super::configs::{self, Effect, Kind, TOPIC_CONFIGS};
use super::errors;
use crate::broker::shared::Broker;
use crate::metadata::{MetadataCommand, MetadataState, TopicInfo};
use chronik_core::errors::ErrorCode;
use chronik_core::metadata::broker_configs::{
    is_broker_resource, topic_default_at, CLUSTER_DEFAULT,
};
use chronik_core::security::acl::Operation;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use std::collections::BTreeMap;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
// Kafka's ConfigSource numbering.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

type Refusal = (ErrorCode, String);

/// The refusal of a config resource: DescribeConfigs or AlterConfigs (`operation`)
/// on the topic, or on the cluster for a broker or broker logger.
fn config_refusal(
    caller: &Caller,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Option<Refusal> {
    let (allowed, code) = match resource_type {
        RESOURCE_TOPIC => (
            caller.may_topic(operation, name),
            errors::TOPIC_AUTHORIZATION_FAILED,
        ),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => (
            caller.may_cluster(operation),
            errors::CLUSTER_AUTHORIZATION_FAILED,
        ),
        _ => (true, errors::NONE),
    };
    (!allowed).then(|| (code, "Authorization failed.".to_string()))
}

/// What a DescribeConfigs request asked to be told besides values.
#[derive(Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
    version: i16,
}

/// One config as DescribeConfigs reports it: every level that holds a value, most
/// specific first; the first is the value in force.
struct Described<'a> {
    name: &'a str,
    levels: Vec<(&'a str, String, i8)>,
    read_only: bool,
    kind: Kind,
    doc: &'a str,
    effect: Effect,
}

pub fn describe(
    broker: &Broker,
    caller: &Caller,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let view = broker.consensus.view();
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
        version,
    };
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let name = resource.resource_name.as_str();
            let described = match config_refusal(
                caller,
                Operation::DescribeConfigs,
                resource.resource_type,
                name,
            ) {
                Some(refusal) => Err(refusal),
                None => describe_resource(broker, &view.state, resource),
            };
            match described {
                Ok(entries) => {
                    result.configs = entries.iter().map(|d| entry(d, detail)).collect();
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(str_bytes(&message));
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_resource<'a>(
    broker: &'a Broker,
    state: &'a MetadataState,
    resource: &DescribeConfigsResource,
) -> Result<Vec<Described<'a>>, Refusal> {
    // Kafka's ConfigHelper takes an empty list of keys, as a null one, for all.
    let wanted = |name: &str| {
        resource
            .configuration_keys
            .as_ref()
            .filter(|keys| !keys.is_empty())
            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
    };
    let name = resource.resource_name.as_str();
    let all = match resource.resource_type {
        RESOURCE_TOPIC => match state.topics.get(name) {
            None => return Err((errors::UNKNOWN_TOPIC_OR_PARTITION, "no such topic".into())),
            Some(topic) => TOPIC_CONFIGS
                .iter()
                .map(|c| describe_topic_config(broker, state, topic, c))
                .collect(),
        },
        RESOURCE_BROKER if name == CLUSTER_DEFAULT => describe_cluster_level(state),
        RESOURCE_BROKER if name == broker.config.node_id.to_string() => {
            describe_broker(broker, state)
        }
        RESOURCE_BROKER => {
            return Err((
                errors::INVALID_REQUEST,
                format!(
                    "Unexpected broker id, expected {} or empty string, but received {name}",
                    broker.config.node_id
                ),
            ))
        }
        _ => return Err((errors::INVALID_REQUEST, "unsupported resource type".into())),
    };
    Ok(all.into_iter().filter(|d| wanted(d.name)).collect())
}

/// A topic config: the topic's own value (DYNAMIC_TOPIC_CONFIG), then the broker
/// configs that set its default for this broker (DYNAMIC_BROKER_CONFIG) and for
/// the cluster (DYNAMIC_DEFAULT_BROKER_CONFIG), then the static default, which is
/// STATIC_BROKER_CONFIG when a broker setting chose it and DEFAULT_CONFIG otherwise.
fn describe_topic_config<'a>(
    broker: &'a Broker,
    state: &'a MetadataState,
    topic: &'a TopicInfo,
    config: &'a configs::TopicConfig,
) -> Described<'a> {
    let mut levels = Vec::new();
    if let Some(v) = topic.configs.get(config.name) {
        levels.push((config.name, v.clone(), SOURCE_DYNAMIC_TOPIC));
    }
    for (resource, source) in dynamic_levels(broker) {
        let found = state
            .broker_configs_of(&resource)
            .and_then(|level| topic_default_at(level, config.name));
        if let Some((broker_name, value)) = found {
            levels.push((broker_name, value, source));
        }
    }
    let (default, from_broker) = config.default_value(&broker.config.log_defaults());
    let default_source = if from_broker {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    };
    levels.push((
        config.synonym.unwrap_or(config.name),
        default,
        default_source,
    ));
    Described {
        name: config.name,
        levels,
        read_only: false,
        kind: config.kind,
        doc: config.doc,
        effect: config.effect,
    }
}

/// This broker's dynamic levels, most specific first.
fn dynamic_levels(broker: &Broker) -> [(String, i8); 2] {
    [
        (broker.config.node_id.to_string(), SOURCE_DYNAMIC_BROKER),
        (CLUSTER_DEFAULT.to_string(), SOURCE_DYNAMIC_DEFAULT_BROKER),
    ]
}

/// Every broker config of the catalogue as this broker has it.
fn describe_broker<'a>(broker: &'a Broker, state: &'a MetadataState) -> Vec<Described<'a>> {
    broker_configs::all()
        .into_iter()
        .map(|config| {
            let mut levels = Vec::new();
            if config.level != Level::ReadOnly {
                for (resource, source) in dynamic_levels(broker) {
                    if let Some(v) = state
                        .broker_configs_of(&resource)
                        .and_then(|level| level.get(config.name))
                    {
                        levels.push((config.name, v.clone(), source));
                    }
                }
            }
            let (value, from_broker) = config.static_value(&broker.config);
            if !value.is_empty() {
                let source = if from_broker {
                    SOURCE_STATIC_BROKER
                } else {
                    SOURCE_DEFAULT
                };
                levels.push((config.name, value, source));
            }
            broker_described(config, levels)
        })
        .collect()
}

/// The cluster level (resource name ""): only what is set there, as Kafka
/// describes it.
fn describe_cluster_level(state: &MetadataState) -> Vec<Described<'_>> {
    let Some(level) = state.broker_configs_of(CLUSTER_DEFAULT) else {
        return Vec::new();
    };
    level
        .iter()
        .filter_map(|(name, value)| {
            let config = broker_configs::find(name)?;
            let levels = vec![(config.name, value.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER)];
            Some(broker_described(config, levels))
        })
        .collect()
}

fn broker_described<'a>(
    config: BrokerConfigDef,
    levels: Vec<(&'a str, String, i8)>,
) -> Described<'a> {
    Described {
        name: config.name,
        levels,
        read_only: config.level == Level::ReadOnly,
        kind: config.kind,
        doc: config.doc,
        effect: config.effect,
    }
}

fn entry(d: &Described, detail: Detail) -> DescribeConfigsResourceResult {
    let (value, source) = d
        .levels
        .first()
        .map_or((None, SOURCE_DEFAULT), |(_, v, s)| (Some(str_bytes(v)), *s));
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(d.name))
        .with_value(value)
        .with_read_only(d.read_only)
        .with_config_source(source);
    if detail.synonyms && detail.version >= 1 {
        entry.synonyms = d
            .levels
            .iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(Some(str_bytes(value)))
                    .with_source(*source)
            })
            .collect();
    }
    if detail.version >= 3 {
        entry.config_type = d.kind.config_type();
        if detail.documentation {
            entry.documentation = Some(str_bytes(&documentation(d.doc, d.effect)));
        }
    }
    entry
}

/// Kafka's meaning of the config, and Chronik's word on it where it has no effect.
fn documentation(doc: &str, effect: Effect) -> String {
    match effect {
        Effect::Enforced => doc.to_string(),
        Effect::NoEffect(why) => format!("{doc} Accepted, no effect in Chronik: {why}."),
    }
}

/// A config change the handlers decoded, for one resource.
struct Change {
    set: BTreeMap<String, String>,
    remove: Vec<String>,
    /// AlterConfigs: what the request does not name goes back to its default.
    replace: bool,
}

/// Validates and applies a change to a topic's or a broker level's configs.
async fn change_configs(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    change: Change,
    validate_only: bool,
) -> Result<(), Refusal> {
    let command = match resource_type {
        RESOURCE_TOPIC => topic_change(broker, name, change)?,
        RESOURCE_BROKER => broker_change(broker, name, change)?,
        _ => {
            return Err((
                errors::INVALID_REQUEST,
                "only topic and broker configs can be altered".into(),
            ))
        }
    };
    if validate_only {
        return Ok(());
    }
    propose(broker, command).await?;
    broker.reconcile_partitions();
    Ok(())
}

fn topic_change(broker: &Broker, topic: &str, change: Change) -> Result<MetadataCommand, Refusal> {
    if !broker.consensus.view().state.topics.contains_key(topic) {
        return Err((
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("no topic {topic}"),
        ));
    }
    for (name, value) in &change.set {
        configs::validate(name, value).map_err(|m| (errors::INVALID_CONFIG, m))?;
    }
    if let Some(unknown) = change.remove.iter().find(|n| configs::find(n).is_none()) {
        return Err((
            errors::INVALID_CONFIG,
            format!("unknown topic config {unknown}"),
        ));
    }
    Ok(MetadataCommand::AlterTopicConfigs {
        topic: topic.to_string(),
        set: change.set,
        remove: change.remove,
        replace: change.replace,
    })
}

/// A broker level: "" (the cluster) or this broker's id, as Kafka's
/// ConfigAdminManager allows; the values as `DynamicBrokerConfig` checks them.
fn broker_change(
    broker: &Broker,
    resource: &str,
    change: Change,
) -> Result<MetadataCommand, Refusal> {
    let me = broker.config.node_id.to_string();
    if !is_broker_resource(resource) || (resource != CLUSTER_DEFAULT && resource != me) {
        return Err((
            errors::INVALID_REQUEST,
            format!("Unexpected broker id, expected {me} or empty string, but received {resource}"),
        ));
    }
    let per_broker = resource != CLUSTER_DEFAULT;
    for (name, value) in &change.set {
        broker_configs::validate(name, value, per_broker)
            .map_err(|m| (errors::INVALID_CONFIG, m))?;
    }
    for name in &change.remove {
        match broker_configs::find(name) {
            None => {
                return Err((
                    errors::INVALID_CONFIG,
                    format!("unknown broker config {name}"),
                ))
            }
            Some(c) if c.level == Level::ReadOnly => {
                return Err((
                    errors::INVALID_CONFIG,
                    format!("Cannot update these configs dynamically: {name}"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(MetadataCommand::AlterBrokerConfigs {
        resource: resource.to_string(),
        set: change.set,
        remove: change.remove,
        replace: change.replace,
    })
}

pub async fn alter(
    broker: &Broker,
    caller: &Caller,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let set = resource
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let names = resource.configs.iter().map(|c| c.name.as_str());
        let change = match duplicate_keys(names) {
            Some(refusal) => Err(refusal),
            None => Ok(Change {
                set,
                remove: vec![],
                replace: true,
            }),
        };
        let (code, message) = outcome_fields(
            authorized_change(
                broker,
                caller,
                resource.resource_type,
                &resource.resource_name,
                change,
                request.validate_only,
            )
            .await,
        );
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code.code())
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// A resource's change naming one config twice is refused whole, as Kafka's
/// ConfigAdminManager refuses it: which of the two would win is no answer to give.
fn duplicate_keys<'a>(names: impl Iterator<Item = &'a str>) -> Option<Refusal> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Some((
                errors::INVALID_REQUEST,
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
    }
    None
}

pub async fn incremental_alter(
    broker: &Broker,
    caller: &Caller,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let name = &resource.resource_name;
        let names = resource.configs.iter().map(|c| c.name.as_str());
        let change = match duplicate_keys(names) {
            Some(refusal) => Err(refusal),
            None => incremental_change(broker, resource.resource_type, name, &resource.configs),
        };
        let (code, message) = outcome_fields(
            authorized_change(
                broker,
                caller,
                resource.resource_type,
                name,
                change,
                request.validate_only,
            )
            .await,
        );
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code.code())
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// A change, once the caller may alter the resource (which is answered first, so
/// nothing about the resource leaks to a caller who may not).
async fn authorized_change(
    broker: &Broker,
    caller: &Caller,
    resource_type: i8,
    name: &str,
    change: Result<Change, Refusal>,
    validate_only: bool,
) -> Result<(), Refusal> {
    if let Some(refusal) = config_refusal(caller, Operation::AlterConfigs, resource_type, name) {
        return Err(refusal);
    }
    change_configs(broker, resource_type, name, change?, validate_only).await
}

fn outcome_fields(
    outcome: Result<(), Refusal>,
) -> (ErrorCode, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (errors::NONE, None),
        Err((code, message)) => (code, Some(str_bytes(&message))),
    }
}

/// The SET, DELETE, APPEND and SUBTRACT operations of one resource as a change
/// of its stored configs; APPEND and SUBTRACT start from the current value (the
/// resource's own, else its default), as Kafka's ConfigAdminManager does.
fn incremental_change(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    operations: &[incremental_alter_configs_request::AlterableConfig],
) -> Result<Change, Refusal> {
    let view = broker.consensus.view();
    let current = match resource_type {
        RESOURCE_TOPIC => view.state.topics.get(name).map(|t| t.configs.clone()),
        RESOURCE_BROKER => view.state.broker_configs_of(name).cloned(),
        _ => None,
    }
    .unwrap_or_default();
    let mut change = Change {
        set: BTreeMap::new(),
        remove: Vec::new(),
        replace: false,
    };
    for c in operations {
        let config = c.name.to_string();
        match (c.config_operation, &c.value) {
            (0, Some(v)) => {
                change.set.insert(config, v.to_string());
            }
            (1, _) => change.remove.push(config),
            (op @ (2 | 3), Some(v)) => {
                let (kind, default) = list_config(broker, resource_type, &config)?;
                let now = change
                    .set
                    .get(&config)
                    .or(current.get(&config))
                    .cloned()
                    .unwrap_or(default);
                let list = list_operation(&config, kind, &now, op == 2, v)
                    .map_err(|m| (errors::INVALID_CONFIG, m))?;
                change.set.insert(config, list);
            }
            (op, _) => {
                return Err((
                    errors::INVALID_REQUEST,
                    format!("operation {op} on {config} is not supported"),
                ))
            }
        }
    }
    Ok(change)
}

/// The type and default of a config APPEND or SUBTRACT names.
fn list_config(broker: &Broker, resource_type: i8, name: &str) -> Result<(Kind, String), Refusal> {
    let found = if resource_type == RESOURCE_BROKER {
        broker_configs::find(name).map(|c| (c.kind, c.static_value(&broker.config).0))
    } else {
        configs::find(name).map(|c| (c.kind, c.default_value(&broker.config.log_defaults()).0))
    };
    found.ok_or_else(|| (errors::INVALID_CONFIG, format!("unknown config {name}")))
}

/// APPEND (`append`) or SUBTRACT of the comma-separated items in `value` to a list
/// config's current value; an error for a config that is not a list.
fn list_operation(
    name: &str,
    kind: Kind,
    current: &str,
    append: bool,
    value: &str,
) -> Result<String, String> {
    if !matches!(kind, Kind::ListOf(_) | Kind::ThrottledReplicas) {
        return Err(format!(
            "{name} is not a list: it cannot be appended to or subtracted from"
        ));
    }
    let mut items: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if append && !items.contains(&item) {
            items.push(item);
        } else if !append {
            items.retain(|i| *i != item);
        }
    }
    Ok(items.join(","))
}
