//! The Kafka request handlers. Framing, headers and supported versions are the
//! `chronik-protocol` crate's (re-exported here as `codec`, `versions`,
//! `old_versions`); messages are encoded and decoded by the kafka-protocol crate.

pub mod acl_handlers;
pub mod admin_handlers;
pub mod authorize;
pub mod broker_configs;
pub use chronik_protocol::{codec, old_versions, versions};
pub mod common;
pub mod config_handlers;
pub mod consumer_group_handlers;
pub mod describe_log_dirs;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub use chronik_core::admin::topic_configs as configs;
pub use chronik_core::errors;
pub mod group_handlers;
pub mod handlers;
pub use chronik_core::log::message_format;
pub use chronik_core::log::validation as record_validation;
pub mod sasl_handlers;
pub mod scram_handlers;
pub mod waiting;
