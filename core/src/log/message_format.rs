//! Message formats v0 and v1 (magic 0 and 1), which Produce v0-2 carry and Fetch
//! v0-3 expect (R-WIRE-13). The log holds RecordBatch v2 only, as a Kafka 3.x log
//! does: a produced message set is converted up into one v2 batch, as Kafka's
//! LogValidator does for a log of format v2, and stored batches are converted down
//! for an old fetch, as Kafka's `RecordsUtil.downConvert` does.
//!
//! A message (both magics, big-endian): offset i64, size i32, then `size` bytes:
//! crc u32 (CRC-32 of the rest), magic i8, attributes i8 (bits 0-2 the codec, bit 3
//! LogAppendTime in v1), timestamp i64 (v1 only), key and value (i32 length, -1 for
//! null). A compressed message's value is a whole message set, compressed; its inner
//! offsets are relative (0, 1, ...) in v1 and absolute in v0, and the wrapper's offset
//! is its last inner message's.

use crate::errors::{self, ErrorCode};
use crate::log::batch::{self, Record, RecordView};
use crate::log::compression;

const LOG_OVERHEAD: usize = 12;
const TIMESTAMP_TYPE_BIT: i8 = 0x08;
const CODEC_MASK: i8 = 0x07;
pub use crate::errors::UNSUPPORTED_COMPRESSION_TYPE;

/// The magic of the first batch or message of `records` (same byte in every format).
pub fn magic(records: &[u8]) -> Option<i8> {
    records.get(16).map(|m| *m as i8)
}

/// One message of a v0/v1 message set.
#[derive(Debug, Clone, Copy)]
struct Message<'a> {
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

impl Message<'_> {
    fn codec(&self) -> i16 {
        i16::from(self.attributes & CODEC_MASK)
    }
    fn log_append_time(&self) -> bool {
        self.magic == 1 && self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
}

fn header_len(magic: i8) -> usize {
    if magic == 0 {
        6
    } else {
        14
    }
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads the message at the start of `bytes` and how many bytes it spans. None when
/// fewer bytes than a whole message remain: Kafka ignores such a tail.
fn next_message(bytes: &[u8]) -> Result<Option<(Message<'_>, usize)>, ErrorCode> {
    // The offset (bytes 0-7) is the broker's to assign; Kafka ignores the producer's.
    let Some(size) = be_i32(bytes, 8) else {
        return Ok(None);
    };
    let size = usize::try_from(size).map_err(|_| errors::CORRUPT_MESSAGE)?;
    let Some(body) = bytes.get(LOG_OVERHEAD..LOG_OVERHEAD + size) else {
        return Ok(None);
    };
    let magic = *body.get(4).ok_or(errors::CORRUPT_MESSAGE)? as i8;
    if magic == 2 {
        return Err(errors::INVALID_RECORD); // a v2 batch among messages
    }
    if !(0..=1).contains(&magic) || body.len() < header_len(magic) + 8 {
        return Err(errors::CORRUPT_MESSAGE);
    }
    let crc = be_i32(body, 0).ok_or(errors::CORRUPT_MESSAGE)? as u32;
    if crc32fast::hash(&body[4..]) != crc {
        return Err(errors::CORRUPT_MESSAGE);
    }
    let mut pos = header_len(magic);
    let key = length_prefixed(body, &mut pos)?;
    let value = length_prefixed(body, &mut pos)?;
    if pos != body.len() {
        return Err(errors::CORRUPT_MESSAGE);
    }
    let message = Message {
        magic,
        attributes: body[5] as i8,
        timestamp: if magic == 0 {
            -1
        } else {
            be_i64(body, 6).unwrap_or(-1)
        },
        key,
        value,
    };
    Ok(Some((message, LOG_OVERHEAD + size)))
}

fn length_prefixed<'a>(body: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, ErrorCode> {
    let len = be_i32(body, *pos).ok_or(errors::CORRUPT_MESSAGE)?;
    *pos += 4;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| errors::CORRUPT_MESSAGE)?;
    let field = body.get(*pos..*pos + len).ok_or(errors::CORRUPT_MESSAGE)?;
    *pos += len;
    Ok(Some(field))
}

/// Every whole message of a message set, each checked (CRC, magic, fields).
fn messages(mut bytes: &[u8]) -> Result<Vec<Message<'_>>, ErrorCode> {
    let mut out = Vec::new();
    while let Some((message, len)) = next_message(bytes)? {
        out.push(message);
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// How the topic takes a converted message set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The topic's codec; None keeps the producer's.
    pub codec: Option<i16>,
    /// The topic stamps LogAppendTime.
    pub log_append_time: bool,
}

/// Converts a produced v0/v1 message set into one RecordBatch v2 holding its records
/// with their keys, values and (v1) timestamps, in the topic's codec or else the
/// producer's, compressed records decompressed to at most `limit` bytes. None when
/// the set holds no whole message: Kafka then appends nothing and answers success.
pub fn to_record_batch(
    bytes: &[u8],
    limit: usize,
    target: Target,
) -> Result<Option<Vec<u8>>, ErrorCode> {
    let outer = messages(bytes)?;
    let Some(first) = outer.first() else {
        return Ok(None);
    };
    if outer.iter().any(|m| m.magic != first.magic) {
        return Err(errors::INVALID_RECORD);
    }
    let compressed = outer.iter().any(|m| m.codec() != compression::NONE);
    if compressed && outer.len() > 1 {
        return Err(errors::INVALID_RECORD); // Kafka: one compressed wrapper per set
    }
    let inner_bytes;
    let records = if compressed {
        inner_bytes = decompress_wrapper(first, limit)?;
        inner_records(first, &inner_bytes, target)?
    } else {
        outer
            .iter()
            .map(|m| record_of(m, m.timestamp, target))
            .collect::<Result<Vec<_>, ErrorCode>>()?
    };
    let codec = target.codec.unwrap_or(first.codec());
    build(&records, codec).map(Some)
}

/// A message as a record with its absolute timestamp; a producer may not claim
/// LogAppendTime (Kafka's validateTimestamp: allowed only on a CreateTime topic
/// for a message that carries its own timestamp, which is then kept).
fn record_of(m: &Message<'_>, timestamp: i64, target: Target) -> Result<(Record, i64), ErrorCode> {
    if m.log_append_time() && (target.log_append_time || timestamp == -1) {
        return Err(errors::INVALID_TIMESTAMP);
    }
    let record = Record {
        key: m.key.map(<[u8]>::to_vec),
        value: m.value.map(<[u8]>::to_vec),
        timestamp_delta: 0,
    };
    Ok((record, timestamp))
}

fn decompress_wrapper(wrapper: &Message<'_>, limit: usize) -> Result<Vec<u8>, ErrorCode> {
    let codec = wrapper.codec();
    if codec == compression::ZSTD {
        return Err(UNSUPPORTED_COMPRESSION_TYPE); // zstd came with format v2
    }
    let value = wrapper.value.ok_or(errors::INVALID_RECORD)?;
    let fixed;
    let payload = if codec == compression::LZ4 && wrapper.magic == 0 {
        fixed = fix_lz4_header_checksum(value);
        &fixed[..]
    } else {
        value
    };
    compression::decompress(codec, payload, limit).map_err(|e| {
        tracing::debug!(error = %e, "produce refused: compressed message");
        match e {
            compression::DecompressError::OverLimit(_) => errors::MESSAGE_TOO_LARGE,
            compression::DecompressError::Damaged(_) => errors::CORRUPT_MESSAGE,
        }
    })
}

/// The records inside a compressed wrapper: each checked as Kafka's validator does
/// (same magic as the wrapper, not itself compressed); under a LogAppendTime
/// wrapper they carry its timestamp.
fn inner_records(
    wrapper: &Message<'_>,
    inner: &[u8],
    target: Target,
) -> Result<Vec<(Record, i64)>, ErrorCode> {
    let mut rest = inner;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (m, len) = next_message(rest)?.ok_or(errors::CORRUPT_MESSAGE)?;
        if m.magic != wrapper.magic || m.codec() != compression::NONE {
            return Err(errors::INVALID_RECORD);
        }
        let stamped = Message {
            attributes: wrapper.attributes & TIMESTAMP_TYPE_BIT,
            ..m
        };
        let timestamp = if wrapper.log_append_time() {
            wrapper.timestamp
        } else {
            m.timestamp
        };
        out.push(record_of(&stamped, timestamp, target)?);
        rest = &rest[len..];
    }
    if out.is_empty() {
        return Err(errors::INVALID_RECORD);
    }
    Ok(out)
}

fn build(records: &[(Record, i64)], codec: i16) -> Result<Vec<u8>, ErrorCode> {
    let base = records.first().map_or(-1, |(_, ts)| *ts);
    let records: Vec<Record> = records
        .iter()
        .map(|(r, ts)| Record {
            timestamp_delta: ts.wrapping_sub(base),
            ..r.clone()
        })
        .collect();
    batch::build_compressed_batch(&records, base, codec).map_err(|e| {
        tracing::warn!(error = %e, "cannot build a batch from old-format messages");
        errors::CORRUPT_MESSAGE
    })
}

/// Kafka before 0.10 wrote the LZ4 frame's header checksum over the wrong bytes, and
/// reads magic 0 frames without checking it; the decoder here checks, so the right
/// checksum is written in first.
fn fix_lz4_header_checksum(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    let Some(&flags) = frame.get(4) else {
        return out;
    };
    let descriptor_end = 6 + if flags & 0x08 != 0 { 8 } else { 0 } + usize::from(flags & 1) * 4;
    if let (Some(descriptor), true) = (frame.get(4..descriptor_end), out.len() > descriptor_end) {
        out[descriptor_end] = (xxh32_short(descriptor) >> 8) as u8;
    }
    out
}

/// XXH32 with seed 0 of fewer than 16 bytes (an LZ4 frame descriptor).
fn xxh32_short(input: &[u8]) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    let mut h = P5.wrapping_add(input.len() as u32);
    let mut words = input.chunks_exact(4);
    for w in &mut words {
        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        h = h
            .wrapping_add(w.wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &b in words.remainder() {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

/// Where a down-converted answer for one partition stops.
#[derive(Debug, Clone, Copy)]
pub struct DownLimits {
    /// The first offset the client asked for; records before it are left out.
    pub fetch_offset: u64,
    /// Bytes the answer may still take.
    pub room: usize,
    /// The first message may exceed `room` (KIP-74: the fetch makes progress).
    pub first_whole: bool,
    /// Bound on one batch's decompressed records.
    pub decompress_limit: usize,
}

/// Converts stored v2 batches down to a message set of `magic` (0 for Fetch v0-1, 1
/// for v2-3) as Kafka does: one message per record of an uncompressed batch, one
/// compressed wrapper per compressed batch; headers dropped, control batches
/// skipped. Whole messages only, within `limits.room`. A zstd batch cannot be
/// expressed: UNSUPPORTED_COMPRESSION_TYPE if it comes first, else the answer stops
/// before it.
pub fn down_convert(stored: &[u8], magic: i8, limits: DownLimits) -> Result<Vec<u8>, ErrorCode> {
    let mut out = Vec::new();
    let mut rest = stored;
    while let Some(len) = be_i32(rest, 8).and_then(|l| usize::try_from(l).ok()) {
        let Some(one) = rest.get(..LOG_OVERHEAD + len) else {
            break;
        };
        rest = &rest[one.len()..];
        let header = batch::BatchHeader::parse(one).map_err(|_| errors::CORRUPT_MESSAGE)?;
        if header.is_control() {
            continue;
        }
        if header.compression() == compression::ZSTD {
            return if out.is_empty() {
                Err(UNSUPPORTED_COMPRESSION_TYPE)
            } else {
                Ok(out)
            };
        }
        if !convert_batch(one, &header, magic, limits, &mut out)? {
            break;
        }
    }
    Ok(out)
}

/// (offset, timestamp, key, value) of a record being converted.
type OwnedRecord = (u64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Appends one batch's messages to `out`; false once the answer is full.
fn convert_batch(
    one: &[u8],
    header: &batch::BatchHeader,
    magic: i8,
    limits: DownLimits,
    out: &mut Vec<u8>,
) -> Result<bool, ErrorCode> {
    let mut records: Vec<OwnedRecord> = Vec::new();
    batch::visit_records(one, limits.decompress_limit, &mut |r: RecordView<'_>| {
        if r.offset >= limits.fetch_offset {
            records.push((
                r.offset,
                r.timestamp,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ));
        }
    })
    .map_err(|e| {
        tracing::warn!(error = %e, "cannot down-convert a stored batch");
        errors::CORRUPT_MESSAGE
    })?;
    let lat = if header.is_log_append_time() {
        TIMESTAMP_TYPE_BIT
    } else {
        0
    };
    let attributes = if magic == 1 { lat } else { 0 };
    let fits = |out: &Vec<u8>, len: usize| {
        out.len() + len <= limits.room || (out.is_empty() && limits.first_whole)
    };
    let codec = header.compression();
    if codec == compression::NONE {
        for (offset, ts, key, value) in &records {
            let mut m = Vec::new();
            write_message(
                &mut m,
                *offset,
                magic,
                attributes,
                *ts,
                key.as_deref(),
                value.as_deref(),
            );
            if !fits(out, m.len()) {
                return Ok(false);
            }
            out.extend_from_slice(&m);
        }
        return Ok(true);
    }
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(true);
    };
    let mut inner = Vec::new();
    for (offset, ts, key, value) in &records {
        let inner_offset = if magic == 0 {
            *offset
        } else {
            offset - first.0
        };
        write_message(
            &mut inner,
            inner_offset,
            magic,
            attributes,
            *ts,
            key.as_deref(),
            value.as_deref(),
        );
    }
    let packed = compression::compress(codec, &inner).map_err(|e| {
        tracing::warn!(error = %e, "cannot compress a down-converted batch");
        errors::CORRUPT_MESSAGE
    })?;
    let max_ts = records.iter().map(|r| r.1).max().unwrap_or(-1);
    let mut wrapper = Vec::new();
    let wrapper_attributes = attributes | codec as i8;
    write_message(
        &mut wrapper,
        last.0,
        magic,
        wrapper_attributes,
        max_ts,
        None,
        Some(&packed),
    );
    if !fits(out, wrapper.len()) {
        return Ok(false);
    }
    out.extend_from_slice(&wrapper);
    Ok(true)
}

/// Writes one v0/v1 message with its CRC.
fn write_message(
    out: &mut Vec<u8>,
    offset: u64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let mut body = vec![0, 0, 0, 0, magic as u8, attributes as u8];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            Some(b) => {
                body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                body.extend_from_slice(b);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let crc = crc32fast::hash(&body[4..]);
    body[..4].copy_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&(offset as i64).to_be_bytes());
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY_TOPIC: Target = Target {
        codec: None,
        log_append_time: false,
    };

    fn lz4_wrapper(magic: i8, break_checksum: bool) -> Vec<u8> {
        let mut inner = Vec::new();
        write_message(&mut inner, 0, magic, 0, 7, None, Some(b"value"));
        let mut packed = compression::compress(compression::LZ4, &inner).unwrap_or_default();
        if break_checksum {
            let flags = packed[4];
            let at = 6 + usize::from(flags & 0x08) + usize::from(flags & 1) * 4;
            packed[at] ^= 0xff;
        }
        let mut set = Vec::new();
        write_message(&mut set, 0, magic, 3, 7, None, Some(&packed));
        set
    }

    #[test]
    fn r_wire_13_xxh32_matches_lz4s_own_header_checksum() {
        assert_eq!(xxh32_short(b""), 0x02cc_5d05);
        let frame = compression::compress(compression::LZ4, b"some bytes").unwrap_or_default();
        assert!(frame.len() > 7);
        assert_eq!(
            fix_lz4_header_checksum(&frame),
            frame,
            "liblz4 wrote it right"
        );
    }

    #[test]
    fn r_wire_13_magic_0_lz4_with_kafka_08s_header_checksum_is_read() {
        let limit = 1 << 20;
        assert!(to_record_batch(&lz4_wrapper(0, true), limit, ANY_TOPIC).is_ok_and(|b| b.is_some()));
        assert!(
            to_record_batch(&lz4_wrapper(1, false), limit, ANY_TOPIC).is_ok_and(|b| b.is_some())
        );
        assert_eq!(
            to_record_batch(&lz4_wrapper(1, true), limit, ANY_TOPIC),
            Err(errors::CORRUPT_MESSAGE)
        );
    }

    #[test]
    fn r_wire_13_a_wrapper_decompressing_past_the_bound_is_refused() {
        let mut inner = Vec::new();
        write_message(&mut inner, 0, 1, 0, 7, None, Some(&vec![0u8; 1 << 20]));
        let packed = compression::compress(compression::GZIP, &inner).unwrap_or_default();
        let mut set = Vec::new();
        write_message(&mut set, 0, 1, 1, 7, None, Some(&packed));
        assert_eq!(
            to_record_batch(&set, 64 << 10, ANY_TOPIC),
            Err(errors::MESSAGE_TOO_LARGE)
        );
        assert!(to_record_batch(&set, 2 << 20, ANY_TOPIC).is_ok());
    }

    #[test]
    fn r_wire_13_producers_may_not_claim_log_append_time_without_a_timestamp() {
        let mut set = Vec::new();
        write_message(&mut set, 0, 1, TIMESTAMP_TYPE_BIT, -1, None, Some(b"v"));
        assert_eq!(
            to_record_batch(&set, 1 << 20, ANY_TOPIC),
            Err(errors::INVALID_TIMESTAMP)
        );
        let mut stamped = Vec::new();
        write_message(&mut stamped, 0, 1, TIMESTAMP_TYPE_BIT, 5, None, Some(b"v"));
        assert!(to_record_batch(&stamped, 1 << 20, ANY_TOPIC).is_ok());
        let lat_topic = Target {
            log_append_time: true,
            ..ANY_TOPIC
        };
        assert_eq!(
            to_record_batch(&stamped, 1 << 20, lat_topic),
            Err(errors::INVALID_TIMESTAMP)
        );
    }
}
