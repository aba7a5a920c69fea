//! The admin APIs' decisions, before anything is proposed: whether a topic name is
//! legal, how many partitions and replicas a new topic or a CreatePartitions gets and
//! on which brokers, the cluster's partition limits, and which topic configs and
//! values are accepted. Pure functions of the request and the metadata state: the
//! Kafka handlers and the simulator's admin clients both call them, so what the
//! simulator proposes is what a broker would have accepted. Also what a
//! DescribeLogDirs answer lists of the logs a broker holds (`log_dirs`).

pub mod log_dirs;
pub mod partition_limits;
pub mod topic_configs;
pub mod topics;
