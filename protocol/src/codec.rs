//! Request framing and headers. A request frame is `[size i32][header][body]`;
//! which header version applies depends on the API and its version, and the
//! response header version likewise (ApiVersions always answers with v0).

use super::{errors, old_versions, versions};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use chronik_core::errors::ErrorCode;
use chronik_core::security::Principal;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A request ready for a handler.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
    /// The client's address, set by the listener (for DescribeGroups' client host).
    pub peer: String,
    /// Who sent it: set by the listener from the connection's authentication
    /// (`User:ANONYMOUS` until then).
    pub principal: Principal,
    /// The name of the listener it came in on (Metadata answers with that
    /// listener's addresses).
    pub listener: String,
    /// What an old version says that the body's types have no field for.
    pub extras: old_versions::Extras,
}

#[derive(Debug)]
pub enum Decoded {
    Request(Box<Request>),
    /// The answer is known without a handler: send this frame and go on.
    Answer(Bytes),
}

/// A request that cannot be answered in its own format; the connection is closed
/// with a log line naming the peer and this reason (R-WIRE-4).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} version {version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Undecodable {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one request frame (without its size prefix).
pub fn decode_request(frame: Bytes) -> Result<Decoded, CodecError> {
    if frame.len() < 8 {
        return Err(CodecError::Malformed(format!(
            "{} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let mut peek = &frame[..8];
    let raw_key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|_| CodecError::UnknownApiKey(raw_key))?;
    let Some((lo, hi)) = versions::supported(api_key) else {
        return Err(CodecError::UnsupportedVersion {
            api: api_key,
            version,
        });
    };
    if !(lo..=hi).contains(&version) {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: a client newer than us learns our versions from a v0-format
            // error answer, then retries with a version we list (R-WIRE-1).
            return Ok(Decoded::Answer(api_versions_error(correlation_id)?));
        }
        return Err(CodecError::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    let mut buf = frame;
    let header_version = api_key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut buf, header_version).map_err(|e| CodecError::Undecodable {
            api: api_key,
            version,
            reason: format!("header: {e}"),
        })?;
    let undecodable = |reason: String| CodecError::Undecodable {
        api: api_key,
        version,
        reason,
    };
    let (body, extras) = if old_versions::is_old(api_key, version) {
        old_versions::decode(api_key, version, &mut buf).map_err(undecodable)?
    } else {
        let body = RequestKind::decode(api_key, &mut buf, version)
            .map_err(|e| undecodable(e.to_string()))?;
        (body, old_versions::Extras::default())
    };
    Ok(Decoded::Request(Box::new(Request {
        api_key,
        version,
        header,
        body,
        peer: String::new(),
        principal: Principal::anonymous(),
        listener: String::new(),
        extras,
    })))
}

/// The ApiVersions body listing everything this broker implements.
pub fn api_versions_body(error_code: ErrorCode) -> ApiVersionsResponse {
    let keys = versions::all()
        .into_iter()
        .map(|(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(lo)
                .with_max_version(hi)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code.code())
        .with_api_keys(keys)
}

fn api_versions_error(correlation_id: i32) -> Result<Bytes, CodecError> {
    let body = ResponseKind::ApiVersions(api_versions_body(errors::UNSUPPORTED_VERSION));
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body).map_err(CodecError::Malformed)
}

/// Encodes a response frame, size prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, String> {
    frame(api_key, version, correlation_id, |buf| {
        if old_versions::is_old(api_key, version) {
            old_versions::encode(api_key, version, body, buf)
        } else {
            body.encode(buf, version).map_err(|e| e.to_string())
        }
    })
}

/// A response frame: size, the header `api_key` and `version` call for, and the body
/// `write_body` writes.
pub fn frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    write_body: impl FnOnce(&mut BytesMut) -> Result<(), String>,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // size, patched below
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| format!("encode {api_key:?} v{version} header: {e}"))?;
    write_body(&mut buf).map_err(|e| format!("encode {api_key:?} v{version}: {e}"))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}
