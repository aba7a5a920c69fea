//! `kafka_request`: the frame decoder the Kafka listener runs on every request.

use crate::alloc::{self, assert_within};
use bytes::{Buf, Bytes, BytesMut};
use chronik::kafka::codec::{decode_request, Decoded, Request};
use kafka_protocol::messages::{ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Bytes a decoded request may really write per byte of its frame: a one-byte
/// element of a compact array becomes a struct of a few hundred bytes.
const TOUCHED_PER_BYTE: usize = 512;
const TOUCHED_SLACK: usize = 1 << 20;

/// `data` is a request frame without its size prefix, as the listener hands it over.
/// Checks: no panic; what was written stays within a multiple of the frame (the
/// reservations kafka-protocol makes from array lengths are address space only, and
/// are not bounded here: see `alloc`); a request that decodes encodes again, in the
/// same version, to bytes that decode to the same request (but for
/// [`has_negative_tag`]); an early ApiVersions
/// answer is a well-formed v0 response to this correlation id.
pub fn kafka_request(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let (decoded, usage) = alloc::measure(|| decode_request(frame));
    let cap = TOUCHED_SLACK + TOUCHED_PER_BYTE * data.len();
    assert_within("request decode wrote", usage.touched_peak, cap, data.len());
    match decoded {
        Ok(Decoded::Request(request)) => round_trip(&request),
        Ok(Decoded::Answer(answer)) => check_early_answer(data, answer),
        Err(_) => {}
    }
}

fn round_trip(request: &Request) {
    // Versions below kafka-protocol 0.18's range were read by the old-versions path
    // (`kafka/old_versions.rs`, R-WIRE-13) into the body of a later version: they have
    // no encoding of their own in this crate to round-trip through.
    if has_negative_tag(request) || request.version < request.api_key.valid_versions().min {
        return;
    }
    let mut bytes = BytesMut::new();
    let header_version = request.api_key.request_header_version(request.version);
    request
        .header
        .encode(&mut bytes, header_version)
        .expect("a decoded header encodes");
    request
        .body
        .encode(&mut bytes, request.version)
        .expect("a decoded body encodes");
    let again = match decode_request(bytes.freeze()) {
        Ok(Decoded::Request(again)) => again,
        other => panic!(
            "a re-encoded {:?} does not decode: {other:?}",
            request.api_key
        ),
    };
    assert_eq!(
        again.header, request.header,
        "header changed in a round trip"
    );
    assert_eq!(again.body, request.body, "body changed in a round trip");
}

/// kafka-protocol 0.18 keeps an unknown tag of 2^31 or more as a negative key,
/// which its encoder skips while still counting it, so such a request does not
/// survive a re-encoding. The broker never re-encodes a request, so this is the
/// crate's asymmetry, not the broker's; such inputs are left out of the round trip.
/// (A sorted map prints its negative keys first.)
fn has_negative_tag(request: &Request) -> bool {
    format!("{request:?}").contains("unknown_tagged_fields: {-")
}

fn check_early_answer(data: &[u8], answer: Bytes) {
    let correlation_id = i32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let mut buf = answer;
    let size = buf.get_i32();
    assert_eq!(size as usize, buf.len(), "size prefix of the early answer");
    let header = ResponseHeader::decode(&mut buf, 0).expect("answer header");
    assert_eq!(header.correlation_id, correlation_id);
    let body = ApiVersionsResponse::decode(&mut buf, 0).expect("answer body");
    assert_eq!(
        body.error_code,
        chronik::kafka::errors::UNSUPPORTED_VERSION.code()
    );
    assert!(!buf.has_remaining(), "bytes after the early answer");
}
