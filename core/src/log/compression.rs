//! The record codecs of Kafka's RecordBatch v2 (attributes bits 0-2): bounded
//! decompression of client input, and compression for batches the broker rebuilds.
//!
//! Decompression is written here against the codec crates rather than taken from
//! `kafka-protocol`, whose decompressors write the whole output into memory with no
//! bound: a few kilobytes of zeros compressed by a client could make the broker
//! allocate gigabytes. Every decoder here stops one byte past `limit` and the caller
//! gets an error instead. Compression has no such risk (its input is already in
//! memory and bounded), so the crate's compressors are used for it.

use bytes::BytesMut;
use kafka_protocol::compression::Compressor;
use std::io::Read;

pub const NONE: i16 = 0;
pub const GZIP: i16 = 1;
pub const SNAPPY: i16 = 2;
pub const LZ4: i16 = 3;
pub const ZSTD: i16 = 4;

/// The codec's name as Kafka's `compression.type` spells it, or None if unknown.
pub fn name(codec: i16) -> Option<&'static str> {
    match codec {
        NONE => Some("uncompressed"),
        GZIP => Some("gzip"),
        SNAPPY => Some("snappy"),
        LZ4 => Some("lz4"),
        ZSTD => Some("zstd"),
        _ => None,
    }
}

/// The codec a `compression.type` value names; None for `producer` (keep the
/// batch's own codec) and for unknown names.
pub fn from_name(name: &str) -> Option<i16> {
    (NONE..=ZSTD).find(|c| self::name(*c) == Some(name))
}

/// Why a batch's records were not decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError {
    /// They decompress to more than the bound: too large, not damaged.
    OverLimit(usize),
    Damaged(String),
}

impl std::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecompressError::OverLimit(limit) => {
                write!(f, "records decompress to more than {limit} bytes")
            }
            DecompressError::Damaged(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DecompressError {}

impl From<String> for DecompressError {
    fn from(why: String) -> Self {
        DecompressError::Damaged(why)
    }
}

/// Decompresses a batch's records; fails on damaged input and on output longer
/// than `limit` bytes, having allocated at most about `limit` bytes.
pub fn decompress(codec: i16, payload: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let out = match codec {
        NONE => Ok(payload.to_vec()),
        GZIP => read_bounded(flate2::read::MultiGzDecoder::new(payload), limit),
        SNAPPY => return snappy(payload, limit),
        LZ4 => lz4::Decoder::new(payload)
            .map_err(|e| e.to_string())
            .and_then(|d| read_bounded(d, limit)),
        ZSTD => zstd_decoder(payload, limit).and_then(|d| read_bounded(d, limit)),
        other => Err(format!("unknown compression codec {other}")),
    }?;
    if out.len() > limit {
        return Err(DecompressError::OverLimit(limit));
    }
    Ok(out)
}

fn read_bounded(reader: impl Read, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    Ok(out)
}

/// A zstd frame names the window its decoder must allocate; a window larger than
/// the output may be is refused so a tiny frame cannot claim 128 MiB (the library's
/// default ceiling). 8 MiB is kept as a floor: streaming producers that do not know
/// their input size use windows of up to 8 MiB at their usual levels.
fn zstd_decoder(payload: &[u8], limit: usize) -> Result<impl Read + '_, String> {
    let window_log = (usize::BITS - limit.max(1).leading_zeros()).clamp(23, 27);
    let mut decoder = zstd::stream::read::Decoder::with_buffer(payload)
        .map_err(|e| format!("cannot start zstd: {e}"))?;
    decoder
        .window_log_max(window_log)
        .map_err(|e| format!("cannot bound zstd: {e}"))?;
    Ok(decoder)
}

/// Kafka's Java clients frame snappy the way xerial's SnappyOutputStream does: a
/// 16-byte header, then blocks of [length u32 BE][raw snappy block]. Others send one
/// raw block. Each raw block states its decompressed length up front, so the bound
/// is checked before anything is allocated.
const XERIAL_HEADER: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

fn snappy(payload: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    if !payload.starts_with(XERIAL_HEADER) {
        let mut out = Vec::new();
        snappy_block(payload, limit, &mut out)?;
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut rest = payload.get(XERIAL_HEADER_LEN..).unwrap_or_default();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| "truncated snappy block length".to_string())?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| "truncated snappy block".to_string())?;
        snappy_block(block, limit.saturating_sub(out.len()), &mut out)?;
        rest = &tail[len..];
    }
    Ok(out)
}

fn snappy_block(block: &[u8], room: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let len = snap::raw::decompress_len(block).map_err(|e| format!("bad snappy block: {e}"))?;
    if len > room {
        return Err(DecompressError::OverLimit(out.len() + room));
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| format!("bad snappy block: {e}"))?;
    Ok(())
}

/// Compresses records with `codec` as Kafka's clients frame it.
pub fn compress(codec: i16, records: &[u8]) -> Result<Vec<u8>, String> {
    use kafka_protocol::compression as c;
    let mut out = BytesMut::new();
    let fill = |buf: &mut BytesMut| {
        buf.extend_from_slice(records);
        Ok(())
    };
    let done = match codec {
        NONE => return Ok(records.to_vec()),
        GZIP => c::Gzip::compress(&mut out, fill),
        SNAPPY => c::Snappy::compress(&mut out, fill),
        LZ4 => c::Lz4::compress(&mut out, fill),
        ZSTD => c::Zstd::compress(&mut out, fill),
        other => return Err(format!("unknown compression codec {other}")),
    };
    done.map_err(|e| format!("cannot compress: {e}"))?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
            let packed = compress(codec, &data).expect("compress");
            let unpacked = decompress(codec, &packed, data.len()).expect("decompress");
            assert_eq!(unpacked, data, "codec {codec}");
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_at_the_bound() {
        let zeros = vec![0u8; 64 << 20];
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let packed = compress(codec, &zeros).expect("compress");
            assert!(packed.len() < 4 << 20, "codec {codec}: {}", packed.len());
            let refused = decompress(codec, &packed, 1 << 20);
            assert_eq!(
                refused,
                Err(DecompressError::OverLimit(1 << 20)),
                "codec {codec}: too large, not damaged"
            );
        }
    }

    #[test]
    fn raw_snappy_without_the_xerial_frame_is_read() {
        let data = b"hello snappy hello snappy".to_vec();
        let raw = snap::raw::Encoder::new()
            .compress_vec(&data)
            .expect("compress");
        assert_eq!(decompress(SNAPPY, &raw, 100), Ok(data));
    }

    #[test]
    fn damaged_input_is_an_error_never_a_panic() {
        let packed: Vec<Vec<u8>> = [GZIP, SNAPPY, LZ4, ZSTD]
            .iter()
            .map(|c| compress(*c, b"some records some records").expect("compress"))
            .collect();
        for (codec, bytes) in [GZIP, SNAPPY, LZ4, ZSTD].into_iter().zip(packed) {
            for cut in 0..bytes.len() {
                let _ = decompress(codec, &bytes[..cut], 1000);
                let mut flipped = bytes.clone();
                flipped[cut] ^= 0x5a;
                let _ = decompress(codec, &flipped, 1000);
            }
        }
        assert!(decompress(7, b"x", 10).is_err());
    }
}
