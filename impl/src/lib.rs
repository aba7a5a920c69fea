//! Chronik: a Kafka-compatible broker.
