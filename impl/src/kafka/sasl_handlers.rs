//! SaslHandshake and SaslAuthenticate (KIP-43, KIP-152), and the bare tokens of the
//! v0 framing: the protocol side of a connection's authentication. The decisions
//! are the core's (`chronik_core::security::sasl`); the connection (broker/server.rs)
//! calls these in request order, before any later request of the connection is read.

use super::codec::{self, Request};
use super::errors;
use bytes::{BufMut, Bytes, BytesMut};
use chronik_core::security::sasl::{
    Authentication, CredentialStore, Entropy, HandshakeError, Step,
};
use kafka_protocol::messages::{
    ApiKey, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rand::distributions::Alphanumeric;
use rand::Rng;

/// A response frame, and whether the connection ends once it is sent (after the
/// failed-authentication delay).
pub struct SaslAnswer {
    pub frame: Bytes,
    pub failed: bool,
}

pub fn handshake(
    auth: &mut Authentication,
    request: &Request,
    mechanism: &str,
) -> Result<SaslAnswer, String> {
    let (error_code, offered, failed) = match auth.handshake(mechanism, request.version) {
        Ok(()) => (errors::NONE, vec![mechanism.to_string()], false),
        // Kafka closes the connection after either refusal too.
        Err(HandshakeError::Unsupported(offered)) => {
            (errors::UNSUPPORTED_SASL_MECHANISM, offered, true)
        }
        Err(HandshakeError::IllegalState) => (errors::ILLEGAL_SASL_STATE, Vec::new(), true),
    };
    let body = SaslHandshakeResponse::default()
        .with_error_code(error_code.code())
        .with_mechanisms(offered.into_iter().map(StrBytes::from_string).collect());
    let frame = encode(request, ResponseKind::SaslHandshake(body))?;
    Ok(SaslAnswer { frame, failed })
}

pub fn authenticate(
    auth: &mut Authentication,
    request: &Request,
    token: &[u8],
    credentials: &dyn CredentialStore,
    now_ms: u64,
) -> Result<SaslAnswer, String> {
    let mut body = SaslAuthenticateResponse::default();
    let failed = match auth.authenticate(token, credentials, entropy(), now_ms) {
        Step::Continue(reply) => {
            body.auth_bytes = Bytes::from(reply);
            false
        }
        Step::Done {
            token,
            session_lifetime_ms,
        } => {
            body.auth_bytes = Bytes::from(token);
            body.session_lifetime_ms = session_lifetime_ms;
            false
        }
        Step::Failed(message) => {
            body.error_code = errors::SASL_AUTHENTICATION_FAILED.code();
            body.error_message = Some(StrBytes::from_string(message));
            true
        }
    };
    let frame = encode(request, ResponseKind::SaslAuthenticate(body))?;
    Ok(SaslAnswer { frame, failed })
}

/// A bare token after a v0 handshake: the answer is a bare size-prefixed token; a
/// failure has no way to say so but closing the connection (as Kafka does).
pub fn raw_token(
    auth: &mut Authentication,
    token: &[u8],
    credentials: &dyn CredentialStore,
    now_ms: u64,
) -> SaslAnswer {
    let reply = match auth.authenticate(token, credentials, entropy(), now_ms) {
        Step::Continue(reply) | Step::Done { token: reply, .. } => reply,
        Step::Failed(message) => {
            tracing::warn!(%message, "SASL authentication failed");
            return SaslAnswer {
                frame: Bytes::new(),
                failed: true,
            };
        }
    };
    let mut frame = BytesMut::with_capacity(4 + reply.len());
    frame.put_u32(reply.len() as u32);
    frame.put_slice(&reply);
    SaslAnswer {
        frame: frame.freeze(),
        failed: false,
    }
}

fn encode(request: &Request, body: ResponseKind) -> Result<Bytes, String> {
    let api_key = match body {
        ResponseKind::SaslHandshake(_) => ApiKey::SaslHandshake,
        _ => ApiKey::SaslAuthenticate,
    };
    codec::encode_response(
        api_key,
        request.version,
        request.header.correlation_id,
        &body,
    )
}

fn entropy() -> Entropy {
    let mut rng = rand::thread_rng();
    let nonce: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    Entropy {
        nonce,
        decoy_key: decoy_key().to_vec(),
    }
}

/// Drawn once per process: unknown users' decoy salts stay the same for its life.
fn decoy_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| rand::thread_rng().gen())
}
