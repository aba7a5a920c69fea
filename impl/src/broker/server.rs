//! The Kafka listener: one task per connection reading frames, one task per request,
//! and a writer that sends responses in request order (R-WIRE-3).
//!
//! Bounds on what a client can hold (R-WIRE-12): connection counts
//! (`connection_limits.rs`); here, a connection with nothing in flight that starts no
//! request within `connections_max_idle_ms` is closed, and a frame whose size has
//! arrived must arrive whole within `request_receive_timeout_ms`.

use super::connection_limits::{ConnectionLimits, Refusal, Slot};
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
                tokio::spawn(serve_connection(Arc::clone(&broker), stream, peer, slot));
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

async fn serve_connection(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr, slot: Slot) {
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
    let end = read_requests(&broker, &mut reader, peer, &queue, &in_flight).await;
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
    broker: &Arc<Broker>,
    reader: &mut OwnedReadHalf,
    peer: SocketAddr,
    queue: &mpsc::Sender<Pending>,
    in_flight: &watch::Sender<usize>,
) -> End {
    let config = &broker.config;
    let idle = Duration::from_millis(config.connections_max_idle_ms);
    let receive = Duration::from_millis(config.request_receive_timeout_ms);
    let limit = config.max_request_bytes;
    loop {
        // A failed read of the size means the client closed the connection.
        let size = tokio::select! {
            size = reader.read_i32() => match size {
                Ok(size) => size,
                Err(_) => return End::ClientClosed,
            },
            () = idle_for(in_flight.subscribe(), idle) => return End::Idle,
            () = queue.closed() => return End::WriterGone,
        };
        if size < 0 || size as usize > limit {
            tracing::warn!(%peer, size, limit, "closing connection: request frame size out of bounds");
            return End::BadInput;
        }
        let mut frame = vec![0u8; size as usize];
        match tokio::time::timeout(receive, reader.read_exact(&mut frame)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(%peer, size, error = %e, "closing connection: truncated request frame");
                return End::BadInput;
            }
            Err(_) => return End::ReceiveTimeout,
        }
        let Some(pending) = dispatch(broker, frame, peer) else {
            return End::BadInput;
        };
        in_flight.send_modify(|n| *n += 1);
        if queue.send(pending).await.is_err() {
            return End::WriterGone;
        }
    }
}

/// Decodes a frame and starts its handler; `None` when the frame is refused.
fn dispatch(broker: &Arc<Broker>, frame: Vec<u8>, peer: SocketAddr) -> Option<Pending> {
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
            // Called here, on the reader, so a connection's appends keep request order.
            Some(tokio::spawn(handlers::start(Arc::clone(broker), *request)))
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
    while let Some(pending) = responses.recv().await {
        let outcome = pending.await;
        let written = match outcome {
            Ok(Ok(Some(frame))) => {
                broker.metrics.response(frame.len());
                writer.write_all(&frame).await.is_ok()
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
