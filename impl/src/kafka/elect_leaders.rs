//! ElectLeaders (API 43, `kafka-leader-election.sh`), R-CLUSTER-3: the preferred type
//! moves each named partition's leadership back to its preferred replica if that is
//! live and in the ISR. Unclean elections are not built (an out-of-sync replica never
//! leads here), so the unclean type elects nothing: ELECTION_NOT_NEEDED where the
//! partition has a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE where it has none.

use super::authorize::Caller;
use super::common::{propose, str_bytes, topic_name};
use super::errors;
use crate::broker::shared::Broker;
use crate::metadata::{ApplyOutcome, MetadataCommand, MetadataState};
use chronik_core::errors::ErrorCode;
use chronik_core::security::acl::Operation;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    broker: &Broker,
    caller: &Caller,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let refusal = if !caller.may_cluster(Operation::Alter) {
        Some(errors::CLUSTER_AUTHORIZATION_FAILED)
    } else if !matches!(request.election_type, PREFERRED | UNCLEAN) {
        Some(errors::INVALID_REQUEST)
    } else {
        None
    };
    let Some(topics) = request.topic_partitions else {
        // Every partition, as Kafka does for a null list; its results are not
        // listed (Kafka's controller ignores them too).
        if refusal.is_none() && request.election_type == PREFERRED {
            elect_every_partition(broker).await;
        }
        return answer(refusal, Vec::new(), version);
    };
    let mut results = Vec::new();
    for topic in topics {
        let mut partition_result = Vec::new();
        for partition in topic.partitions {
            let (code, message) = match refusal {
                Some(code) if version == 0 => (code, None),
                Some(_) => continue,
                None => elect(broker, request.election_type, &topic.topic.0, partition).await,
            };
            partition_result.push(
                PartitionResult::default()
                    .with_partition_id(partition)
                    .with_error_code(code.code())
                    .with_error_message(message.as_deref().map(str_bytes)),
            );
        }
        results.push(
            ReplicaElectionResult::default()
                .with_topic(topic_name(&topic.topic.0))
                .with_partition_result(partition_result),
        );
    }
    answer(refusal, results, version)
}

/// v1+ carries a request-wide error; v0 had only the per-partition ones.
fn answer(
    refusal: Option<ErrorCode>,
    results: Vec<ReplicaElectionResult>,
    version: i16,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default().with_replica_election_results(results);
    if version >= 1 {
        response.error_code = refusal.unwrap_or(errors::NONE).code();
    }
    response
}

/// One partition's election: decided in the current view, applied by the metadata
/// only if the partition is still as it was decided on.
async fn elect(
    broker: &Broker,
    election_type: i8,
    topic: &str,
    partition: i32,
) -> (ErrorCode, Option<String>) {
    let view = broker.consensus.view();
    let Some(p) = view.state.partition(topic, partition) else {
        return (errors::UNKNOWN_TOPIC_OR_PARTITION, None);
    };
    if election_type == UNCLEAN {
        return match p.leader {
            Some(_) => (errors::ELECTION_NOT_NEEDED, None),
            None => (
                errors::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                Some("unclean leader elections are not supported".to_string()),
            ),
        };
    }
    if let Err(ApplyOutcome::Rejected { code, message }) =
        p.preferred_election(&view.state.live_brokers())
    {
        return (code, Some(message));
    }
    let command = MetadataCommand::ElectPreferredLeader {
        topic: topic.to_string(),
        partition,
        partition_epoch: p.partition_epoch,
    };
    match propose(broker, command).await {
        Ok(_) => (errors::NONE, None),
        Err((code, message)) => (code, Some(message)),
    }
}

/// Elects the preferred replica of every partition where it is live, in the ISR and
/// not leading. The number elected.
pub async fn elect_every_partition(broker: &Broker) -> usize {
    let state: std::sync::Arc<MetadataState> = broker.consensus.view().state;
    let mut elected = 0;
    for command in chronik_core::metadata::preferred::preferred_elections(
        &state,
        chronik_core::metadata::preferred::MAX_ELECTIONS_PER_REBALANCE,
    ) {
        if propose(broker, command).await.is_ok() {
            elected += 1;
        }
    }
    elected
}
