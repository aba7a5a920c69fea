//! The consensus loop, the broker's shell around the metadata driver, on a disk that
//! fills up under its Raft log (R-PERSIST-1): the node stops for good, no write it
//! could not make durable is answered success, and its view says why, which is what
//! `main` waits on to stop the broker (as Kafka stops a broker whose metadata log
//! directory failed, KIP-858). What was acknowledged before is there after a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chronik::broker::{ConsensusLoop, Inputs, ProposalFailure, Traces};
use chronik::consensus::{Driver, DriverConfig, MetadataNode, NodeConfig, Pacing, Registration};
use chronik::disk::{Disk, MemDisk};
use chronik::metadata::{ApplyOutcome, MetadataCommand};

fn dir() -> &'static Path {
    Path::new("/data/raft")
}

fn driver_config() -> DriverConfig {
    DriverConfig {
        tick_ms: 10,
        session_timeout_ms: 10_000,
        forward_timeout_ms: 2_000,
        registration_retry_ms: 200,
        id_base: 1 << 32,
        pacing: Pacing::Whole,
        await_leader: true,
    }
}

fn registration() -> Registration {
    Registration {
        broker_id: 1,
        host: "127.0.0.1".into(),
        port: 9092,
        rack: None,
        incarnation: 1,
        listeners: Vec::new(),
        acks_before_fsync: false,
        short_copies: Vec::new(),
    }
}

fn create(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: format!("{name}-id"),
        partitions: vec![vec![1]],
        configs: Default::default(),
    }
}

fn start(mem: &MemDisk) -> Result<ConsensusLoop, Box<dyn std::error::Error>> {
    let disk: Arc<dyn Disk> = Arc::new(mem.clone());
    let node = MetadataNode::open(disk, dir(), NodeConfig::single(1))?;
    Ok(ConsensusLoop::start(
        Driver::new(node, driver_config())?,
        registration(),
        Inputs::new(),
        None,
        Traces::default(),
    )?)
}

#[tokio::test]
async fn r_persist_1_a_raft_log_on_a_full_disk_stops_the_node_and_answers_no_write(
) -> Result<(), Box<dyn std::error::Error>> {
    let mem = MemDisk::new();
    let consensus = start(&mem)?;
    let handle = consensus.handle();
    let wait = Duration::from_secs(10);
    assert_eq!(
        handle.propose(create("kept"), wait).await,
        Ok(ApplyOutcome::Done)
    );

    mem.set_capacity(Some(mem.used_bytes()));
    let refused = handle.propose(create("lost"), wait).await;
    assert_eq!(refused, Err(ProposalFailure::Stopped));
    let mut view = handle.subscribe();
    let failed = tokio::time::timeout(wait, view.wait_for(|v| v.failed.is_some())).await??;
    let why = failed.failed.clone().unwrap_or_default();
    assert!(why.to_lowercase().contains("space"), "{why}");
    drop(failed);
    // Stopped for good: later writes are refused at once, the disk's room or not.
    mem.set_capacity(None);
    assert_eq!(
        handle.propose(create("later"), wait).await,
        Err(ProposalFailure::Stopped)
    );
    drop(consensus);

    let restarted = start(&mem)?;
    let topics = restarted.handle().view().state.topics.clone();
    assert!(topics.contains_key("kept"), "{:?}", topics.keys());
    assert!(!topics.contains_key("later"), "{:?}", topics.keys());
    Ok(())
}
