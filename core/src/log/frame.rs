//! The frame every log entry is stored in: `[length u32 BE][crc32 u32 BE][payload]`.
//!
//! The CRC (crc32fast, IEEE) covers the payload as stored, including the base offset
//! the leader wrote into it, so recovery can tell a complete entry from a torn or
//! corrupt one without trusting anything inside the payload (R-LOG-2).

pub const FRAME_HEADER_LEN: usize = 8;

/// The largest payload recovery accepts as a plausible length; anything larger is
/// treated as a corrupt length field rather than an allocation request.
pub const MAX_FRAME_PAYLOAD: usize = 256 * 1024 * 1024;

pub fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// Writes the frame header for `payload` into `out[..FRAME_HEADER_LEN]`.
pub fn write_header(out: &mut [u8], payload: &[u8]) {
    let len = payload.len() as u32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    out[4..8].copy_from_slice(&checksum(payload).to_be_bytes());
}

/// Reads a frame header: (payload length, checksum).
pub fn parse_header(header: &[u8; FRAME_HEADER_LEN]) -> (u32, u32) {
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (len, crc)
}

/// What is found at a position of a segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame whose checksum matches: payload at `[start, end)`.
    Frame { start: usize, end: usize },
    /// The bytes end inside a frame: more must be read, or (at the end of the file)
    /// the write was torn.
    Incomplete { needed: usize },
    /// The frame cannot be valid.
    Corrupt(String),
}

/// Decodes the frame at `buf[pos..]`.
pub fn decode(buf: &[u8], pos: usize) -> Decoded {
    let rest = &buf[pos.min(buf.len())..];
    if rest.len() < FRAME_HEADER_LEN {
        return Decoded::Incomplete {
            needed: FRAME_HEADER_LEN,
        };
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 || len > MAX_FRAME_PAYLOAD {
        return Decoded::Corrupt(format!("implausible frame length {len}"));
    }
    if rest.len() < FRAME_HEADER_LEN + len {
        return Decoded::Incomplete {
            needed: FRAME_HEADER_LEN + len,
        };
    }
    let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    let actual = checksum(payload);
    if actual != crc {
        return Decoded::Corrupt(format!(
            "checksum mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    let start = pos + FRAME_HEADER_LEN;
    Decoded::Frame {
        start,
        end: start + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0; FRAME_HEADER_LEN];
        write_header(&mut out, payload);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn round_trip_and_every_truncation_is_incomplete() {
        let bytes = framed(b"hello world");
        assert_eq!(decode(&bytes, 0), Decoded::Frame { start: 8, end: 19 });
        for cut in 0..bytes.len() {
            assert!(matches!(
                decode(&bytes[..cut], 0),
                Decoded::Incomplete { .. }
            ));
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = framed(b"payload bytes");
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    !matches!(decode(&b, 0), Decoded::Frame { .. }),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }
}
