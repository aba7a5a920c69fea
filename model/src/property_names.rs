//! The metadata model's property names, each beginning with the spec rule it checks
//! (spec/README.md traces them). Their own module, so that the model (which names the
//! property each bug switch breaks) and the properties need not import each other.

pub const START_1: &str = "R-START-1 consensus loop runs (no startup deadlock)";
pub const START_2: &str = "R-START-2 listener up without waiting for consensus";
pub const START_3: &str = "R-START-3 live brokers registered when quiescent";
pub const START_4: &str = "R-START-4 a one-voter group leads before its listener is up";
pub const PROPOSE_1: &str = "R-PROPOSE-1 a metadata write answered success is committed";
pub const PROPOSE_1_APPLIED: &str =
    "R-PROPOSE-1 a metadata write answered success is applied by every running node when quiescent";
pub const PERSIST_1: &str = "R-PERSIST-1 ack or vote implies durable";
pub const PERSIST_2: &str = "R-PERSIST-2 applied implies durable";
pub const PERSIST_2_HS: &str = "R-PERSIST-2 durable HardState loadable";
pub const PERSIST_4: &str = "R-PERSIST-4 high watermark within durable data";
pub const RECOVER_1: &str = "R-RECOVER-1 recovered log is the durable prefix";
pub const RECOVER_2: &str = "R-RECOVER-2 replay rebuilds the applied image";
pub const RECOVER_4: &str = "R-RECOVER-4 records read before a crash are readable after it";
pub const WIRE_7: &str = "R-WIRE-7 fetched records are durable and stable";
pub const I_1: &str = "I-1 election safety";
pub const I_2: &str = "I-2 log matching";
pub const I_3: &str = "I-3 leader completeness";
pub const I_4: &str = "I-4 state machine safety";
pub const I_5: &str = "I-5 metadata converges when quiescent";
pub const I_6: &str = "I-6 no acknowledged produce lost";

pub const EX_ALL_REGISTERED: &str = "example: every broker registered";
pub const EX_FORWARDED: &str = "example: a forwarded command is applied";
pub const EX_ACKED: &str = "example: a produce is acknowledged";
pub const EX_RESTART: &str = "example: a restarted broker registers again";
pub const EX_READ_AFTER_CRASH: &str = "example: acknowledged data read after a crash";
pub const EX_LOUD_FAILURE: &str = "example: an undecodable record stops recovery";
pub const EX_DAMAGE_REFUSED: &str = "example: a damaged Raft log stops a single node";
pub const EX_SNAPSHOT_INSTALLED: &str = "example: a follower installs its leader's snapshot";
pub const EX_REPAIRED: &str = "example: a node repairs its damaged Raft log from its peers";
