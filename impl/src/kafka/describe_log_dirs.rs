//! DescribeLogDirs (API 35, KIP-113; `kafka-log-dirs.sh --describe`, and GUIs for
//! topic sizes): the one log directory of this broker, `<data-dir>/logs`, with the
//! size of each partition log it holds (`chronik_core::admin::log_dirs`) and, from
//! v4, the file system's total and usable bytes, as Kafka's
//! `ReplicaManager.describeLogDirs` answers. The caller needs DESCRIBE on the
//! cluster; otherwise, as Kafka, no directory and CLUSTER_AUTHORIZATION_FAILED.

use super::authorize::Caller;
use super::common::str_bytes;
use super::errors;
use crate::broker::disk_reserve::space;
use crate::broker::shared::Broker;
use chronik_core::admin::log_dirs::{describe_held, Asked, HeldLog};
use chronik_core::security::acl::Operation;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

pub fn handle(
    broker: &Broker,
    caller: &Caller,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !caller.may_cluster(Operation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    let asked: Asked = request.topics.map(|topics| {
        let mut asked = std::collections::BTreeMap::new();
        for topic in topics {
            let partitions: &mut std::collections::BTreeSet<i32> =
                asked.entry(topic.topic.to_string()).or_default();
            partitions.extend(topic.partitions);
        }
        asked
    });
    DescribeLogDirsResponse::default().with_results(vec![log_dir(broker, &asked)])
}

fn log_dir(broker: &Broker, asked: &Asked) -> DescribeLogDirsResult {
    let dir = broker.config.data_dir.join("logs");
    let path = std::fs::canonicalize(&dir).unwrap_or(dir);
    let result = DescribeLogDirsResult::default().with_log_dir(str_bytes(&path.to_string_lossy()));
    let (usable, total) = match space(&path) {
        Ok(space) => space,
        Err(e) => {
            tracing::warn!(dir = %path.display(), error = %e, "DescribeLogDirs: the log directory's file system cannot be read");
            return result.with_error_code(errors::KAFKA_STORAGE_ERROR.code());
        }
    };
    let held: Vec<HeldLog> = broker
        .partitions
        .all()
        .into_iter()
        .map(|((topic, partition), log)| HeldLog {
            topic,
            partition,
            size_bytes: log.size_bytes(),
            log_end_offset: log.log_end_offset(),
            high_watermark: log.high_watermark(),
        })
        .collect();
    let topics = describe_held(&held, asked)
        .into_iter()
        .map(|(name, partitions)| {
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p.partition)
                                .with_partition_size(p.size_bytes)
                                .with_offset_lag(p.offset_lag)
                        })
                        .collect(),
                )
        })
        .collect();
    result
        .with_topics(topics)
        .with_total_bytes(i64::try_from(total).unwrap_or(i64::MAX))
        .with_usable_bytes(i64::try_from(usable).unwrap_or(i64::MAX))
}
