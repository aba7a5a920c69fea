//! `/metrics` and `/health` over plain HTTP/1.1, for `--http-listen`.

use super::shared::Broker;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `/metrics` and `/health` until the task is aborted.
pub async fn serve_http(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request))
                .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let line = String::from_utf8_lossy(&request[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, content_type, body) = match path {
                "/metrics" => (
                    "200 OK",
                    "text/plain; version=0.0.4",
                    broker.metrics.render(
                        &broker.consensus.view(),
                        broker.partitions.all(),
                        broker.partitions.open_segment_files(),
                    ),
                ),
                "/health" => {
                    let view = broker.consensus.view();
                    // This start's own registration, not an earlier start's, which a
                    // node that cannot reach a quorum still finds in what it replayed.
                    let registration = view.state.brokers.get(&broker.config.node_id);
                    let registered = registration
                        .is_some_and(|b| b.incarnation == broker.incarnation && !b.fenced);
                    match (&view.failed, registered) {
                        (Some(why), _) => (
                            "503 Service Unavailable",
                            "text/plain",
                            format!("failed: {why}\n"),
                        ),
                        (None, false) => (
                            "503 Service Unavailable",
                            "text/plain",
                            "starting: this start is not registered (or is fenced)\n".to_string(),
                        ),
                        (None, true) => ("200 OK", "text/plain", "ok\n".to_string()),
                    }
                }
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
