//! How the model's node ids map onto the real code's.

use chronik_model::state::NodeId;

/// Raft ids and broker ids start at 1; model node ids at 0.
pub fn real_id(n: NodeId) -> u64 {
    u64::from(n) + 1
}
