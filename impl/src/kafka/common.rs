//! What every Kafka API handler uses: string conversions, proposing a metadata command
//! with its Kafka error mapping, and the per-partition leadership checks. Its own file,
//! so that the handler modules (core, admin, groups) need not import each other.

use super::errors;
use crate::broker::shared::Broker;
use crate::consensus::ProposalFailure;
use crate::log::PartitionLog;
use crate::metadata::{ApplyOutcome, MetadataCommand};
use chronik_core::admin::partition_limits::Limits;
use chronik_core::admin::topics::AdminDefaults;
use chronik_core::errors::ErrorCode;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

fn failure_code(failure: &ProposalFailure) -> ErrorCode {
    match failure {
        ProposalFailure::NotLeader { .. } => errors::NOT_CONTROLLER,
        ProposalFailure::Dropped(_) | ProposalFailure::TimedOut | ProposalFailure::Stopped => {
            errors::REQUEST_TIMED_OUT
        }
    }
}

/// What this broker's configuration brings to the admin decisions.
pub fn admin_defaults(broker: &Broker) -> AdminDefaults {
    let config = &broker.config;
    AdminDefaults {
        limits: Limits {
            max_partitions: config.max_partitions,
            max_broker_partitions: config.max_broker_partitions,
        },
        default_partitions: config.default_partitions,
        default_replication_factor: config.default_replication_factor,
        node_id: config.node_id,
    }
}

/// Runs a metadata command through the Raft group: (error code, message).
pub async fn propose(
    broker: &Broker,
    command: MetadataCommand,
) -> Result<ApplyOutcome, (ErrorCode, String)> {
    match broker
        .consensus
        .propose(command, broker.metadata_timeout())
        .await
    {
        Ok(ApplyOutcome::Rejected { code, message }) => Err((code, message)),
        Ok(outcome) => Ok(outcome),
        Err(failure) => Err((failure_code(&failure), format!("{failure:?}"))),
    }
}

/// The log of a partition this broker leads, with its metadata (R-WIRE-5).
pub fn led_log<'a>(
    broker: &'a Broker,
    state: &'a crate::metadata::MetadataState,
    topic: &str,
    partition: i32,
) -> Result<(Arc<PartitionLog>, &'a crate::metadata::PartitionInfo), ErrorCode> {
    broker.local(state).led_log(topic, partition)
}

/// The one gate of every per-partition request (`LocalView::gate`, R-WIRE-5).
pub fn gate<'a>(
    broker: &'a Broker,
    state: &'a crate::metadata::MetadataState,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<(Arc<PartitionLog>, &'a crate::metadata::PartitionInfo), ErrorCode> {
    broker
        .local(state)
        .gate(topic, partition, current_leader_epoch)
}

pub use chronik_core::replication::leader_epoch_error;
