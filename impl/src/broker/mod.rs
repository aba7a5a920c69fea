//! The production shell: tokio, real files, a real clock. Start-up order (R-START-1,
//! ARCHITECTURE.md): open and recover storage, start the consensus loop, bind the
//! Kafka listener, then register this broker in the background, retrying until the
//! registration is applied. Nothing in start-up waits on consensus.

pub mod bootstrap_credentials;
pub mod config;
mod connection_limits;
mod consensus_loop;
pub mod data_dir_lock;
pub(crate) mod disk_reserve;
mod file_limit;
mod http;
mod identity;
pub mod listeners;
mod log_cleaner;
mod metrics;
mod raft_trace;
mod replica_fetcher;
mod replication_trace;
mod request_memory;
pub mod response_memory;
mod scrub;
mod server;
pub mod shared;
mod tls;

pub use chronik_core::replication::{self, log_config, Partitions};
pub use config::BrokerConfig;
pub use consensus_loop::{
    ConsensusHandle, ConsensusLoop, Inputs, MetadataView, ProposalFailure, Traces,
};
pub use metrics::Metrics;
pub use shared::{now_ms, Broker};

use crate::consensus::{
    refuse_partition_data_without_metadata, Driver, DriverConfig, MetadataNode, NodeConfig, Pacing,
    Registration,
};
use crate::disk::{Disk, RealDisk};
use crate::log::GroupCommitter;
use crate::metadata::{ApplyOutcome, Endpoint, MetadataCommand};
use chronik_core::replication::PartitionEvents;
use chronik_core::replication::{FetchStep, RepairStep};
use disk_reserve::DiskReserve;
use listeners::ListenerSpec;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls::Tls;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub struct RunningBroker {
    pub broker: Arc<Broker>,
    consensus: ConsensusLoop,
    tasks: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
    local_addrs: Vec<(String, SocketAddr)>,
    /// The thread that runs the partition logs' group commit rounds.
    _flusher: GroupCommitter,
    /// Released when the broker is dropped, after everything above.
    _lock: data_dir_lock::DataDirLock,
}

impl RunningBroker {
    pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningBroker> {
        config.validate().map_err(anyhow::Error::msg)?;
        let needed = file_limit::needed(config.max_connections, config.max_broker_partitions);
        let fd_limit = file_limit::raise_to_hard_limit(needed).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            needed
        });
        let segment_files =
            file_limit::segment_files(config.max_open_segment_files, fd_limit, needed);
        let disk: Arc<dyn Disk> = Arc::new(RealDisk);
        let lock = data_dir_lock::acquire(&config.data_dir)?;
        // Before anything is written: a data directory serves the node and voter set
        // it was first started with (R-START-5).
        let started_as = identity::Identity::new(config.node_id, &config.voter_ids());
        identity::check(disk.as_ref(), &config.data_dir, &started_as)?;
        let reserve = DiskReserve::new(&config.data_dir, config.disk_reserve_bytes);
        reserve.release_if_short().map_err(|e| {
            anyhow::anyhow!("the disk reserve in {}: {e}", config.data_dir.display())
        })?;
        // 1. Storage: the metadata node recovers its Raft log and snapshot.
        refuse_partition_data_without_metadata(
            disk.as_ref(),
            &config.data_dir.join("metadata"),
            &config.data_dir.join("logs"),
        )?;
        let mut node = MetadataNode::open(
            Arc::clone(&disk),
            &config.data_dir.join("metadata"),
            NodeConfig {
                voters: config.voter_ids(),
                ..NodeConfig::single(config.node_id as u64)
            },
        )?;
        let incarnation = next_incarnation(disk.as_ref(), &config.data_dir)?;
        let metrics = Arc::new(Metrics::default());
        let flusher = GroupCommitter::start();
        let partitions = Arc::new(
            Partitions::new(
                Arc::clone(&disk),
                config.data_dir.join("logs"),
                config.log_defaults(),
                Arc::clone(&metrics) as Arc<dyn PartitionEvents>,
                flusher.queue(),
            )
            .with_open_file_limit(segment_files),
        );
        // 2. The consensus loop runs before anything could await a proposal (after
        //    replaying the committed metadata, which needs no peer).
        //    The peer transport binds its listener and connects in the background:
        //    no peer is waited for.
        let inputs = Inputs::new();
        let transport = match config.peer_listen_addr() {
            Some(addr) => {
                let peers = config
                    .voters
                    .iter()
                    .map(|v| (v.id as u64, v.peer))
                    .collect();
                Some(
                    crate::cluster::Transport::start(
                        config.node_id as u64,
                        addr,
                        peers,
                        inputs.inbound(),
                        peer_security(&config)?,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("peer listener on {addr}: {e}"))?,
                )
            }
            None => None,
        };
        // 3. The listeners are bound (connections queue; nothing is served yet), so
        //    that the registration names the ports clients will reach. The TLS files
        //    are loaded now: a broken certificate stops the start, not a client.
        let tls = Tls::from_config(&config).map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
        let inter_broker = inter_broker(&config).map_err(|e| anyhow::anyhow!(e))?;
        bootstrap_credentials::pending(&config.data_dir)?;
        // The HTTP port is bound before the Kafka ports, so a probe of /health or
        // /metrics made the moment the Kafka port opens waits in the backlog instead of
        // being refused while the logs are reconciled.
        let http = match config.http_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("http listener on {addr}: {e}"))?,
            ),
            None => None,
        };
        let bound = bind_listeners(&config).await?;
        let endpoints: Vec<Endpoint> = bound.iter().map(|b| b.endpoint.clone()).collect();
        let local_addr = bound[0].local_addr;
        let advertised_host = endpoints[0].host.clone();
        let advertised_port = endpoints[0].port;
        // 4. The loop starts, with this broker's registration among its duties
        //    (R-START-3); a single node elects itself and registers in its first step
        //    (R-START-4), so its first Metadata answer already lists it.
        let driver_config = DriverConfig {
            tick_ms: config.tick_ms,
            session_timeout_ms: config.session_timeout_ms,
            forward_timeout_ms: config.metadata_timeout_ms,
            registration_retry_ms: 200,
            id_base: incarnation << 32,
            pacing: Pacing::Whole,
            await_leader: true,
        };
        // The replayed metadata, before the loop's first step: the partition logs it
        // assigns here are opened now, so that the registration names the copies
        // their recovery found short of records (R-REPL-4), and so that no client
        // can ask for one first. Directories of deleted topics go once the metadata
        // holds this start's registration: just after the first step on a single
        // node, later in a cluster (R-RECOVER-8).
        let replication_trace = open_replication_trace(&config, incarnation, &partitions)?;
        if let Some(trace) = &replication_trace {
            let trace = Arc::clone(trace);
            node.tap_applies(Box::new(move |index, state| trace.applied(index, state)));
        }
        let driver = Driver::new(node, driver_config)?;
        partitions.reconcile_in_start(&driver.view().state, config.node_id, incarnation)?;
        let registration = Registration {
            broker_id: config.node_id,
            host: advertised_host.clone(),
            port: advertised_port,
            rack: config.broker_rack.clone(),
            incarnation,
            listeners: endpoints,
            acks_before_fsync: config.log_defaults().fsync.acks_before_fsync(),
            short_copies: partitions.short_copies()?,
        };
        let raft_trace = match &config.raft_trace {
            Some(path) => Some(
                raft_trace::RaftTrace::open(path, config.node_id as u64)
                    .map_err(|e| anyhow::anyhow!("Raft trace {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let traces = consensus_loop::Traces {
            raft: raft_trace,
            replication: replication_trace.clone(),
        };
        let consensus = ConsensusLoop::start(driver, registration, inputs, transport, traces)?;
        // A single node registered in the loop's first step: its deleted topics'
        // directories go now, before anything is served.
        let registered = consensus.handle().view().state;
        partitions.reconcile_in_start(&registered, config.node_id, incarnation)?;
        let broker = Arc::new(Broker {
            config: config.clone(),
            consensus: consensus.handle(),
            partitions,
            data_arrived: Notify::new(),
            advertised_host,
            advertised_port,
            incarnation,
            groups: crate::groups::GroupService::new(
                config.group_config(),
                config.consumer_group_config(),
            ),
            metrics: Arc::clone(&metrics),
            repairs: Default::default(),
            fetch_memory: response_memory::ResponseMemory::new(
                config.fetch_response_memory_bytes,
                Arc::clone(&metrics),
            ),
            inter_broker,
            authorizer: config
                .authorizer_enabled
                .then(|| Arc::new(config.authorizer())),
            replication_trace,
        });
        let shared = server::Listeners::new(&broker, tls);
        let local_addrs = bound
            .iter()
            .map(|b| (b.spec.name.clone(), b.local_addr))
            .collect();
        let mut tasks: Vec<_> = bound
            .into_iter()
            .map(|b| {
                tokio::spawn(server::serve(
                    Arc::clone(&broker),
                    b.listener,
                    b.spec,
                    shared.clone(),
                ))
            })
            .collect();
        if let Some(http) = http {
            tasks.push(tokio::spawn(http::serve_http(Arc::clone(&broker), http)));
        }
        tasks.push(tokio::spawn(bootstrap_credentials::apply(
            broker.consensus.clone(),
            config.data_dir.clone(),
            broker.metadata_timeout(),
        )));
        tasks.push(tokio::spawn(follow_metadata(Arc::clone(&broker))));
        tasks.push(tokio::spawn(housekeeping(Arc::clone(&broker))));
        tasks.push(tokio::spawn(keep_disk_reserve(Arc::new(reserve))));
        tasks.push(tokio::spawn(group_timers(Arc::clone(&broker))));
        // 5. Replication: a fetcher per peer, and the leader's ISR upkeep.
        for voter in config.voters.iter().filter(|v| v.id != config.node_id) {
            tasks.push(tokio::spawn(replica_fetcher::run(
                Arc::clone(&broker),
                voter.id,
            )));
        }
        tasks.push(tokio::spawn(maintain_isr(Arc::clone(&broker))));
        if config.auto_leader_rebalance_enable && !config.voters.is_empty() {
            tasks.push(tokio::spawn(rebalance_leaders(
                Arc::clone(&broker),
                Duration::from_millis(config.leader_imbalance_check_interval_ms.max(1)),
            )));
        }
        tasks.push(tokio::spawn(scrub::run(Arc::clone(&broker))));
        tasks.push(tokio::spawn(log_cleaner::run(Arc::clone(&broker))));
        tracing::info!(node_id = config.node_id, %local_addr, data_dir = %config.data_dir.display(), "chronik started");
        Ok(RunningBroker {
            broker,
            consensus,
            tasks,
            local_addr,
            local_addrs,
            _flusher: flusher,
            _lock: lock,
        })
    }

    /// The bound address of the first (inter-broker) listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound address of the listener named `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.local_addrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, addr)| *addr)
    }

    /// Stops serving, flushes every log and stops the consensus loop.
    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let partitions = Arc::clone(&self.broker.partitions);
        let _ = tokio::task::spawn_blocking(move || partitions.close_all()).await;
        self.consensus.stop();
        tracing::info!("chronik stopped");
    }
}

/// Counts the starts of this broker, durably, so that every start registers with a
/// larger incarnation than any earlier one (R-START-3): a late registration from an
/// earlier life cannot replace a newer one.
fn next_incarnation(disk: &dyn Disk, data_dir: &std::path::Path) -> anyhow::Result<u64> {
    let path = data_dir.join("incarnation");
    let previous = if disk.exists(&path) {
        let bytes = crate::disk::read_all(disk, &path)?;
        let text = String::from_utf8_lossy(&bytes);
        text.trim()
            .parse::<u64>()
            .map_err(|e| anyhow::anyhow!("{} is not a number ({e}): {text:?}", path.display()))?
    } else {
        0
    };
    let next = previous + 1;
    disk.create_dir_all(data_dir)?;
    crate::disk::write_atomically(disk, &path, format!("{next}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(next)
}

/// Keeps the partition logs in line with the metadata.
async fn follow_metadata(broker: Arc<Broker>) {
    let mut view = broker.consensus.subscribe();
    loop {
        let b = Arc::clone(&broker);
        let _ = tokio::task::spawn_blocking(move || {
            b.reconcile_partitions();
            b.trace_shown();
        })
        .await;
        if view.changed().await.is_err() {
            return;
        }
    }
}

/// On every partition this broker leads: propose the ISR its followers warrant
/// (lagging ones out, caught-up ones in), and move the high watermark, which an ISR
/// change can free (R-REPL-2). On every copy short of records, led or not: propose
/// its repair (R-REPL-4).
async fn maintain_isr(broker: Arc<Broker>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    let mut proposed: std::collections::HashMap<(String, i32), (Vec<i32>, u64)> =
        Default::default();
    let me = broker.config.node_id;
    loop {
        interval.tick().await;
        let view = broker.consensus.view();
        let live = view.state.live_brokers();
        let now = now_ms();
        let local = broker.local(&view.state);
        for (key, log) in broker.partitions.all() {
            let Some(info) = view.state.partition(&key.0, key.1) else {
                continue;
            };
            let lost_from = log.first_lost_offset();
            if !view.state.leads(info, me, broker.incarnation) {
                // A follower's repair is proposed here as well as by its fetcher, which
                // never gets to it while the leader is out of reach: meanwhile the
                // controller could elect the copy, short of records, if the leader
                // were fenced (the simulator's last-frames storm, seed 282).
                if let Some(RepairStep::Propose(command)) =
                    lost_from.map(|from| broker.repairs.next_step(&key, info, me, Some(from), now))
                {
                    propose_repair(&broker, key.clone(), command);
                }
                continue;
            }
            if local.advance_high_watermark(&key, &log, now) {
                broker.trace_shown();
                broker.data_arrived.notify_waiters();
            }
            if let RepairStep::Propose(command) =
                broker.repairs.next_step(&key, info, me, lost_from, now)
            {
                propose_repair(&broker, key.clone(), command);
                continue;
            }
            let Some(isr) = broker.partitions.wanted_isr(
                &key,
                &log,
                info,
                &live,
                me,
                now,
                broker.config.replica_lag_time_max_ms,
            ) else {
                continue;
            };
            // One proposal per change and second: the next view shows the outcome.
            if proposed
                .get(&key)
                .is_some_and(|(p, at)| *p == isr && now.saturating_sub(*at) < 1000)
            {
                continue;
            }
            proposed.insert(key.clone(), (isr.clone(), now));
            tracing::info!(topic = %key.0, partition = key.1, old = ?info.isr, new = ?isr, "ISR change");
            let proposed_step = Some(FetchStep::IsrProposed {
                key: key.clone(),
                isr: isr.clone(),
            });
            let command = broker.traced_change(
                &key,
                || local.isr_change(&key, info, isr),
                |_| proposed_step,
            );
            let b = Arc::clone(&broker);
            tokio::spawn(async move {
                if let Err(e) = b.consensus.propose(command, b.metadata_timeout()).await {
                    tracing::debug!(?e, "ISR change not applied");
                }
            });
        }
    }
}

fn open_replication_trace(
    config: &BrokerConfig,
    incarnation: u64,
    partitions: &Arc<Partitions>,
) -> anyhow::Result<Option<Arc<replication_trace::ReplicationTrace>>> {
    let Some((path, key)) = &config.replication_trace else {
        return Ok(None);
    };
    let trace = replication_trace::ReplicationTrace::open(
        path,
        key.clone(),
        (config.node_id, incarnation),
        Arc::clone(partitions),
    )
    .map_err(|e| anyhow::anyhow!("replication trace {}: {e}", path.display()))?;
    Ok(Some(Arc::new(trace)))
}

/// Proposes a `RepairReplica` (R-REPL-4) and records what became of it.
pub(super) fn propose_repair(broker: &Arc<Broker>, key: (String, i32), command: MetadataCommand) {
    let b = Arc::clone(broker);
    tokio::spawn(async move {
        let refused = match b.consensus.propose(command, b.metadata_timeout()).await {
            Ok(ApplyOutcome::Rejected { code, message }) => {
                tracing::info!(topic = %key.0, partition = key.1, %code, %message,
                    "repair of a damaged copy not applied");
                Some(Some(code))
            }
            Ok(_) => None,
            Err(failure) => {
                tracing::debug!(?failure, "repair of a damaged copy: no answer");
                Some(None)
            }
        };
        b.repairs.outcome(&key, refused, now_ms());
    });
}

/// The partitions' retention, rolls and cleaning of old segments, on a poll period.
async fn housekeeping(broker: Arc<Broker>) {
    let mut interval = tokio::time::interval(HOUSEKEEPING_PERIOD);
    loop {
        interval.tick().await;
        let b = Arc::clone(&broker);
        let _ = tokio::task::spawn_blocking(move || {
            b.partitions.housekeeping(now_ms());
            b.trace_shown();
        })
        .await;
    }
}

const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(100);

/// Kafka's automatic leader rebalance (R-CLUSTER-3): on the metadata leader, every
/// `period`, leaderships go back to preferred replicas that are live and in sync.
async fn rebalance_leaders(broker: Arc<Broker>, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.tick().await;
    loop {
        interval.tick().await;
        if !broker.consensus.view().is_leader {
            continue;
        }
        let elected = crate::kafka::elect_leaders::elect_every_partition(&broker).await;
        if elected > 0 {
            tracing::info!(
                partitions = elected,
                "leaderships moved back to their preferred replicas"
            );
        }
    }
}

/// Sets the disk reserve aside, and again once there is room after a start gave it
/// up (R-OPS-4). A failure is logged once until it succeeds.
async fn keep_disk_reserve(reserve: Arc<DiskReserve>) {
    let mut interval = tokio::time::interval(Duration::from_secs(10));
    let mut failing = false;
    loop {
        interval.tick().await;
        let r = Arc::clone(&reserve);
        let result = tokio::task::spawn_blocking(move || r.keep()).await;
        match result {
            Ok(Err(e)) if !failing => {
                tracing::warn!(error = %e, "cannot set the disk reserve aside");
                failing = true;
            }
            Ok(Ok(())) => failing = false,
            _ => {}
        }
    }
}

/// The group coordinators' timers: a tick at the earliest deadline of a classic
/// group (a session lapses when it is due, as in Kafka, not up to a poll period
/// later), and at least every poll period; apart from the partitions'
/// housekeeping, so a slow retention pass never delays an expiry.
async fn group_timers(broker: Arc<Broker>) {
    loop {
        let now = now_ms();
        let due = broker.groups.next_deadline_ms().unwrap_or(u64::MAX);
        let poll = HOUSEKEEPING_PERIOD.as_millis() as u64;
        // A deadline already past is one the last tick left standing (a member
        // waiting in a join): waiting a poll period keeps that from spinning.
        let wait = match due.saturating_sub(now) {
            0 => poll,
            until_due => until_due.min(poll),
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let view = broker.consensus.view();
        let (me, start) = (broker.config.node_id, broker.incarnation);
        let coordinates = |group: &str| view.state.coordinates_in_start(group, me, start);
        let settlement = broker.groups.tick(now_ms(), coordinates);
        if settlement.records.is_empty() {
            broker.groups.settled(settlement, true);
        } else {
            let b = Arc::clone(&broker);
            tokio::spawn(async move { b.settle_groups(settlement).await });
        }
    }
}

/// A listener bound at start-up, before the registration that advertises it.
struct BoundListener {
    spec: ListenerSpec,
    listener: TcpListener,
    local_addr: SocketAddr,
    endpoint: Endpoint,
}

async fn bind_listeners(config: &BrokerConfig) -> anyhow::Result<Vec<BoundListener>> {
    let specs = config.listener_specs().map_err(|e| anyhow::anyhow!(e))?;
    let mut bound = Vec::with_capacity(specs.len());
    for spec in specs {
        let listener = TcpListener::bind(spec.bind)
            .await
            .map_err(|e| anyhow::anyhow!("listener {} on {}: {e}", spec.name, spec.bind))?;
        let local_addr = listener.local_addr()?;
        let endpoint = Endpoint {
            name: spec.name.clone(),
            host: (spec.advertised_host.clone()).unwrap_or_else(|| local_addr.ip().to_string()),
            port: i32::from(spec.advertised_port.unwrap_or(local_addr.port())),
        };
        tracing::info!(listener = %spec.name, protocol = %spec.protocol, %local_addr, "listening");
        bound.push(BoundListener {
            spec,
            listener,
            local_addr,
            endpoint,
        });
    }
    Ok(bound)
}

/// The peer handshake's secret and voters (R-SEC-9).
fn peer_security(config: &BrokerConfig) -> anyhow::Result<crate::cluster::PeerSecurity> {
    let secret = config.peer_secret().map_err(|e| anyhow::anyhow!(e))?;
    if secret.is_empty() {
        tracing::warn!(
            "peer_secret_file is not set: the peer port believes any process that names a voter"
        );
    }
    Ok(crate::cluster::PeerSecurity {
        secret: Arc::new(secret),
        voters: Arc::new(config.voter_ids()),
    })
}

/// How the replica fetcher reaches the other brokers' inter-broker listener.
fn inter_broker(config: &BrokerConfig) -> Result<shared::InterBroker, String> {
    Ok(shared::InterBroker {
        listener: config.listener_specs()?[0].name.clone(),
        security: crate::cluster::client::ClientSecurity {
            tls: tls::inter_broker_client(config)?,
            sasl: config.inter_broker_login()?,
        },
    })
}
