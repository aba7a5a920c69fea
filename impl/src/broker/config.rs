use super::listeners::{self, ListenerSpec};
use crate::cluster::client::SaslLogin;
use crate::log::{FsyncPolicy, LogConfig};
use chronik_core::security::sasl::SaslMechanism;
use chronik_core::security::SecurityProtocol;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Broker settings: from the TOML file, then overridden by command-line flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// This broker's id, also its Raft id (so it must be at least 1).
    pub node_id: i32,
    pub data_dir: PathBuf,
    /// Where the Kafka listener binds.
    pub listen: SocketAddr,
    /// The host and port clients are told to connect to (default: `listen`).
    pub advertised_host: Option<String>,
    pub advertised_port: Option<u16>,
    /// Kafka's `broker.rack`: the rack (or zone) this broker runs in, named in
    /// Metadata and matched against consumers' `client.rack` (KIP-392).
    pub broker_rack: Option<String>,
    /// Kafka's `replica.selector.class`: with
    /// `org.apache.kafka.common.replica.RackAwareReplicaSelector`, a leader sends a
    /// consumer that names its rack to an in-sync replica in that rack (KIP-392);
    /// unset, consumers read from leaders (R-WIRE-17).
    pub replica_selector_class: Option<String>,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub max_request_bytes: usize,
    /// Kafka's `fetch.max.bytes`: the most one consumer Fetch answer carries,
    /// whatever the request asks (its first batch excepted, KIP-74).
    pub fetch_max_bytes: usize,
    /// Kafka's `replica.fetch.response.max.bytes`: the same bound for followers.
    pub replica_fetch_response_max_bytes: usize,
    /// Kafka's `max.connections`: open Kafka connections on this broker. One more is
    /// accepted and closed at once (R-WIRE-12).
    pub max_connections: usize,
    /// Kafka's `max.connections.per.ip` (unlimited there): open connections from one
    /// client address, so one client cannot take every slot (R-WIRE-12).
    pub max_connections_per_ip: usize,
    /// Kafka's `connections.max.idle.ms`: a connection with nothing in flight that
    /// starts no request for this long is closed.
    pub connections_max_idle_ms: u64,
    /// A request frame whose size has arrived must arrive whole within this long
    /// (no Kafka name: Kafka only closes idle channels, so a client trickling a byte at
    /// a time keeps one forever). The default is Kafka clients' `request.timeout.ms`:
    /// by then the client has given up on the request itself.
    pub request_receive_timeout_ms: u64,
    /// Kafka's `queued.max.request.bytes` (unbounded there): bytes of requests being
    /// received or handled, across all connections. A connection whose next frame
    /// does not fit waits, unread. Unset: twice `max_request_bytes`.
    pub queued_max_request_bytes: Option<usize>,
    /// Bytes of consumer Fetch answers held at once, across connections, from the
    /// read until written (R-WIRE-12): when short, answers get smaller.
    pub fetch_response_memory_bytes: usize,
    /// The most partitions the cluster may hold (KIP-578's `max.partitions`);
    /// CreateTopics and CreatePartitions beyond it get POLICY_VIOLATION before
    /// anything is allocated.
    pub max_partitions: u64,
    /// The most partition replicas one broker may host (KIP-578's
    /// `max.broker.partitions`); each one costs open files and memory.
    pub max_broker_partitions: u64,
    /// Sealed segment files open at once over every partition (R-LOG-19): more are
    /// closed, least recently read first, and opened again when read. The active
    /// segment of every partition stays open besides. Lowered at start to what the
    /// open-file limit leaves after connections and active segments.
    pub max_open_segment_files: u64,
    /// Raft tick; an election takes 10 to 20 ticks.
    pub tick_ms: u64,
    /// The longest a request waits for the metadata group.
    pub metadata_timeout_ms: u64,
    /// fsync policy of partition logs: 0 means every acknowledged append is
    /// fdatasync'ed first (the default); N > 0 syncs every N ms (weaker).
    pub fsync_interval_ms: u64,
    pub segment_bytes: u64,
    /// -1 keeps data forever.
    pub retention_ms: i64,
    /// Where /metrics and /health are served, if anywhere.
    pub http_listen: Option<SocketAddr>,
    /// A test aid: write a line to this file each time the metadata Raft state moves
    /// (C-10; `chronik-sim --check-raft-trace` checks it).
    pub raft_trace: Option<PathBuf>,
    /// A test aid: write a line to this file each time this partition changes here
    /// (C-9; `chronik-sim --check-replication-trace` checks it).
    pub replication_trace: Option<(PathBuf, (String, i32))>,
    /// The metadata group's voters: every node of the cluster, this one included.
    /// Empty: a one-voter group of this node alone.
    pub voters: Vec<Voter>,
    /// Where peers connect (default: this node's address in `voters`).
    pub peer_listen: Option<SocketAddr>,
    /// A broker the controller has not heard from for this long is fenced: it is no
    /// longer listed, and its partitions move to other in-sync replicas.
    pub session_timeout_ms: u64,
    /// A follower that has not caught up with the leader for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `auto.leader.rebalance.enable`: the metadata leader moves leaderships
    /// back to their preferred replicas every `leader_imbalance_check_interval_ms`
    /// (R-CLUSTER-3).
    pub auto_leader_rebalance_enable: bool,
    /// Kafka's `leader.imbalance.check.interval.seconds`, in milliseconds.
    pub leader_imbalance_check_interval_ms: u64,
    /// Room set aside on the data disk (`disk-reserve`), given up by a start that
    /// finds the disk full so that it can start and free space (R-OPS-4); 0: none.
    pub disk_reserve_bytes: u64,
    /// How fast the background scrub re-reads partition logs to find damage nobody
    /// has read yet (R-LOG-16); 0 turns it off.
    pub log_scrub_bytes_per_sec: u64,
    /// A scrub pass over every partition starts at start-up and again this long
    /// after the previous one ended.
    pub log_scrub_interval_ms: u64,
    /// Kafka's `log.cleaner.enable`: compacted topics are cleaned (R-LOG-18).
    pub log_cleaner_enable: bool,
    /// Kafka's `log.cleaner.backoff.ms`: the pause between cleaning rounds over the
    /// compacted partitions.
    pub log_cleaner_backoff_ms: u64,
    /// Kafka's `log.cleaner.dedupe.buffer.size`: memory for the keys of one pass.
    pub log_cleaner_dedupe_buffer_size: u64,
    /// Replicas per partition when a CreateTopics request leaves it to the broker.
    pub default_replication_factor: i16,
    /// Kafka's `group.initial.rebalance.delay.ms`: an empty group's first rebalance
    /// waits this long so members started together share one generation.
    pub group_initial_rebalance_delay_ms: u64,
    /// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Kafka's `group.max.size`.
    pub group_max_size: usize,
    /// KIP-848 groups: Kafka's `group.consumer.session.timeout.ms` and
    /// `group.consumer.heartbeat.interval.ms`.
    pub group_consumer_session_timeout_ms: u64,
    pub group_consumer_heartbeat_interval_ms: i32,
    /// Kafka's `listeners`: `NAME://HOST:PORT,...`. Unset: one PLAINTEXT listener
    /// on `listen`, advertised as `advertised_host`/`advertised_port`.
    pub listeners: Option<String>,
    /// Kafka's `advertised.listeners`, in the same form (unset entries: the bound
    /// address).
    pub advertised_listeners: Option<String>,
    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL,...`; a listener
    /// named after its protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) needs none.
    pub listener_security_protocol_map: Option<String>,
    /// Kafka's `inter.broker.listener.name`: the listener other brokers fetch
    /// replicas from (default: the first).
    pub inter_broker_listener_name: Option<String>,
    /// Kafka's `sasl.enabled.mechanisms`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// Kafka's `ssl.keystore.location` with `ssl.keystore.type=PEM`: one PEM file
    /// holding the private key and the certificate chain. Re-read when it changes.
    pub ssl_keystore_location: Option<PathBuf>,
    /// Kafka's `ssl.truststore.location` with `ssl.truststore.type=PEM`: the CA
    /// certificates client certificates must chain to.
    pub ssl_truststore_location: Option<PathBuf>,
    /// Kafka's `ssl.client.auth`: none, requested or required.
    pub ssl_client_auth: String,
    /// Kafka's `connections.max.reauth.ms` (KIP-368): an authenticated SASL session
    /// lasts this long; then the client must re-authenticate. 0: forever.
    pub connections_max_reauth_ms: u64,
    /// Kafka's `connection.failed.authentication.delay.ms`: a failed authentication
    /// is answered this late, then the connection is closed, to slow guessing.
    pub connection_failed_authentication_delay_ms: u64,
    /// Kafka's `sasl.server.max.receive.size`: the largest frame a SASL listener
    /// reads before the login succeeded.
    pub sasl_server_max_receive_size: usize,
    /// A file holding the cluster's shared secret (the same on every node, at least
    /// 16 bytes): peers prove it before their Raft messages are accepted (R-SEC-9).
    /// Unset in a cluster: any process that reaches the peer port and names a voter
    /// is believed, and the broker warns at start-up.
    pub peer_secret_file: Option<PathBuf>,
    /// Kafka's `sasl.mechanism.inter.broker.protocol`: how this broker logs in to a
    /// SASL inter-broker listener, as `inter_broker_sasl_username` with the password
    /// in `inter_broker_sasl_password_file`.
    pub inter_broker_sasl_mechanism: String,
    pub inter_broker_sasl_username: Option<String>,
    pub inter_broker_sasl_password_file: Option<PathBuf>,
    /// Kafka's `authorizer.class.name` set: every request is checked against the
    /// ACLs (spec/security.md). Off, everything is allowed and the ACL APIs answer
    /// SECURITY_DISABLED, as Kafka without an authorizer.
    pub authorizer_enabled: bool,
    /// Kafka's `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: Vec<String>,
    /// Kafka's `allow.everyone.if.no.acl.found`: the answer for a resource no ACL
    /// covers (default false: refused).
    pub allow_everyone_if_no_acl_found: bool,
}

/// One member of the metadata group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voter {
    pub id: i32,
    /// Its peer (Raft and forwarding) address.
    pub peer: SocketAddr,
}

impl Voter {
    /// Parses `ID@HOST:PORT`.
    pub fn parse(text: &str) -> Result<Voter, String> {
        let (id, addr) = text
            .split_once('@')
            .ok_or_else(|| format!("voter {text:?} is not ID@HOST:PORT"))?;
        let id = id
            .trim()
            .parse()
            .map_err(|e| format!("voter id in {text:?}: {e}"))?;
        let peer = addr
            .trim()
            .parse()
            .map_err(|e| format!("voter address in {text:?}: {e}"))?;
        Ok(Voter { id, peer })
    }

    /// Parses a comma-separated list of `ID@HOST:PORT`.
    pub fn parse_list(text: &str) -> Result<Vec<Voter>, String> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Voter::parse)
            .collect()
    }
}

/// Kafka's two `replica.selector.class` values: consumers read from leaders, or
/// from an in-sync replica in their rack (KIP-392).
pub const LEADER_SELECTOR: &str = "org.apache.kafka.common.replica.LeaderSelector";
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

impl Default for BrokerConfig {
    fn default() -> Self {
        let admin = chronik_core::admin::topics::AdminDefaults::broker_default(1);
        BrokerConfig {
            node_id: admin.node_id,
            data_dir: PathBuf::from("data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_host: None,
            advertised_port: None,
            broker_rack: None,
            replica_selector_class: None,
            auto_create_topics: true,
            default_partitions: admin.default_partitions,
            max_request_bytes: 100 * 1024 * 1024,
            fetch_max_bytes: 55 * 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            max_connections: 1024,
            max_connections_per_ip: 256,
            connections_max_idle_ms: 600_000,
            request_receive_timeout_ms: 30_000,
            queued_max_request_bytes: None,
            fetch_response_memory_bytes: 256 * 1024 * 1024,
            max_partitions: admin.limits.max_partitions,
            max_broker_partitions: admin.limits.max_broker_partitions,
            max_open_segment_files: 10_000,
            tick_ms: 50,
            metadata_timeout_ms: 5000,
            fsync_interval_ms: 0,
            segment_bytes: crate::log::DEFAULT_SEGMENT_BYTES,
            retention_ms: 7 * 24 * 3600 * 1000,
            http_listen: None,
            raft_trace: None,
            replication_trace: None,
            voters: Vec::new(),
            peer_listen: None,
            session_timeout_ms: 1000,
            replica_lag_time_max_ms: 2000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            disk_reserve_bytes: 64 * 1024 * 1024,
            log_scrub_bytes_per_sec: 8 * 1024 * 1024,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            log_scrub_interval_ms: 24 * 3600 * 1000,
            default_replication_factor: admin.default_replication_factor,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX as usize,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: None,
            inter_broker_listener_name: None,
            sasl_enabled_mechanisms: SaslMechanism::ALL
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
            ssl_keystore_location: None,
            ssl_truststore_location: None,
            ssl_client_auth: "none".into(),
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            sasl_server_max_receive_size: 524_288,
            peer_secret_file: None,
            inter_broker_sasl_mechanism: "SCRAM-SHA-512".into(),
            inter_broker_sasl_username: None,
            inter_broker_sasl_password_file: None,
            authorizer_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
        }
    }
}

impl BrokerConfig {
    /// Parses Kafka's `super.users` form: principals separated by semicolons.
    pub fn parse_super_users(text: &str) -> Vec<String> {
        text.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The authorizer's settings, for the core's decision.
    pub fn authorizer(&self) -> chronik_core::security::acl::Authorizer {
        chronik_core::security::acl::Authorizer {
            super_users: self.super_users.iter().cloned().collect(),
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        }
    }

    /// Consumers that name their rack are sent to an in-sync replica there (KIP-392).
    pub fn rack_aware_reads(&self) -> bool {
        self.replica_selector_class.as_deref() == Some(RACK_AWARE_SELECTOR)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.node_id < 1 {
            return Err(format!("node_id {} must be at least 1", self.node_id));
        }
        if self.default_partitions < 1 {
            return Err("default_partitions must be at least 1".into());
        }
        if self.tick_ms == 0 {
            return Err("tick_ms must be positive".into());
        }
        match self.replica_selector_class.as_deref() {
            None | Some(LEADER_SELECTOR) | Some(RACK_AWARE_SELECTOR) => {}
            Some(other) => {
                return Err(format!(
                    "replica_selector_class {other:?} is not one of Kafka's selectors: \
                     {RACK_AWARE_SELECTOR} or {LEADER_SELECTOR}"
                ))
            }
        }
        if !self.voters.is_empty() {
            if !self.voters.iter().any(|v| v.id == self.node_id) {
                return Err(format!("node_id {} is not among the voters", self.node_id));
            }
            let mut ids: Vec<i32> = self.voters.iter().map(|v| v.id).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != self.voters.len() || ids[0] < 1 {
                return Err("voter ids must be distinct and at least 1".into());
            }
            // Two voters at one peer address would be one process answering for both.
            let mut peers: Vec<SocketAddr> = self.voters.iter().map(|v| v.peer).collect();
            peers.sort_unstable();
            peers.dedup();
            if peers.len() != self.voters.len() {
                return Err("voters must have distinct peer addresses".into());
            }
        }
        self.validate_connection_limits()?;
        for user in &self.super_users {
            chronik_core::security::Principal::parse(user)
                .map_err(|e| format!("super_users: {e}"))?;
        }
        if self.max_partitions == 0 || self.max_broker_partitions == 0 {
            return Err("max_partitions and max_broker_partitions must be positive".into());
        }
        if self.default_replication_factor < 1 {
            return Err("default_replication_factor must be at least 1".into());
        }
        if self.session_timeout_ms < 2 * self.tick_ms {
            return Err("session_timeout_ms must be at least two ticks".into());
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err("group_min_session_timeout_ms exceeds group_max_session_timeout_ms".into());
        }
        if self.group_consumer_heartbeat_interval_ms < 1
            || self.group_consumer_heartbeat_interval_ms as u64
                >= self.group_consumer_session_timeout_ms
        {
            return Err("group_consumer_heartbeat_interval_ms must be positive and below the session timeout".into());
        }
        if self.group_max_size == 0 {
            return Err("group_max_size must be at least 1".into());
        }
        self.validate_security()?;
        self.log_defaults().validate().map_err(|e| e.to_string())
    }

    fn validate_security(&self) -> Result<(), String> {
        let listeners = self.listener_specs()?;
        if let Some(name) = &self.inter_broker_listener_name {
            if !listeners.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
                return Err(format!(
                    "inter_broker_listener_name {name} is not a listener"
                ));
            }
        }
        self.sasl_mechanisms()?;
        let client_auth = ClientAuth::parse(&self.ssl_client_auth)?;
        if listeners.iter().any(|l| l.protocol.uses_tls()) && self.ssl_keystore_location.is_none() {
            return Err("an SSL or SASL_SSL listener needs ssl_keystore_location".into());
        }
        if client_auth != ClientAuth::None && self.ssl_truststore_location.is_none() {
            return Err("ssl_client_auth needs ssl_truststore_location".into());
        }
        Ok(())
    }

    /// The Kafka listeners to bind, the inter-broker one first.
    pub fn listener_specs(&self) -> Result<Vec<ListenerSpec>, String> {
        let mut specs = match &self.listeners {
            Some(text) => listeners::parse(
                text,
                self.advertised_listeners.as_deref(),
                self.listener_security_protocol_map.as_deref(),
            )?,
            None => vec![ListenerSpec {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                bind: self.listen,
                advertised_host: self.advertised_host.clone(),
                advertised_port: self.advertised_port,
            }],
        };
        if let Some(name) = &self.inter_broker_listener_name {
            if let Some(at) = specs.iter().position(|l| l.name.eq_ignore_ascii_case(name)) {
                let inter_broker = specs.remove(at);
                specs.insert(0, inter_broker);
            }
        }
        Ok(specs)
    }

    pub fn sasl_mechanisms(&self) -> Result<Vec<SaslMechanism>, String> {
        self.sasl_enabled_mechanisms
            .iter()
            .map(|name| {
                SaslMechanism::from_name(name.trim())
                    .ok_or_else(|| format!("SASL mechanism {name} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"))
            })
            .collect()
    }

    /// The peer transport's shared secret (empty when none is configured).
    pub fn peer_secret(&self) -> Result<Vec<u8>, String> {
        let Some(path) = &self.peer_secret_file else {
            return Ok(Vec::new());
        };
        let text =
            std::fs::read(path).map_err(|e| format!("peer_secret_file {}: {e}", path.display()))?;
        let secret = text.trim_ascii().to_vec();
        if secret.len() < 16 {
            return Err(format!(
                "peer_secret_file {} holds fewer than 16 bytes",
                path.display()
            ));
        }
        Ok(secret)
    }

    /// How the replica fetcher logs in to a SASL inter-broker listener.
    pub fn inter_broker_login(&self) -> Result<Option<SaslLogin>, String> {
        let inter_broker = &self.listener_specs()?[0];
        if !inter_broker.protocol.uses_sasl() || self.voters.len() <= 1 {
            return Ok(None);
        }
        let (Some(user), Some(path)) = (
            &self.inter_broker_sasl_username,
            &self.inter_broker_sasl_password_file,
        ) else {
            return Err(format!(
                "the inter-broker listener {} uses SASL: set inter_broker_sasl_username and inter_broker_sasl_password_file",
                inter_broker.name
            ));
        };
        let password = std::fs::read_to_string(path)
            .map_err(|e| format!("inter_broker_sasl_password_file {}: {e}", path.display()))?;
        let mechanism =
            SaslMechanism::from_name(&self.inter_broker_sasl_mechanism).ok_or_else(|| {
                format!(
                    "inter_broker_sasl_mechanism {} is not supported",
                    self.inter_broker_sasl_mechanism
                )
            })?;
        Ok(Some(SaslLogin {
            mechanism,
            user: user.clone(),
            password: password.trim_end_matches(['\n', '\r']).to_string(),
        }))
    }

    pub fn client_auth(&self) -> ClientAuth {
        ClientAuth::parse(&self.ssl_client_auth).unwrap_or(ClientAuth::None)
    }

    fn validate_connection_limits(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            return Err("max_connections and max_connections_per_ip must be positive".into());
        }
        if self.connections_max_idle_ms == 0 || self.request_receive_timeout_ms == 0 {
            return Err(
                "connections_max_idle_ms and request_receive_timeout_ms must be positive".into(),
            );
        }
        if self.max_request_bytes > i32::MAX as usize {
            return Err("max_request_bytes must fit a frame's 31-bit size".into());
        }
        if self.request_memory_bytes() < self.max_request_bytes {
            return Err("queued_max_request_bytes must be at least max_request_bytes".into());
        }
        Ok(())
    }

    /// The broker-wide budget of request bytes being received or handled.
    pub fn request_memory_bytes(&self) -> usize {
        self.queued_max_request_bytes
            .unwrap_or_else(|| self.max_request_bytes.saturating_mul(2))
    }

    // The default fills the test-only fault switch that builds with `inject-bugs` have.
    #[allow(clippy::needless_update)]
    pub fn consumer_group_config(&self) -> crate::groups::ConsumerGroupConfig {
        crate::groups::ConsumerGroupConfig {
            session_timeout_ms: self.group_consumer_session_timeout_ms,
            heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
            max_size: self.group_max_size,
            ..Default::default()
        }
    }

    // The default fills the test-only fault switch that builds with `inject-bugs` have.
    #[allow(clippy::needless_update)]
    pub fn group_config(&self) -> crate::groups::GroupConfig {
        crate::groups::GroupConfig {
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: self.group_min_session_timeout_ms,
            max_session_timeout_ms: self.group_max_session_timeout_ms,
            max_size: self.group_max_size,
            ..crate::groups::GroupConfig::default()
        }
    }

    pub fn parse_voters(text: &str) -> Result<Vec<Voter>, String> {
        Voter::parse_list(text)
    }

    /// The Raft voter ids (this node alone when no voters are configured).
    pub fn voter_ids(&self) -> Vec<u64> {
        if self.voters.is_empty() {
            vec![self.node_id as u64]
        } else {
            self.voters.iter().map(|v| v.id as u64).collect()
        }
    }

    /// Where this node listens for peers, if it has any.
    pub fn peer_listen_addr(&self) -> Option<SocketAddr> {
        if self.voters.len() <= 1 {
            return None;
        }
        self.peer_listen.or_else(|| {
            self.voters
                .iter()
                .find(|v| v.id == self.node_id)
                .map(|v| v.peer)
        })
    }

    pub fn log_defaults(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            retention_ms: (self.retention_ms >= 0).then_some(self.retention_ms as u64),
            fsync: FsyncPolicy::every_ms(self.fsync_interval_ms),
            ..LogConfig::default()
        }
    }
}

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A certificate is asked for; without one the client is ANONYMOUS.
    Requested,
    Required,
}

impl ClientAuth {
    fn parse(text: &str) -> Result<ClientAuth, String> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            _ => Err(format!(
                "ssl_client_auth {text:?} is not none, requested or required"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BrokerConfig;

    #[test]
    fn r_sec_acl_6_super_users_are_read_as_kafkas_super_users() -> Result<(), String> {
        assert_eq!(
            BrokerConfig::parse_super_users("User:admin; User:ops;"),
            vec!["User:admin".to_string(), "User:ops".to_string()]
        );
        let config: BrokerConfig = toml::from_str(
            "authorizer_enabled = true\nsuper_users = [\"User:admin\"]\nallow_everyone_if_no_acl_found = true\n",
        )
        .map_err(|e| e.to_string())?;
        config.validate()?;
        let authorizer = config.authorizer();
        assert!(authorizer.super_users.contains("User:admin"));
        assert!(authorizer.allow_everyone_if_no_acl_found);
        let not_a_principal = BrokerConfig {
            super_users: vec!["admin".into()],
            ..BrokerConfig::default()
        };
        assert!(not_a_principal.validate().is_err());
        Ok(())
    }

    /// Two voters at one peer address (exploratory testing accepted it).
    #[test]
    fn r_start_5_voters_at_one_peer_address_are_refused() -> Result<(), String> {
        let voters = |text: &str| -> Result<BrokerConfig, String> {
            Ok(BrokerConfig {
                node_id: 1,
                voters: BrokerConfig::parse_voters(text)?,
                ..BrokerConfig::default()
            })
        };
        voters("1@127.0.0.1:9001,2@127.0.0.1:9002")?.validate()?;
        let shared = voters("1@127.0.0.1:9001,2@127.0.0.1:9001")?.validate();
        assert_eq!(
            shared,
            Err("voters must have distinct peer addresses".into())
        );
        Ok(())
    }
}
