mod auth;
mod batch;
mod kafka;
mod replicated;
mod storage;

pub use auth::{sasl, ITERATIONS, SALT, SERVER_NONCE};
pub use batch::record_batch;
pub use kafka::kafka_request;
pub use replicated::{metadata, peer_message};
pub use storage::{frame_reader, raft_wal};
