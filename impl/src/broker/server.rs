//! The Kafka listener: one task per connection reading frames, one task per request,
//! and a writer that sends responses in request order (R-WIRE-3).

use super::shared::Broker;
use crate::kafka::codec::{self, Decoded};
use crate::kafka::handlers;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// Requests of one connection being handled at once; more wait, which is the
/// back-pressure a pipelining client sees.
const MAX_IN_FLIGHT: usize = 16;

pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let connections = Arc::new(Semaphore::new(broker.config.max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, limit = broker.config.max_connections, "closing connection: connection limit reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            serve_connection(broker, stream, peer).await;
            drop(permit);
        });
    }
}

type Pending = JoinHandle<Result<Option<Bytes>, String>>;

async fn serve_connection(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let (mut reader, mut writer) = stream.into_split();
    let (queue, mut responses) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    let metrics = Arc::clone(&broker.metrics);
    let writer_task = tokio::spawn(async move {
        while let Some(pending) = responses.recv().await {
            match pending.await {
                Ok(Ok(Some(frame))) => {
                    metrics.response(frame.len());
                    if writer.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(None)) => {} // acks=0: no response
                Ok(Err(reason)) => {
                    tracing::error!(%peer, %reason, "closing connection: response could not be encoded");
                    return;
                }
                Err(e) => {
                    tracing::error!(%peer, error = %e, "closing connection: request handler failed");
                    return;
                }
            }
        }
    });
    let limit = broker.config.max_request_bytes;
    // A failed read of the size means the client closed the connection.
    while let Ok(size) = reader.read_i32().await {
        if size < 0 || size as usize > limit {
            tracing::warn!(%peer, size, limit, "closing connection: request frame size out of bounds");
            break;
        }
        let mut frame = vec![0u8; size as usize];
        if let Err(e) = reader.read_exact(&mut frame).await {
            tracing::warn!(%peer, size, error = %e, "closing connection: truncated request frame");
            break;
        }
        let size = frame.len();
        let pending: Pending = match codec::decode_request(Bytes::from(frame)) {
            Ok(Decoded::Answer(bytes)) => {
                broker.metrics.request("ApiVersions", size);
                tokio::spawn(async move { Ok(Some(bytes)) })
            }
            Ok(Decoded::Request(mut request)) => {
                request.peer = peer.ip().to_string();
                broker
                    .metrics
                    .request(&format!("{:?}", request.api_key), size);
                tokio::spawn(handlers::start(Arc::clone(&broker), *request))
            }
            Err(e) => {
                broker.metrics.error("invalid_request");
                tracing::warn!(%peer, reason = %e, "closing connection");
                break;
            }
        };
        if queue.send(pending).await.is_err() {
            break;
        }
    }
    drop(queue);
    let _ = writer_task.await;
}
