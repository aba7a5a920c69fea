//! A minimal Kafka client for broker-to-broker requests (the replica fetcher's Fetch
//! and OffsetForLeaderEpoch), on the same wire format and codec as clients use. On a
//! secured inter-broker listener it speaks TLS (presenting the broker's own
//! certificate) and logs in with SASL SCRAM or PLAIN, as the broker's principal.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chronik_core::security::sasl::SaslMechanism;
use chronik_core::security::scram::ClientExchange;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::distributions::Alphanumeric;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// Larger responses than this from a peer broker are refused.
const MAX_RESPONSE: usize = 256 << 20;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How this broker connects to its peers' inter-broker listener.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    pub tls: Option<Arc<ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub user: String,
    pub password: String,
}

pub struct KafkaConnection {
    stream: Box<dyn Io>,
    next_correlation: i32,
    client_id: StrBytes,
}

impl KafkaConnection {
    /// A plaintext connection without SASL.
    pub async fn connect(addr: &str, client_id: String, timeout: Duration) -> Result<Self, String> {
        Self::connect_with(addr, client_id, timeout, &ClientSecurity::default()).await
    }

    pub async fn connect_with(
        addr: &str,
        client_id: String,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> Result<Self, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Io> = match &security.tls {
            None => Box::new(stream),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                    .map_err(|e| format!("TLS server name {host}: {e}"))?;
                let tls = TlsConnector::from(Arc::clone(config)).connect(name, stream);
                let tls = tokio::time::timeout(timeout, tls)
                    .await
                    .map_err(|_| format!("TLS handshake with {addr} timed out"))?
                    .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
                Box::new(tls)
            }
        };
        let mut connection = KafkaConnection {
            stream,
            next_correlation: 1,
            client_id: StrBytes::from_string(client_id),
        };
        if let Some(login) = &security.sasl {
            connection.log_in(login, timeout).await?;
        }
        Ok(connection)
    }

    /// SaslHandshake v1, then the mechanism's exchange in SaslAuthenticate v1.
    async fn log_in(&mut self, login: &SaslLogin, timeout: Duration) -> Result<(), String> {
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
        let request = RequestKind::SaslHandshake(handshake);
        match self
            .call(ApiKey::SaslHandshake, 1, &request, timeout)
            .await?
        {
            ResponseKind::SaslHandshake(r) if r.error_code == 0 => {}
            other => return Err(format!("SASL handshake refused: {other:?}")),
        }
        match login.mechanism {
            SaslMechanism::Plain => {
                let token = format!("\0{}\0{}", login.user, login.password);
                self.authenticate(token.into_bytes(), timeout).await?;
            }
            SaslMechanism::Scram(mechanism) => {
                let nonce: String = rand::thread_rng()
                    .sample_iter(&Alphanumeric)
                    .take(24)
                    .map(char::from)
                    .collect();
                let mut exchange =
                    ClientExchange::new(mechanism, &login.user, &login.password, &nonce);
                let first = self.authenticate(exchange.client_first(), timeout).await?;
                let last = exchange.client_final(&first).map_err(|e| e.to_string())?;
                let verdict = self.authenticate(last, timeout).await?;
                exchange
                    .verify_server(&verdict)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    async fn authenticate(&mut self, token: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, String> {
        let request = RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
        );
        match self
            .call(ApiKey::SaslAuthenticate, 1, &request, timeout)
            .await?
        {
            ResponseKind::SaslAuthenticate(r) if r.error_code == 0 => Ok(r.auth_bytes.to_vec()),
            ResponseKind::SaslAuthenticate(r) => Err(format!(
                "SASL authentication failed: {}",
                r.error_message.as_deref().unwrap_or("")
            )),
            other => Err(format!("unexpected answer to SaslAuthenticate: {other:?}")),
        }
    }

    /// The highest version of `api_key` the peer serves, if it serves it (ApiVersions
    /// v0, which every broker answers).
    pub async fn max_version(
        &mut self,
        api_key: ApiKey,
        timeout: Duration,
    ) -> Result<Option<i16>, String> {
        let request = RequestKind::ApiVersions(ApiVersionsRequest::default());
        match self.call(ApiKey::ApiVersions, 0, &request, timeout).await? {
            ResponseKind::ApiVersions(r) if r.error_code == 0 => Ok(r
                .api_keys
                .iter()
                .find(|k| k.api_key == api_key as i16)
                .map(|k| k.max_version)),
            other => Err(format!("unexpected answer to ApiVersions: {other:?}")),
        }
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
