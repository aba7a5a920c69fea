//! `chronik`: the broker binary. One node by default, data under ./data, Kafka on
//! 127.0.0.1:9092.

// With the `loom` feature (the loom tests build every target of the package) the
// broker's modules are left out, so the binary is empty.
#[cfg(feature = "loom")]
fn main() {}

#[cfg(not(feature = "loom"))]
fn main() -> anyhow::Result<()> {
    app::main()
}

#[cfg(not(feature = "loom"))]
mod app {

    use anyhow::Context;
    use chronik::broker::{BrokerConfig, RunningBroker};
    use clap::Parser;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use tokio::signal::unix::{signal, SignalKind};

    #[global_allocator]
    pub static ALLOCATOR: chronik::alloc_guard::GuardedAlloc = chronik::alloc_guard::GuardedAlloc;

    #[derive(Parser, Debug)]
    #[command(name = "chronik", version, about = "A Kafka-compatible broker")]
    struct Args {
        #[command(subcommand)]
        command: Option<Command>,
        /// TOML file with broker settings (see BrokerConfig); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, env = "CHRONIK_NODE_ID")]
        node_id: Option<i32>,
        /// Where logs and metadata are stored.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address of the Kafka listener.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Host clients are told to connect to.
        #[arg(long)]
        advertised_host: Option<String>,
        #[arg(long)]
        advertised_port: Option<u16>,
        /// This broker's rack (Kafka's broker.rack), for consumers' client.rack.
        #[arg(long)]
        broker_rack: Option<String>,
        /// Kafka's replica.selector.class; RackAwareReplicaSelector lets consumers
        /// fetch from an in-sync replica in their own rack (KIP-392).
        #[arg(long)]
        replica_selector_class: Option<String>,
        /// Where to serve /metrics (Prometheus) and /health over HTTP.
        #[arg(long)]
        http_listen: Option<SocketAddr>,
        /// 0: fdatasync before every acknowledgement (default); N: every N ms (weaker).
        #[arg(long)]
        fsync_interval_ms: Option<u64>,
        /// A test aid: append a line to this file each time the metadata Raft state
        /// moves, for `chronik-sim --check-raft-trace` (spec/conformance.md C-10).
        #[arg(long)]
        raft_trace: Option<std::path::PathBuf>,
        /// A test aid: append a line to this file each time the partition named by
        /// --replication-trace-partition changes here, for `chronik-sim
        /// --check-replication-trace` (spec/conformance.md C-9). Follower fetches are
        /// then answered at once, without the leader's long poll: the model serves a
        /// fetch at one moment.
        #[arg(long, requires = "replication_trace_partition")]
        replication_trace: Option<std::path::PathBuf>,
        /// The partition --replication-trace follows, as TOPIC:PARTITION.
        #[arg(long, requires = "replication_trace")]
        replication_trace_partition: Option<String>,
        /// The cluster's nodes as ID@HOST:PORT (peer addresses), comma-separated,
        /// this node included. Unset: a single node.
        #[arg(long, env = "CHRONIK_VOTERS")]
        voters: Option<String>,
        /// Where peers connect (default: this node's address in --voters).
        #[arg(long, env = "CHRONIK_PEER_LISTEN")]
        peer_listen: Option<SocketAddr>,
        /// Fence a broker the controller has not heard from for this long.
        #[arg(long)]
        session_timeout_ms: Option<u64>,
        /// An empty consumer group's first rebalance waits this long for more members
        /// (Kafka's group.initial.rebalance.delay.ms, default 3000).
        #[arg(long)]
        group_initial_rebalance_delay_ms: Option<u64>,
        /// How often KIP-848 consumers heartbeat (Kafka's
        /// group.consumer.heartbeat.interval.ms, default 5000).
        #[arg(long)]
        group_consumer_heartbeat_interval_ms: Option<i32>,
        /// Open Kafka connections (Kafka's max.connections; default 1024).
        #[arg(long)]
        max_connections: Option<usize>,
        /// Open Kafka connections from one client address (Kafka's
        /// max.connections.per.ip; default 256).
        #[arg(long)]
        max_connections_per_ip: Option<usize>,
        /// Room set aside on the data disk, given up by a start that finds the disk
        /// full (bytes; 0: none; default 64 MiB).
        #[arg(long)]
        disk_reserve_bytes: Option<u64>,
        /// How often the metadata leader moves leaderships back to their preferred
        /// replicas (Kafka's leader.imbalance.check.interval.seconds; default 300 s).
        #[arg(long)]
        leader_imbalance_check_interval_ms: Option<u64>,
        /// How fast the background scrub re-reads partition logs to find damage
        /// (bytes/s; 0: off; default 8 MiB/s).
        #[arg(long)]
        log_scrub_bytes_per_sec: Option<u64>,
        /// Time between scrub passes over every partition (default one day).
        #[arg(long)]
        log_scrub_interval_ms: Option<u64>,
        /// Sealed segment files open at once over every partition (default 10000;
        /// lowered to what the open-file limit leaves).
        #[arg(long)]
        max_open_segment_files: Option<u64>,
        /// Pause between cleaning rounds over compacted partitions (Kafka's
        /// log.cleaner.backoff.ms, default 15000).
        #[arg(long)]
        log_cleaner_backoff_ms: Option<u64>,
        /// Memory for the keys one cleaning pass reads (Kafka's
        /// log.cleaner.dedupe.buffer.size, default 128 MiB).
        #[arg(long)]
        log_cleaner_dedupe_buffer_size: Option<u64>,
        /// Close a connection with nothing in flight that starts no request for this
        /// long (Kafka's connections.max.idle.ms, default 600000).
        #[arg(long)]
        connections_max_idle_ms: Option<u64>,
        /// A request frame must arrive whole within this long of its size (default
        /// 30000).
        #[arg(long)]
        request_receive_timeout_ms: Option<u64>,
        /// Bytes of requests being received or handled across all connections
        /// (Kafka's queued.max.request.bytes; default twice max_request_bytes).
        #[arg(long)]
        queued_max_request_bytes: Option<usize>,
        /// Bytes of consumer Fetch answers held at once across connections (default
        /// 256 MiB); when short, answers get smaller.
        #[arg(long)]
        fetch_response_memory_bytes: Option<usize>,
        #[command(flatten)]
        security: SecurityArgs,
        /// Check every request against the ACLs (Kafka's authorizer.class.name set).
        #[arg(long)]
        authorizer_enabled: bool,
        /// Principals allowed everything, semicolon-separated as Kafka's super.users
        /// (User:admin;User:broker).
        #[arg(long)]
        super_users: Option<String>,
        /// Allow a resource no ACL covers (Kafka's allow.everyone.if.no.acl.found).
        #[arg(long)]
        allow_everyone_if_no_acl_found: bool,
        /// Log filter, e.g. info or chronik=debug.
        #[arg(long, default_value = "info")]
        log_level: String,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Command {
        /// Creates a SCRAM user before the broker first starts (the first admin, say):
        /// the salted credential goes to the data directory, and the broker stores it
        /// in the replicated metadata when it starts. Reads the password from stdin.
        AddScramUser {
            /// The user name (its principal is User:NAME).
            #[arg(long)]
            user: String,
            /// SCRAM-SHA-256 or SCRAM-SHA-512 (both, if not given).
            #[arg(long)]
            mechanism: Option<String>,
        },
        /// Reads every partition log of a stopped broker, checking every checksum,
        /// and lists each damaged range. Exits 1 if damage is left.
        CheckData {
            /// Gives up each damaged range: its bytes move to the partition's
            /// quarantine/ directory and its offsets become an empty batch that
            /// consumers step over. For a partition whose only copy is damaged.
            #[arg(long)]
            quarantine: bool,
        },
    }

    /// Listeners, TLS and SASL, with Kafka's setting names.
    #[derive(clap::Args, Debug)]
    struct SecurityArgs {
        /// Kafka's listeners: NAME://HOST:PORT,... (replaces --listen).
        #[arg(long)]
        listeners: Option<String>,
        /// Kafka's advertised.listeners: NAME://HOST:PORT,...
        #[arg(long)]
        advertised_listeners: Option<String>,
        /// Kafka's listener.security.protocol.map: NAME:PROTOCOL,...
        #[arg(long)]
        listener_security_protocol_map: Option<String>,
        /// Kafka's inter.broker.listener.name (default: the first listener).
        #[arg(long)]
        inter_broker_listener_name: Option<String>,
        /// Kafka's sasl.enabled.mechanisms, comma-separated.
        #[arg(long)]
        sasl_enabled_mechanisms: Option<String>,
        /// PEM file with the server's private key and certificate chain.
        #[arg(long)]
        ssl_keystore_location: Option<PathBuf>,
        /// PEM file with the CA certificates that client certificates chain to.
        #[arg(long)]
        ssl_truststore_location: Option<PathBuf>,
        /// none, requested or required.
        #[arg(long)]
        ssl_client_auth: Option<String>,
        /// Kafka's connections.max.reauth.ms (0: sessions do not expire).
        #[arg(long)]
        connections_max_reauth_ms: Option<u64>,
        /// File with the cluster's shared secret for the peer handshake.
        #[arg(long, env = "CHRONIK_PEER_SECRET_FILE")]
        peer_secret_file: Option<PathBuf>,
    }

    fn load_config(args: &Args) -> anyhow::Result<BrokerConfig> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => BrokerConfig::default(),
        };
        if let Some(v) = args.node_id {
            config.node_id = v;
        }
        if let Some(v) = &args.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = args.listen {
            config.listen = v;
        }
        if let Some(v) = &args.broker_rack {
            config.broker_rack = Some(v.clone());
        }
        if let Some(v) = &args.replica_selector_class {
            config.replica_selector_class = Some(v.clone());
        }
        if let Some(v) = &args.advertised_host {
            config.advertised_host = Some(v.clone());
        }
        if let Some(v) = args.advertised_port {
            config.advertised_port = Some(v);
        }
        if let Some(v) = args.http_listen {
            config.http_listen = Some(v);
        }
        if let Some(v) = args.fsync_interval_ms {
            config.fsync_interval_ms = v;
        }
        if let Some(v) = &args.raft_trace {
            config.raft_trace = Some(v.clone());
        }
        if let (Some(path), Some(partition)) =
            (&args.replication_trace, &args.replication_trace_partition)
        {
            config.replication_trace = Some((path.clone(), parse_topic_partition(partition)?));
        }
        if let Some(v) = &args.voters {
            config.voters = BrokerConfig::parse_voters(v).map_err(anyhow::Error::msg)?;
        }
        if let Some(v) = args.peer_listen {
            config.peer_listen = Some(v);
        }
        if let Some(v) = args.session_timeout_ms {
            config.session_timeout_ms = v;
        }
        if let Some(v) = args.group_initial_rebalance_delay_ms {
            config.group_initial_rebalance_delay_ms = v;
        }
        if let Some(v) = args.group_consumer_heartbeat_interval_ms {
            config.group_consumer_heartbeat_interval_ms = v;
        }
        apply_limit_flags(args, &mut config);
        apply_security_flags(&args.security, &mut config);
        apply_authorizer_flags(args, &mut config);
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// `TOPIC:PARTITION`, the topic possibly holding colons of its own (it cannot,
    /// but the last one is the separator either way).
    fn parse_topic_partition(text: &str) -> anyhow::Result<(String, i32)> {
        let (topic, partition) = text
            .rsplit_once(':')
            .with_context(|| format!("{text:?} is not TOPIC:PARTITION"))?;
        let partition = partition
            .parse()
            .with_context(|| format!("{partition:?} in {text:?} is not a partition number"))?;
        Ok((topic.to_string(), partition))
    }

    fn apply_security_flags(args: &SecurityArgs, config: &mut BrokerConfig) {
        let texts = [
            (&args.listeners, &mut config.listeners),
            (&args.advertised_listeners, &mut config.advertised_listeners),
            (
                &args.listener_security_protocol_map,
                &mut config.listener_security_protocol_map,
            ),
            (
                &args.inter_broker_listener_name,
                &mut config.inter_broker_listener_name,
            ),
        ];
        for (flag, setting) in texts {
            if let Some(v) = flag {
                *setting = Some(v.clone());
            }
        }
        if let Some(v) = &args.sasl_enabled_mechanisms {
            config.sasl_enabled_mechanisms = v.split(',').map(|m| m.trim().to_string()).collect();
        }
        if let Some(v) = &args.ssl_keystore_location {
            config.ssl_keystore_location = Some(v.clone());
        }
        if let Some(v) = &args.ssl_truststore_location {
            config.ssl_truststore_location = Some(v.clone());
        }
        if let Some(v) = &args.ssl_client_auth {
            config.ssl_client_auth = v.clone();
        }
        if let Some(v) = args.connections_max_reauth_ms {
            config.connections_max_reauth_ms = v;
        }
        if let Some(v) = &args.peer_secret_file {
            config.peer_secret_file = Some(v.clone());
        }
    }

    fn add_scram_user(
        config: &BrokerConfig,
        user: &str,
        mechanism: Option<&str>,
    ) -> anyhow::Result<()> {
        use chronik_core::security::scram::Mechanism;
        let mechanisms = match mechanism {
            None => Mechanism::ALL.to_vec(),
            Some(name) => vec![Mechanism::from_name(name)
                .ok_or_else(|| anyhow::anyhow!("{name} is not SCRAM-SHA-256 or SCRAM-SHA-512"))?],
        };
        let mut password = String::new();
        std::io::stdin().read_line(&mut password)?;
        let password = password.trim_end_matches(['\n', '\r']);
        for mechanism in mechanisms {
            chronik::broker::bootstrap_credentials::add(
                &config.data_dir,
                user,
                password,
                mechanism,
            )?;
        }
        eprintln!(
            "added {user} to {}; the broker stores it in its metadata when it starts",
            config.data_dir.display()
        );
        Ok(())
    }

    fn apply_authorizer_flags(args: &Args, config: &mut BrokerConfig) {
        config.authorizer_enabled |= args.authorizer_enabled;
        config.allow_everyone_if_no_acl_found |= args.allow_everyone_if_no_acl_found;
        if let Some(v) = &args.super_users {
            config.super_users = BrokerConfig::parse_super_users(v);
        }
    }

    fn apply_limit_flags(args: &Args, config: &mut BrokerConfig) {
        if let Some(v) = args.max_connections {
            config.max_connections = v;
        }
        if let Some(v) = args.max_connections_per_ip {
            config.max_connections_per_ip = v;
        }
        if let Some(v) = args.disk_reserve_bytes {
            config.disk_reserve_bytes = v;
        }
        if let Some(v) = args.leader_imbalance_check_interval_ms {
            config.leader_imbalance_check_interval_ms = v;
        }
        if let Some(v) = args.log_scrub_bytes_per_sec {
            config.log_scrub_bytes_per_sec = v;
        }
        if let Some(v) = args.log_scrub_interval_ms {
            config.log_scrub_interval_ms = v;
        }
        if let Some(v) = args.max_open_segment_files {
            config.max_open_segment_files = v;
        }
        if let Some(v) = args.log_cleaner_backoff_ms {
            config.log_cleaner_backoff_ms = v;
        }
        if let Some(v) = args.log_cleaner_dedupe_buffer_size {
            config.log_cleaner_dedupe_buffer_size = v;
        }
        if let Some(v) = args.connections_max_idle_ms {
            config.connections_max_idle_ms = v;
        }
        if let Some(v) = args.request_receive_timeout_ms {
            config.request_receive_timeout_ms = v;
        }
        if let Some(v) = args.queued_max_request_bytes {
            config.queued_max_request_bytes = Some(v);
        }
        if let Some(v) = args.fetch_response_memory_bytes {
            config.fetch_response_memory_bytes = v;
        }
    }

    pub fn main() -> anyhow::Result<()> {
        let args = Args::parse();
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_new(&args.log_level)
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            // Colour codes only on a terminal: a log file or journal gets plain text
            // that grep and log shippers read as written.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        let config = load_config(&args)?;
        match &args.command {
            Some(Command::AddScramUser { user, mechanism }) => {
                return add_scram_user(&config, user, mechanism.as_deref());
            }
            Some(Command::CheckData { quarantine }) => {
                let report =
                    chronik::check_data::run(&config, *quarantine, &mut std::io::stdout())?;
                if !report.is_clean() {
                    eprintln!(
                        "damage found: a replicated partition repairs itself from its replicas \
                         once the broker runs; for a sole copy, `chronik check-data --quarantine` \
                         gives the damaged offsets up"
                    );
                    std::process::exit(1);
                }
                return Ok(());
            }
            None => {}
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let broker = RunningBroker::start(config).await?;
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut view = broker.broker.consensus.subscribe();
            let failure = loop {
                tokio::select! {
                    _ = terminate.recv() => break None,
                    _ = interrupt.recv() => break None,
                    changed = view.changed() => {
                        if changed.is_err() {
                            break Some("consensus loop ended".to_string());
                        }
                        if let Some(why) = view.borrow().failed.clone() {
                            break Some(why);
                        }
                    }
                }
            };
            broker.shutdown().await;
            match failure {
                None => Ok(()),
                Some(why) => Err(anyhow::anyhow!("metadata node failed: {why}")),
            }
        })
    }
}
