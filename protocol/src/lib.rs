//! The Kafka wire layer between the core and the node shell: request framing and
//! headers (`codec`), the versions Chronik speaks (`versions`) and the ones Kafka 4
//! removed (`old_versions`). Messages are encoded and decoded by the kafka-protocol
//! crate. Pure: no tokio, no sockets, no clock, so the simulator's clients speak
//! through it as real clients' bytes do.

pub mod codec;
pub use chronik_core::errors;
pub mod old_versions;
pub mod versions;
