//! A minimal Kafka client for broker-to-broker requests (the replica fetcher's Fetch
//! and OffsetForLeaderEpoch), on the same wire format and codec as clients use.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Larger responses than this from a peer broker are refused.
const MAX_RESPONSE: usize = 256 << 20;

pub struct KafkaConnection {
    stream: TcpStream,
    next_correlation: i32,
    client_id: StrBytes,
}

impl KafkaConnection {
    pub async fn connect(addr: &str, client_id: String, timeout: Duration) -> Result<Self, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(KafkaConnection {
            stream,
            next_correlation: 1,
            client_id: StrBytes::from_string(client_id),
        })
    }

    /// Sends one request and waits (at most `timeout`) for its response.
    pub async fn call(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &RequestKind,
        timeout: Duration,
    ) -> Result<ResponseKind, String> {
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api_key.request_header_version(version))
            .map_err(|e| format!("encode header: {e}"))?;
        request
            .encode(&mut body, version)
            .map_err(|e| format!("encode {api_key:?}: {e}"))?;
        let mut framed = BytesMut::with_capacity(4 + body.len());
        framed.put_u32(body.len() as u32);
        framed.extend_from_slice(&body);
        let exchange = async {
            self.stream
                .write_all(&framed)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut len = [0u8; 4];
            self.stream
                .read_exact(&mut len)
                .await
                .map_err(|e| format!("receive: {e}"))?;
            let len = u32::from_be_bytes(len) as usize;
            if len > MAX_RESPONSE {
                return Err(format!("response of {len} bytes is too large"));
            }
            let mut frame = vec![0u8; len];
            self.stream
                .read_exact(&mut frame)
                .await
                .map_err(|e| format!("receive: {e}"))?;
            Ok(Bytes::from(frame))
        };
        let mut frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{api_key:?} timed out"))??;
        let response_header =
            ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
                .map_err(|e| format!("decode response header: {e}"))?;
        if response_header.correlation_id != correlation_id {
            return Err(format!(
                "response for correlation id {} where {correlation_id} was expected",
                response_header.correlation_id
            ));
        }
        let response = ResponseKind::decode(api_key, &mut frame, version)
            .map_err(|e| format!("decode {api_key:?} response: {e}"))?;
        if frame.has_remaining() {
            tracing::debug!(
                ?api_key,
                extra = frame.remaining(),
                "response had trailing bytes"
            );
        }
        Ok(response)
    }
}
