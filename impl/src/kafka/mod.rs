//! The Kafka wire protocol: framing, headers, supported versions, and the request
//! handlers. Messages are encoded and decoded by the kafka-protocol crate.

pub mod acl_handlers;
pub mod admin_handlers;
pub mod authorize;
pub mod codec;
pub mod common;
pub mod configs;
pub mod consumer_group_handlers;
pub mod errors;
pub mod group_handlers;
pub mod handlers;
pub mod partition_limits;
pub mod record_validation;
pub mod sasl_handlers;
pub mod scram_handlers;
pub mod versions;
