//! What the request handlers and the background tasks share: the `Broker`. Its own
//! file, below the start-up code in `mod.rs`, so that the Kafka handlers the listener
//! calls never import the module that starts the listener.

use super::config::BrokerConfig;
use super::consensus_loop::ConsensusHandle;
use super::metrics::Metrics;
use super::replication_trace::ReplicationTrace;
use crate::metadata::MetadataCommand;
use chronik_core::replication;
use chronik_core::replication::{FetchStep, PartitionKey, Partitions};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What request handlers share.
pub struct Broker {
    pub config: BrokerConfig,
    pub consensus: ConsensusHandle,
    pub partitions: Arc<Partitions>,
    /// Woken whenever a partition's high watermark moves, for Fetch long-polls.
    pub data_arrived: Notify,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// This start of the process (see `RegisterBroker::incarnation`); never 0.
    pub incarnation: u64,
    /// The consumer group coordinator (every group's, on a single node).
    pub groups: crate::groups::GroupService,
    pub metrics: Arc<Metrics>,
    /// The budget consumer Fetch answers are read into (R-WIRE-12).
    pub fetch_memory: super::response_memory::ResponseMemory,
    /// Damaged copies being repaired from their replicas (R-REPL-4).
    pub repairs: chronik_core::replication::Repairs,
    /// The authorizer's settings, if one is configured (`authorizer_enabled`); the
    /// ACLs are the metadata's.
    pub authorizer: Option<Arc<chronik_core::security::acl::Authorizer>>,
    /// The listener replicas fetch from, and how to connect to it.
    pub inter_broker: InterBroker,
    /// `--replication-trace`: one partition's changes and fetch steps, for C-9.
    pub replication_trace: Option<Arc<ReplicationTrace>>,
}

/// The inter-broker listener's name and this broker's credentials for it.
#[derive(Clone, Default)]
pub struct InterBroker {
    pub listener: String,
    pub security: crate::cluster::client::ClientSecurity,
}

impl Broker {
    /// A broker setting changed at run time with AlterConfigs (R-WIRE-16), for this
    /// broker or the whole cluster, read afresh by each use; None leaves the broker's
    /// own configuration in force.
    pub fn dynamic_setting(&self, name: &str) -> Option<u64> {
        let view = self.consensus.view();
        let value = view.state.broker_config_on(self.config.node_id, name)?;
        value.trim().parse::<u64>().ok()
    }

    /// This broker's partitions as the applied metadata `state` sees them.
    pub fn local<'a>(
        &'a self,
        state: &'a crate::metadata::MetadataState,
    ) -> replication::LocalView<'a> {
        replication::LocalView {
            state,
            partitions: &self.partitions,
            me: self.config.node_id,
            incarnation: self.incarnation,
        }
    }

    /// After a change of a partition's state here: the replication trace, if on,
    /// notes what this broker shows of its partition now.
    pub fn trace_shown(&self) {
        if let Some(trace) = &self.replication_trace {
            trace.show(&|| self.consensus.view());
        }
    }

    /// After a step of the replica fetch protocol: the replication trace, if on and
    /// of this step's partition, notes it.
    pub fn trace_step(&self, step: impl FnOnce() -> FetchStep) {
        if let Some(trace) = &self.replication_trace {
            trace.step(&|| self.consensus.view(), step());
        }
    }

    /// Runs a change of partition `key` that is a step of the replica fetch protocol
    /// (`step` says which, from its outcome): with the replication trace on and
    /// following `key`, the change and its line are made at once
    /// (`ReplicationTrace::around`).
    pub fn traced_change<R>(
        &self,
        key: &PartitionKey,
        change: impl FnOnce() -> R,
        step: impl FnOnce(&R) -> Option<FetchStep>,
    ) -> R {
        match &self.replication_trace {
            Some(trace) if trace.traces(key) => {
                trace.around(&|| self.consensus.view(), change, step)
            }
            _ => change(),
        }
    }

    /// Whether the replication trace follows `key`.
    pub fn traces(&self, key: &PartitionKey) -> bool {
        self.replication_trace
            .as_ref()
            .is_some_and(|t| t.traces(key))
    }

    pub fn metadata_timeout(&self) -> Duration {
        Duration::from_millis(self.config.metadata_timeout_ms)
    }

    /// Stores the group records a coordinator step changed, then lets its replies go,
    /// so no member hears of a generation a restarted coordinator would not know
    /// (R-GROUP-8).
    /// Returns whether every record was stored.
    pub async fn settle_groups(&self, settlement: crate::groups::Settlement) -> bool {
        let me = self.config.node_id;
        let classic = settlement.records.classic.iter().map(|(group, record)| {
            let command = MetadataCommand::StoreGroup {
                group: group.clone(),
                coordinator: me,
                record: record.clone(),
            };
            (group, command)
        });
        let consumer = settlement.records.consumer.iter().map(|(group, record)| {
            let command = MetadataCommand::StoreConsumerGroup {
                group: group.clone(),
                coordinator: me,
                record: record.clone(),
            };
            (group, command)
        });
        let commands: Vec<_> = classic.chain(consumer).collect();
        let mut stored = true;
        for (group, command) in commands {
            match self
                .consensus
                .propose(command, self.metadata_timeout())
                .await
            {
                Ok(crate::metadata::ApplyOutcome::Rejected { code, message }) => {
                    tracing::warn!(%group, %code, %message, "group record refused");
                    stored = false;
                }
                Ok(_) => {}
                Err(failure) => {
                    tracing::warn!(%group, ?failure, "storing the group record failed");
                    stored = false;
                }
            }
        }
        self.groups.settled(settlement, stored);
        stored
    }

    /// Opens the logs the current metadata assigns here, and once this start's
    /// registration is in it, removes the directories of deleted topics (R-RECOVER-8).
    pub fn reconcile_partitions(&self) {
        let view = self.consensus.view();
        let (me, start) = (self.config.node_id, self.incarnation);
        if let Err(e) = self.partitions.reconcile_in_start(&view.state, me, start) {
            tracing::error!(error = %e, "opening partition logs failed");
        }
    }
}
