//! The peer transport: Raft messages and forwarded metadata proposals between nodes,
//! over TCP. Frames are `[u32 length][u32 crc32][payload]` (the partition log's frame
//! format), the payload `[u8 kind][u64 sender][body]`. Sending never blocks the caller:
//! each peer has a bounded queue drained by its own task, which connects, reconnects
//! with backoff, and drops what it cannot deliver (Raft tolerates lost messages; a
//! forwarded proposal times out at its origin and is retried by the client).
//!
//! Every connection starts with the handshake of R-SEC-9 (`chronik_core::security::
//! peer_auth`): the connecting node proves the cluster secret and names a voter, the
//! accepting node proves the secret back, and every frame after it must come from the
//! node that proved itself. A process that is not a voter gets nothing in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::log::frame;
pub use chronik_core::consensus::{ForwardOutcome, PeerMessage};
use chronik_core::security::peer_auth::{self, HELLO_LEN, NONCE_LEN, PROOF_LEN};
use rand::Rng;

/// The largest frame a peer may send: Raft appends are bounded by raft-rs's
/// `max_size_per_msg`, so anything near this is garbage or an attack.
const MAX_FRAME: usize = 64 << 20;
/// Frames queued per peer before new ones are dropped.
const QUEUE: usize = 4096;
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// A peer that does not complete the handshake within this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handshake needs: the cluster secret and who may connect.
#[derive(Clone)]
pub struct PeerSecurity {
    pub secret: Arc<Vec<u8>>,
    pub voters: Arc<Vec<u64>>,
}

/// Where received messages go: the consensus loop's input queue.
pub type Inbound = Arc<dyn Fn(u64, PeerMessage) + Send + Sync>;

/// A cheap handle: send to a peer without blocking.
#[derive(Clone)]
pub struct Transport {
    me: u64,
    peers: Arc<HashMap<u64, mpsc::Sender<Vec<u8>>>>,
}

impl Transport {
    /// Binds the peer listener and starts one sender task per peer. Waits for no
    /// peer: a peer that is down is retried in the background (R-START-1).
    pub async fn start(
        me: u64,
        listen: SocketAddr,
        peers: Vec<(u64, SocketAddr)>,
        inbound: Inbound,
        security: PeerSecurity,
    ) -> std::io::Result<Transport> {
        let listener = TcpListener::bind(listen).await?;
        tokio::spawn(accept(listener, inbound, security.clone()));
        let mut senders = HashMap::new();
        for (id, addr) in peers.into_iter().filter(|(id, _)| *id != me) {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(send_loop(me, id, addr, rx, security.clone()));
            senders.insert(id, tx);
        }
        Ok(Transport {
            me,
            peers: Arc::new(senders),
        })
    }

    /// Queues a message; drops it if the peer is unknown or its queue is full.
    pub fn send(&self, to: u64, message: &PeerMessage) {
        let Some(queue) = self.peers.get(&to) else {
            tracing::debug!(to, "message to an unknown peer dropped");
            return;
        };
        match message.encode(self.me) {
            Ok(bytes) => {
                if queue.try_send(bytes).is_err() {
                    tracing::debug!(to, "peer queue full or closed; message dropped");
                }
            }
            Err(e) => tracing::error!(to, error = %e, "cannot encode a peer message"),
        }
    }
}

async fn accept(listener: TcpListener, inbound: Inbound, security: PeerSecurity) {
    loop {
        match listener.accept().await {
            Ok((mut stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let inbound = Arc::clone(&inbound);
                let security = security.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        prove_and_check(&mut stream, &security),
                    );
                    let peer = match handshake.await {
                        Ok(Ok(peer)) => peer,
                        Ok(Err(e)) => {
                            return tracing::warn!(%addr, error = %e, "peer connection refused")
                        }
                        Err(_) => {
                            return tracing::warn!(%addr, "peer connection refused: no handshake in time")
                        }
                    };
                    if let Err(e) = receive(stream, peer, inbound).await {
                        tracing::debug!(%addr, error = %e, "peer connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection failed");
                tokio::time::sleep(BACKOFF_MIN).await;
            }
        }
    }
}

/// The accepting side of the handshake: the authenticated node id.
async fn prove_and_check(stream: &mut TcpStream, security: &PeerSecurity) -> Result<u64, String> {
    let challenge: [u8; NONCE_LEN] = rand::thread_rng().gen();
    stream
        .write_all(&challenge)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut hello = [0u8; HELLO_LEN];
    stream
        .read_exact(&mut hello)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let voters = &security.voters;
    let (peer, answer) = peer_auth::check_hello(&security.secret, &challenge, &hello, |id| {
        voters.contains(&id)
    })
    .map_err(|e| e.to_string())?;
    stream
        .write_all(&answer)
        .await
        .map_err(|e| format!("write: {e}"))?;
    Ok(peer)
}

/// The connecting side of the handshake.
async fn introduce(stream: &mut TcpStream, me: u64, security: &PeerSecurity) -> Result<(), String> {
    let mut challenge = [0u8; NONCE_LEN];
    stream
        .read_exact(&mut challenge)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let nonce: [u8; NONCE_LEN] = rand::thread_rng().gen();
    let hello = peer_auth::hello(&security.secret, me, &nonce, &challenge);
    stream
        .write_all(&hello)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = [0u8; PROOF_LEN];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    peer_auth::check_answer(&security.secret, me, &nonce, &challenge, &answer)
        .map_err(|e| e.to_string())
}

async fn receive(mut stream: TcpStream, peer: u64, inbound: Inbound) -> Result<(), String> {
    let mut header = [0u8; frame::FRAME_HEADER_LEN];
    loop {
        if let Err(e) = stream.read_exact(&mut header).await {
            return Err(format!("read: {e}"));
        }
        let (len, crc) = frame::parse_header(&header);
        let len = len as usize;
        if len > MAX_FRAME {
            return Err(format!("peer frame of {len} bytes exceeds {MAX_FRAME}"));
        }
        let mut payload = vec![0u8; len];
        stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if frame::checksum(&payload) != crc {
            return Err("peer frame checksum mismatch".into());
        }
        let (from, message) = PeerMessage::decode(&payload)?;
        if from != peer {
            return Err(format!("node {peer} sent a message as node {from}"));
        }
        inbound(from, message);
    }
}

async fn send_loop(
    me: u64,
    peer: u64,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Vec<u8>>,
    security: PeerSecurity,
) {
    let mut backoff = BACKOFF_MIN;
    // A refused handshake is a misconfiguration worth one warning, not one a retry.
    let mut warned = false;
    loop {
        let connected = async {
            let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, introduce(&mut stream, me, &security))
                .await
            {
                Ok(Ok(())) => Ok(stream),
                Ok(Err(e)) => Err(format!("handshake: {e}")),
                Err(_) => Err("handshake: no answer in time".to_string()),
            }
        };
        let stream = match connected.await {
            Ok(s) => s,
            Err(e) => {
                if e.starts_with("handshake") && !warned {
                    warned = true;
                    tracing::warn!(peer, %addr, error = %e, "peer refused our handshake (is peer_secret_file the same on every node?); retrying");
                } else {
                    tracing::trace!(peer, %addr, error = %e, "peer unreachable; retrying");
                }
                // What piles up while the peer is down is stale by the time it is
                // back (heartbeats, old votes): keep only what fits the queue.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = BACKOFF_MIN;
        warned = false;
        let mut writer = BufWriter::new(stream);
        loop {
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut result = writer.write_all(&first).await;
            // Batch whatever else is queued into one flush.
            while result.is_ok() {
                match queue.try_recv() {
                    Ok(next) => result = writer.write_all(&next).await,
                    Err(_) => break,
                }
            }
            if result.is_ok() {
                result = writer.flush().await;
            }
            if let Err(e) = result {
                tracing::debug!(peer, error = %e, "peer connection lost; reconnecting");
                break;
            }
        }
    }
}
