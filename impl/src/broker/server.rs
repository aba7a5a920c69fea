//! A Kafka listener: one task per connection reading frames, one task per request,
//! and a writer that sends responses in request order (R-WIRE-3). A connection on an
//! SSL listener is TLS first; on a SASL listener it serves nothing but ApiVersions
//! and the SASL exchange until it has authenticated (spec/security.md).
//!
//! Bounds on what a client can hold (R-WIRE-12): connection counts
//! (`connection_limits.rs`); here, a connection with nothing in flight that starts no
//! request within `connections_max_idle_ms` is closed, and a frame whose size has
//! arrived must arrive whole within `request_receive_timeout_ms`; a frame's bytes come
//! from the broker-wide budget (`request_memory.rs`) before its body is read.

use super::connection_limits::{Caps, ConnectionLimits, Refusal, Slot};
use super::listeners::ListenerSpec;
use super::request_memory::{AddressShare, Held, RequestMemory, SMALL_FRAME};
use super::shared::Broker;
use super::tls::{certificate_principal, Tls};
use crate::kafka::codec::{self, Decoded, Request};
use crate::kafka::handlers;
use crate::kafka::sasl_handlers::{self, SaslAnswer};
use bytes::Bytes;
use chronik_core::security::sasl::{Admission, Authentication};
use chronik_core::security::Principal;
use kafka_protocol::messages::RequestKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Requests of one connection being handled at once; more wait, which is the
/// back-pressure a pipelining client sees.
const MAX_IN_FLIGHT: usize = 16;

/// A client reconnecting in a loop against a full broker would otherwise write a
/// log line per attempt.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// What every listener of the broker shares: its connection slots, the request
/// memory budget and the TLS configuration.
#[derive(Clone)]
pub struct Listeners {
    limits: Arc<ConnectionLimits>,
    memory: Arc<RequestMemory>,
    tls: Option<Arc<Tls>>,
    /// Failed logins and TLS handshakes, logged at most once per
    /// [`REFUSAL_LOG_EVERY`] with a count: a password guesser or a client with a bad
    /// certificate retrying in a loop would otherwise write a line per attempt.
    failures: Arc<std::sync::Mutex<FailureLog>>,
}

impl Listeners {
    pub fn new(broker: &Broker, tls: Option<Arc<Tls>>) -> Listeners {
        let config = &broker.config;
        Listeners {
            limits: ConnectionLimits::new(),
            memory: Arc::new(RequestMemory::new(
                config.request_memory_bytes(),
                Arc::clone(&broker.metrics),
            )),
            tls,
            failures: Arc::default(),
        }
    }
}

pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    spec: ListenerSpec,
    shared: Listeners,
) {
    let Listeners {
        limits,
        memory,
        tls,
        failures,
    } = shared;
    let spec = Arc::new(spec);
    let mut refusals = RefusalLog::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        match limits.admit(peer.ip(), connection_caps(&broker)) {
            Ok(slot) => {
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    broker: Arc::clone(&broker),
                    share: memory.share_of(peer.ip()),
                    memory: Arc::clone(&memory),
                    peer,
                    listener: Arc::clone(&spec),
                    failures: Arc::clone(&failures),
                };
                tokio::spawn(connection.start(stream, slot, tls.clone()));
            }
            // Dropping the stream closes it: the client hears at once.
            Err(refusal) => {
                broker.metrics.connection_refused(refusal.name());
                refusals.note(peer, refusal);
            }
        }
    }
}

/// The connection limits now: set at run time (R-WIRE-16), else configured.
fn connection_caps(broker: &Broker) -> Caps {
    let cap = |name, configured| {
        broker
            .dynamic_setting(name)
            .map_or(configured, |v| usize::try_from(v).unwrap_or(usize::MAX))
    };
    Caps {
        total: cap("max.connections", broker.config.max_connections),
        per_ip: cap(
            "max.connections.per.ip",
            broker.config.max_connections_per_ip,
        ),
    }
}

/// Logs refused connections at most once per [`REFUSAL_LOG_EVERY`], with the count
/// since the last line.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    refused: u64,
}

impl RefusalLog {
    fn note(&mut self, peer: SocketAddr, refusal: Refusal) {
        self.refused += 1;
        if self.last.is_some_and(|at| at.elapsed() < REFUSAL_LOG_EVERY) {
            return;
        }
        tracing::warn!(%peer, limit = refusal.name(), refused = self.refused,
            "closing new connections: connection limit reached");
        self.last = Some(Instant::now());
        self.refused = 0;
    }
}

/// Failed logins and TLS handshakes across every listener: the first is logged, then
/// at most one line per [`REFUSAL_LOG_EVERY`] with the count since the last.
#[derive(Default)]
struct FailureLog {
    last: Option<Instant>,
    failed: u64,
}

impl FailureLog {
    fn note(&mut self, peer: SocketAddr, listener: &str, what: &str) {
        self.failed += 1;
        if self.last.is_some_and(|at| at.elapsed() < REFUSAL_LOG_EVERY) {
            return;
        }
        tracing::warn!(%peer, %listener, failed = self.failed, "{what}");
        self.last = Some(Instant::now());
        self.failed = 0;
    }
}

type Pending = JoinHandle<Result<Option<Bytes>, String>>;

/// Why a connection's reader stopped.
enum End {
    ClientClosed,
    /// Already logged where it was found.
    BadInput,
    Idle,
    ReceiveTimeout,
    WriterGone,
    /// Failed or missing authentication (logged where found).
    Unauthenticated,
}

/// What a connection's tasks share.
struct Connection {
    broker: Arc<Broker>,
    memory: Arc<RequestMemory>,
    /// What this connection's address may hold of `memory` while frames arrive.
    share: AddressShare,
    peer: SocketAddr,
    listener: Arc<ListenerSpec>,
    failures: Arc<std::sync::Mutex<FailureLog>>,
}

impl Connection {
    /// The TLS handshake where the listener asks for it, then the connection.
    async fn start(self, stream: TcpStream, slot: Slot, tls: Option<Arc<Tls>>) {
        if !self.listener.protocol.uses_tls() {
            let (reader, writer) = stream.into_split();
            let authentication = self.authentication(Principal::anonymous());
            return self
                .serve(Box::new(reader), Box::new(writer), authentication, slot)
                .await;
        }
        let Some(acceptor) = tls.and_then(|tls| tls.acceptor()) else {
            tracing::error!(listener = %self.listener.name, "TLS listener without a TLS configuration");
            return;
        };
        // The handshake has the receive bound of a request: a client that opens a
        // connection and says nothing holds a slot no longer than that.
        let bound = Duration::from_millis(self.broker.config.request_receive_timeout_ms);
        let stream = match tokio::time::timeout(bound, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            // A port probe (connect, then close) is no failure worth a warning.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(peer = %self.peer, "connection closed before TLS");
                return;
            }
            Ok(Err(e)) => {
                self.broker.metrics.error("tls_handshake_failed");
                self.note_failure(&format!("TLS handshake failed: {e}"));
                return;
            }
            Err(_) => {
                self.broker.metrics.error("tls_handshake_timeout");
                tracing::warn!(peer = %self.peer, "TLS handshake not completed in time");
                return;
            }
        };
        let principal = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(certificate_principal)
            .unwrap_or_else(Principal::anonymous);
        let authentication = self.authentication(principal);
        let (reader, writer) = tokio::io::split(stream);
        self.serve(Box::new(reader), Box::new(writer), authentication, slot)
            .await;
    }

    fn note_failure(&self, what: &str) {
        if let Ok(mut log) = self.failures.lock() {
            log.note(self.peer, &self.listener.name, what);
        }
    }

    fn authentication(&self, principal: Principal) -> Authentication {
        let config = &self.broker.config;
        Authentication::new(
            self.listener.protocol.uses_sasl(),
            config.sasl_mechanisms().unwrap_or_default(),
            principal,
            config.connections_max_reauth_ms,
        )
    }

    async fn serve(self, mut reader: Reader, writer: Writer, auth: Authentication, slot: Slot) {
        let (broker, peer) = (Arc::clone(&self.broker), self.peer);
        broker.metrics.connection_opened();
        let (queue, responses) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
        // Requests read and not yet answered: the idle clock runs only at zero.
        let in_flight = Arc::new(watch::Sender::new(0usize));
        let writer_task = tokio::spawn(write_responses(
            Arc::clone(&broker),
            writer,
            responses,
            Arc::clone(&in_flight),
            peer,
        ));
        let end = self
            .read_requests(&mut reader, &queue, &in_flight, auth)
            .await;
        match end {
            End::Idle => {
                broker.metrics.connection_closed("idle");
                tracing::debug!(%peer, "closing idle connection");
            }
            End::ReceiveTimeout => {
                broker.metrics.connection_closed("request_receive_timeout");
                tracing::warn!(%peer, timeout_ms = broker.config.request_receive_timeout_ms,
                    "closing connection: request frame not received in time");
            }
            End::Unauthenticated => broker.metrics.connection_closed("unauthenticated"),
            End::ClientClosed | End::BadInput | End::WriterGone => {}
        }
        drop(queue);
        let _ = writer_task.await;
        broker.metrics.connection_ended();
        drop(slot);
    }

    async fn read_requests(
        &self,
        reader: &mut Reader,
        queue: &mpsc::Sender<Pending>,
        in_flight: &watch::Sender<usize>,
        mut auth: Authentication,
    ) -> End {
        let mut commits = CommitChain::default();
        let opened = Instant::now();
        loop {
            // Before a SASL login a frame is held to Kafka's
            // sasl.server.max.receive.size: a stranger cannot make the broker take
            // in max_request_bytes (R-SEC-1).
            let limit = if auth.is_authenticated() {
                self.broker.config.max_request_bytes
            } else {
                self.broker.config.sasl_server_max_receive_size
            };
            let size = match self.next_size(reader, queue, in_flight, limit).await {
                Ok(size) => size,
                Err(end) => return end,
            };
            let (frame, held) = match self.receive_frame(reader, size).await {
                Ok(received) => received,
                Err(end) => return end,
            };
            let now_ms = opened.elapsed().as_millis() as u64;
            let next = self.next_step(frame, held, &mut auth, &mut commits, now_ms);
            let (pending, end) = match next {
                Next::Answer(pending) => (pending, None),
                Next::AnswerThenClose(pending) => (pending, Some(End::Unauthenticated)),
                Next::Close(end) => return end,
            };
            in_flight.send_modify(|n| *n += 1);
            if queue.send(pending).await.is_err() {
                return End::WriterGone;
            }
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// What one frame asks: a SASL step, handled here in order, or a request for the
    /// handlers, which the connection's authentication must admit first.
    fn next_step(
        &self,
        frame: Vec<u8>,
        held: Held,
        auth: &mut Authentication,
        commits: &mut CommitChain,
        now_ms: u64,
    ) -> Next {
        let view = || self.broker.consensus.view();
        if auth.expects_raw_token() {
            let answer = sasl_handlers::raw_token(auth, &frame, &*view().state, now_ms);
            return self.sasl_answer("SaslToken", answer);
        }
        let mut request = match codec::decode_request(Bytes::from(frame)) {
            Ok(Decoded::Answer(bytes)) => {
                self.broker.metrics.request("ApiVersions", 0);
                return Next::Answer(tokio::spawn(async move { Ok(Some(bytes)) }));
            }
            Ok(Decoded::Request(request)) => request,
            Err(e) => {
                self.broker.metrics.error("invalid_request");
                tracing::warn!(peer = %self.peer, reason = %e, "closing connection");
                return Next::Close(End::BadInput);
            }
        };
        if let Admission::Close(reason) = auth.admit(request.api_key as i16, now_ms) {
            self.broker.metrics.error("unauthenticated_request");
            tracing::warn!(peer = %self.peer, listener = %self.listener.name, %reason, "closing connection");
            return Next::Close(End::Unauthenticated);
        }
        let answer = match &request.body {
            RequestKind::SaslHandshake(r) => sasl_handlers::handshake(auth, &request, &r.mechanism),
            RequestKind::SaslAuthenticate(r) => {
                let token = r.auth_bytes.clone();
                sasl_handlers::authenticate(auth, &request, &token, &*view().state, now_ms)
            }
            _ => {
                request.peer = self.peer.ip().to_string();
                request.principal = auth.principal().clone();
                request.listener = self.listener.name.clone();
                return Next::Answer(dispatch(&self.broker, *request, held, commits));
            }
        };
        match answer {
            Ok(answer) => self.sasl_answer(&format!("{:?}", request.api_key), answer),
            Err(reason) => {
                tracing::error!(peer = %self.peer, %reason, "closing connection: SASL response could not be encoded");
                Next::Close(End::BadInput)
            }
        }
    }

    /// A failed authentication is answered after the configured delay, and then
    /// the connection closes (R-SEC-2).
    fn sasl_answer(&self, api: &str, answer: SaslAnswer) -> Next {
        let SaslAnswer { frame, failed } = answer;
        self.broker.metrics.request(api, 0);
        if !failed {
            return Next::Answer(tokio::spawn(async move { Ok(Some(frame)) }));
        }
        self.broker.metrics.error("authentication_failed");
        self.note_failure("authentication failed; closing connection");
        let delay =
            Duration::from_millis(self.broker.config.connection_failed_authentication_delay_ms);
        let frame = (!frame.is_empty()).then_some(frame);
        Next::AnswerThenClose(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            Ok(frame)
        }))
    }

    /// The next frame's size, checked against `limit`.
    async fn next_size(
        &self,
        reader: &mut Reader,
        queue: &mpsc::Sender<Pending>,
        in_flight: &watch::Sender<usize>,
        limit: usize,
    ) -> Result<usize, End> {
        let idle = Duration::from_millis(self.broker.config.connections_max_idle_ms);
        // A failed read of the size means the client closed the connection.
        let size = tokio::select! {
            size = reader.read_i32() => size.map_err(|_| End::ClientClosed)?,
            () = idle_for(in_flight.subscribe(), idle) => return Err(End::Idle),
            () = queue.closed() => return Err(End::WriterGone),
        };
        match usize::try_from(size) {
            Ok(size) if size <= limit => Ok(size),
            _ => {
                tracing::warn!(peer = %self.peer, size, limit, "closing connection: request frame size out of bounds");
                Err(End::BadInput)
            }
        }
    }

    /// Takes the frame's bytes from the budget, waiting unread until they fit
    /// (backpressure, not an error), and reads the frame within the receive timeout:
    /// a small frame first, so that a client that sends a size and no body holds
    /// nothing; a large one after its address's share has room for it
    /// (`request_memory.rs`).
    async fn receive_frame(
        &self,
        reader: &mut Reader,
        size: usize,
    ) -> Result<(Vec<u8>, Held), End> {
        if size <= SMALL_FRAME {
            let frame = self.read_frame(reader, size).await?;
            return Ok((frame, self.claim(size).await?));
        }
        let receiving = self.memory.start_receiving(&self.share, size).await;
        let held = self.claim(size).await?;
        let frame = self.read_frame(reader, size).await?;
        drop(receiving);
        Ok((frame, held))
    }

    async fn claim(&self, size: usize) -> Result<Held, End> {
        let peer = self.peer;
        self.memory.acquire(size).await.map_err(|full| {
            tracing::warn!(%peer, size, budget = full.capacity,
                "closing connection: request frame larger than queued_max_request_bytes");
            End::BadInput
        })
    }

    async fn read_frame(&self, reader: &mut Reader, size: usize) -> Result<Vec<u8>, End> {
        let peer = self.peer;
        let receive = Duration::from_millis(self.broker.config.request_receive_timeout_ms);
        let mut frame = vec![0u8; size];
        match tokio::time::timeout(receive, reader.read_exact(&mut frame)).await {
            Ok(Ok(_)) => Ok(frame),
            Ok(Err(e)) => {
                tracing::warn!(%peer, size, error = %e, "closing connection: truncated request frame");
                Err(End::BadInput)
            }
            Err(_) => Err(End::ReceiveTimeout),
        }
    }
}

/// A connection's OffsetCommits take effect in the order they were sent: each starts
/// once the previous one has finished. Run concurrently, pipelined commits reached the
/// metadata log in any order and a committed offset went back (librdkafka's test 0030:
/// 49 after 50). Only commits wait for commits: holding a commit behind the same
/// connection's pending JoinGroup broke cooperative rebalancing (its commits then
/// carried a generation the join had just ended).
#[derive(Default)]
struct CommitChain {
    previous: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl CommitChain {
    /// What the next commit waits for, and how it tells its successor it is done.
    fn link(
        &mut self,
    ) -> (
        Option<tokio::sync::oneshot::Receiver<()>>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (done, next) = tokio::sync::oneshot::channel();
        (self.previous.replace(next), done)
    }
}

/// What the reader does after a frame.
enum Next {
    Answer(Pending),
    /// Send this answer, then end the connection.
    AnswerThenClose(Pending),
    Close(End),
}

/// Starts a request's handler, which gives the frame's bytes back to the budget
/// when done.
fn dispatch(
    broker: &Arc<Broker>,
    request: Request,
    held: Held,
    commits: &mut CommitChain,
) -> Pending {
    broker
        .metrics
        .request(&format!("{:?}", request.api_key), held.bytes());
    let is_commit = request.api_key == kafka_protocol::messages::ApiKey::OffsetCommit;
    let chain = is_commit.then(|| commits.link());
    // Called here, on the reader, so a connection's appends keep request order.
    let handled = handlers::start(Arc::clone(broker), request);
    tokio::spawn(async move {
        let done = match chain {
            Some((previous, done)) => {
                if let Some(previous) = previous {
                    // An error means the previous commit's task ended without a
                    // word (aborted): it is done either way.
                    let _ = previous.await;
                }
                Some(done)
            }
            None => None,
        };
        let response = handled.await;
        drop(held);
        if let Some(done) = done {
            let _ = done.send(());
        }
        response
    })
}

/// Resolves once the connection has had nothing in flight for `limit`: a request
/// being handled or a response not yet written is not idleness (a long-polling
/// Fetch or a JoinGroup waiting for its group may take minutes).
async fn idle_for(mut in_flight: watch::Receiver<usize>, limit: Duration) {
    loop {
        if in_flight.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        if tokio::time::timeout(limit, in_flight.changed())
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn write_responses(
    broker: Arc<Broker>,
    mut writer: Writer,
    mut responses: mpsc::Receiver<Pending>,
    in_flight: Arc<watch::Sender<usize>>,
    peer: SocketAddr,
) {
    // A client that stops reading its responses is idle too (Kafka's idle clock
    // stops when nothing moves on the socket): without this bound it would hold its
    // unread responses, up to MAX_IN_FLIGHT Fetch answers, for good.
    let stall = Duration::from_millis(broker.config.connections_max_idle_ms);
    while let Some(pending) = responses.recv().await {
        let outcome = pending.await;
        let written = match outcome {
            Ok(Ok(Some(frame))) => {
                broker.metrics.response(frame.len());
                // TLS holds written bytes in its records until flushed.
                let send = async {
                    writer.write_all(&frame).await?;
                    writer.flush().await
                };
                match tokio::time::timeout(stall, send).await {
                    Ok(result) => result.is_ok(),
                    Err(_) => {
                        broker.metrics.connection_closed("response_not_read");
                        tracing::debug!(%peer, "closing connection: client does not read its responses");
                        false
                    }
                }
            }
            Ok(Ok(None)) => true, // acks=0: no response
            Ok(Err(reason)) => {
                tracing::error!(%peer, %reason, "closing connection: response could not be encoded");
                false
            }
            Err(e) => {
                tracing::error!(%peer, error = %e, "closing connection: request handler failed");
                false
            }
        };
        if !written {
            return;
        }
        in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}
