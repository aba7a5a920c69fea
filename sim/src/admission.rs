//! An admin client's request as a broker admits it: the simulator's CreateTopics and
//! CreatePartitions go through the core's admin decisions (`chronik_core::admin`) on
//! the asked node's view before they are proposed, as the Kafka handlers' do, so a
//! request the broker would refuse is refused here too and never reaches the log.

use chronik_core::admin::partition_limits::Refusal;
use chronik_core::admin::topics::{plan_new_partitions, plan_new_topic, AdminDefaults, NewTopic};
use chronik_core::metadata::{MetadataCommand, MetadataState};

/// Checks `command`, as the request that asks for it, against node `node_id`'s view
/// with the broker's default limits (far above what a run creates, so they refuse
/// only what the broker would). The client names its replicas itself, so an admitted
/// command is proposed as it is.
pub fn admit(
    state: &MetadataState,
    node_id: i32,
    command: &MetadataCommand,
) -> Result<(), Refusal> {
    match command {
        MetadataCommand::CreateTopic {
            name,
            partitions,
            configs,
            ..
        } => {
            let request = NewTopic {
                name: name.clone(),
                partitions: -1,
                replication_factor: -1,
                assignments: partitions.clone(),
                configs: configs.clone(),
            };
            plan_new_topic(state, AdminDefaults::broker_default(node_id), &request).map(drop)
        }
        MetadataCommand::CreatePartitions {
            topic,
            new_partitions,
        } => {
            let current = state.topics.get(topic).map_or(0, |t| t.partitions.len());
            let count = i32::try_from(current + new_partitions.len()).unwrap_or(i32::MAX);
            let assignments = Some(new_partitions.clone());
            let defaults = AdminDefaults::broker_default(node_id);
            plan_new_partitions(state, defaults, topic, count, assignments).map(drop)
        }
        _ => Ok(()),
    }
}
