//! R-SEC-9: the peer port accepts messages only from a voter that proves the cluster
//! secret, and only as itself. Real transports on loopback; the intruders are raw
//! TCP clients and transports with the wrong secret or a non-voter id.

use chronik::cluster::{Inbound, PeerMessage, PeerSecurity, Transport};
use chronik::metadata::MetadataCommand;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

type Received = Arc<Mutex<Vec<u64>>>;

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address")
}

fn security(secret: &[u8]) -> PeerSecurity {
    PeerSecurity {
        secret: Arc::new(secret.to_vec()),
        voters: Arc::new(vec![1, 2]),
    }
}

fn recording() -> (Inbound, Received) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let inbound: Inbound = Arc::new(move |from, _message| {
        if let Ok(mut seen) = sink.lock() {
            seen.push(from);
        }
    });
    (inbound, received)
}

fn message() -> PeerMessage {
    PeerMessage::Forward {
        request_id: 1,
        command: MetadataCommand::AllocateProducerId,
    }
}

/// A transport of node `me` that sends one message to node 1 at `target`.
async fn send_as(me: u64, target: SocketAddr, secret: &[u8]) -> Transport {
    let (inbound, _) = recording();
    let transport = Transport::start(
        me,
        free_addr(),
        vec![(1, target)],
        inbound,
        security(secret),
    )
    .await
    .expect("transport starts");
    transport.send(1, &message());
    transport
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn r_sec_9_only_voters_holding_the_secret_reach_the_consensus_loop() {
    const SECRET: &[u8] = b"a shared secret of the cluster";
    let addr = free_addr();
    let (inbound, received) = recording();
    let _node_1 = Transport::start(1, addr, vec![], inbound, security(SECRET))
        .await
        .expect("node 1 starts");

    // A raw client writing a well-formed frame without the handshake.
    let mut raw = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let frame = message().encode(2).expect("encode");
    let _ = raw.write_all(&[vec![0u8; 72], frame].concat()).await;
    // The wrong secret, and a node id that is not a voter.
    let _wrong = send_as(2, addr, b"not the secret of the cluster").await;
    let _stranger = send_as(3, addr, SECRET).await;
    settle().await;
    assert_eq!(*received.lock().expect("lock"), Vec::<u64>::new());

    let _node_2 = send_as(2, addr, SECRET).await;
    settle().await;
    assert_eq!(*received.lock().expect("lock"), vec![2]);
}
