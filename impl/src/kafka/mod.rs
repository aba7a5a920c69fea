//! The Kafka wire protocol: framing, headers, supported versions, and the request
//! handlers. Messages are encoded and decoded by the kafka-protocol crate (0.18, and
//! 0.15 for the versions Kafka 4 removed: `old_versions.rs`).

pub mod acl_handlers;
pub mod admin_handlers;
pub mod authorize;
pub mod broker_configs;
pub mod codec;
pub mod common;
pub mod config_handlers;
pub mod configs;
pub mod consumer_group_handlers;
pub mod describe_topic_partitions;
pub use chronik_core::errors;
pub mod group_handlers;
pub mod handlers;
pub use chronik_core::log::message_format;
pub mod old_versions;
pub mod partition_limits;
pub use chronik_core::log::validation as record_validation;
pub mod sasl_handlers;
pub mod scram_handlers;
pub mod versions;
pub mod waiting;
