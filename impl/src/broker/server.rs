//! The Kafka listener: one task per connection reading frames, one task per request,
//! and a writer that sends responses in request order (R-WIRE-3).
//!
//! Bounds on what a client can hold (R-WIRE-12): connection counts
//! (`connection_limits.rs`); here, a connection with nothing in flight that starts no
//! request within `connections_max_idle_ms` is closed, and a frame whose size has
//! arrived must arrive whole within `request_receive_timeout_ms`; a frame's bytes come
//! from the broker-wide budget (`request_memory.rs`) before its body is read.

use super::connection_limits::{ConnectionLimits, Refusal, Slot};
use super::request_memory::{Held, RequestMemory};
use super::shared::Broker;
use crate::kafka::codec::{self, Decoded};
use crate::kafka::handlers;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Requests of one connection being handled at once; more wait, which is the
/// back-pressure a pipelining client sees.
const MAX_IN_FLIGHT: usize = 16;

/// A client reconnecting in a loop against a full broker would otherwise write a
/// log line per attempt.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let config = &broker.config;
    let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
    let memory = Arc::new(RequestMemory::new(
        config.request_memory_bytes(),
        Arc::clone(&broker.metrics),
    ));
    let mut refusals = RefusalLog::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        match limits.admit(peer.ip()) {
            Ok(slot) => {
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    broker: Arc::clone(&broker),
                    memory: Arc::clone(&memory),
                    peer,
                };
                tokio::spawn(connection.serve(stream, slot));
            }
            // Dropping the stream closes it: the client hears at once.
            Err(refusal) => {
                broker.metrics.connection_refused(refusal.name());
                refusals.note(peer, refusal);
            }
        }
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

type Pending = JoinHandle<Result<Option<Bytes>, String>>;

/// Why a connection's reader stopped.
enum End {
    ClientClosed,
    /// Already logged where it was found.
    BadInput,
    Idle,
    ReceiveTimeout,
    WriterGone,
}

/// What a connection's tasks share.
struct Connection {
    broker: Arc<Broker>,
    memory: Arc<RequestMemory>,
    peer: SocketAddr,
}

impl Connection {
    async fn serve(self, stream: TcpStream, slot: Slot) {
        let (broker, peer) = (Arc::clone(&self.broker), self.peer);
        broker.metrics.connection_opened();
        let (mut reader, writer) = stream.into_split();
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
        let end = self.read_requests(&mut reader, &queue, &in_flight).await;
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
            End::ClientClosed | End::BadInput | End::WriterGone => {}
        }
        drop(queue);
        let _ = writer_task.await;
        broker.metrics.connection_ended();
        drop(slot);
    }

    async fn read_requests(
        &self,
        reader: &mut OwnedReadHalf,
        queue: &mpsc::Sender<Pending>,
        in_flight: &watch::Sender<usize>,
    ) -> End {
        let mut commits = CommitChain::default();
        loop {
            let size = match self.next_size(reader, queue, in_flight).await {
                Ok(size) => size,
                Err(end) => return end,
            };
            let (frame, held) = match self.receive_frame(reader, size).await {
                Ok(received) => received,
                Err(end) => return end,
            };
            let Some(pending) = dispatch(&self.broker, frame, self.peer, held, &mut commits) else {
                return End::BadInput;
            };
            in_flight.send_modify(|n| *n += 1);
            if queue.send(pending).await.is_err() {
                return End::WriterGone;
            }
        }
    }

    /// The next frame's size, checked against `max_request_bytes`.
    async fn next_size(
        &self,
        reader: &mut OwnedReadHalf,
        queue: &mpsc::Sender<Pending>,
        in_flight: &watch::Sender<usize>,
    ) -> Result<usize, End> {
        let idle = Duration::from_millis(self.broker.config.connections_max_idle_ms);
        // A failed read of the size means the client closed the connection.
        let size = tokio::select! {
            size = reader.read_i32() => size.map_err(|_| End::ClientClosed)?,
            () = idle_for(in_flight.subscribe(), idle) => return Err(End::Idle),
            () = queue.closed() => return Err(End::WriterGone),
        };
        let limit = self.broker.config.max_request_bytes;
        match usize::try_from(size) {
            Ok(size) if size <= limit => Ok(size),
            _ => {
                tracing::warn!(peer = %self.peer, size, limit, "closing connection: request frame size out of bounds");
                Err(End::BadInput)
            }
        }
    }

    /// Takes the frame's bytes from the budget, waiting unread until they fit
    /// (backpressure, not an error), then reads the frame within the receive timeout.
    async fn receive_frame(
        &self,
        reader: &mut OwnedReadHalf,
        size: usize,
    ) -> Result<(Vec<u8>, Held), End> {
        let peer = self.peer;
        let held = self.memory.acquire(size).await.map_err(|full| {
            tracing::warn!(%peer, size, budget = full.capacity,
                "closing connection: request frame larger than queued_max_request_bytes");
            End::BadInput
        })?;
        let receive = Duration::from_millis(self.broker.config.request_receive_timeout_ms);
        let mut frame = vec![0u8; size];
        match tokio::time::timeout(receive, reader.read_exact(&mut frame)).await {
            Ok(Ok(_)) => Ok((frame, held)),
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

/// Decodes a frame and starts its handler, which gives the frame's bytes back to the
/// budget when done; `None` when the frame is refused.
fn dispatch(
    broker: &Arc<Broker>,
    frame: Vec<u8>,
    peer: SocketAddr,
    held: Held,
    commits: &mut CommitChain,
) -> Option<Pending> {
    let size = frame.len();
    match codec::decode_request(Bytes::from(frame)) {
        Ok(Decoded::Answer(bytes)) => {
            broker.metrics.request("ApiVersions", size);
            Some(tokio::spawn(async move { Ok(Some(bytes)) }))
        }
        Ok(Decoded::Request(mut request)) => {
            request.peer = peer.ip().to_string();
            broker
                .metrics
                .request(&format!("{:?}", request.api_key), size);
            let is_commit = request.api_key == kafka_protocol::messages::ApiKey::OffsetCommit;
            let chain = is_commit.then(|| commits.link());
            // Called here, on the reader, so a connection's appends keep request order.
            let handled = handlers::start(Arc::clone(broker), *request);
            Some(tokio::spawn(async move {
                let done = match chain {
                    Some((previous, done)) => {
                        if let Some(previous) = previous {
                            // An error means the previous commit's task ended without
                            // a word (aborted): it is done either way.
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
            }))
        }
        Err(e) => {
            broker.metrics.error("invalid_request");
            tracing::warn!(%peer, reason = %e, "closing connection");
            None
        }
    }
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
    mut writer: OwnedWriteHalf,
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
                match tokio::time::timeout(stall, writer.write_all(&frame)).await {
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
