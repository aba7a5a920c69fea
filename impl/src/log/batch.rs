//! Kafka RecordBatch v2: the header fields the log reads and the two it writes.
//!
//! The log stores batches as the client sent them except for the base offset and the
//! partition leader epoch, which the leader assigns. Neither is covered by the batch's
//! CRC-32C (which starts at `attributes`), so assigning them never re-checksums the
//! batch. Layout (big-endian): baseOffset i64 @0, batchLength i32 @8,
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17, attributes i16 @21,
//! lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35,
//! producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53, records i32 @57.

pub const HEADER_LEN: usize = 61;
const BATCH_LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
/// The bytes before `batchLength`'s end are not counted in `batchLength`.
const LOG_OVERHEAD: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses and checks the header of one whole batch (`bytes` is exactly the batch).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "{} bytes is shorter than a batch header ({HEADER_LEN})",
                bytes.len()
            ));
        }
        let batch_length = be_i32(bytes, BATCH_LENGTH_OFFSET);
        if batch_length < 0 || batch_length as usize + LOG_OVERHEAD != bytes.len() {
            return Err(format!(
                "batchLength {batch_length} does not match the {} bytes received",
                bytes.len()
            ));
        }
        let header = BatchHeader {
            base_offset: be_i64(bytes, 0),
            partition_leader_epoch: be_i32(bytes, LEADER_EPOCH_OFFSET),
            magic: bytes[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes([
                bytes[CRC_OFFSET],
                bytes[CRC_OFFSET + 1],
                bytes[CRC_OFFSET + 2],
                bytes[CRC_OFFSET + 3],
            ]),
            attributes: be_i16(bytes, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            record_count: be_i32(bytes, 57),
        };
        if header.magic != 2 {
            return Err(format!("magic {} is not 2", header.magic));
        }
        if header.last_offset_delta < 0 {
            return Err(format!(
                "negative lastOffsetDelta {}",
                header.last_offset_delta
            ));
        }
        if header.record_count < 0 {
            return Err(format!("negative record count {}", header.record_count));
        }
        Ok(header)
    }

    /// How many offsets the batch occupies.
    pub fn offset_count(&self) -> u64 {
        self.last_offset_delta as u64 + 1
    }

    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Writes the leader-assigned base offset.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[0..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
}

/// Writes the leader epoch the batch was appended under.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// The batch's CRC-32C, as Kafka computes it (attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// True when the stored CRC-32C matches the batch's bytes.
pub fn crc_is_valid(batch: &[u8]) -> bool {
    batch.len() >= HEADER_LEN
        && compute_crc(batch)
            == u32::from_be_bytes([
                batch[CRC_OFFSET],
                batch[CRC_OFFSET + 1],
                batch[CRC_OFFSET + 2],
                batch[CRC_OFFSET + 3],
            ])
}

/// Reads a zig-zag varint; None on truncated or over-long input.
fn read_varlong(bytes: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// The offset and timestamp of the first record whose timestamp is at least
/// `target`, for an uncompressed batch. Returns None if no record qualifies or the
/// records cannot be read (the caller then falls back to the batch's base offset).
pub fn first_record_at_or_after(batch: &[u8], target: i64) -> Option<(u64, i64)> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.compression() != 0 {
        return None;
    }
    let mut pos = HEADER_LEN;
    for _ in 0..header.record_count {
        let length = read_varlong(batch, &mut pos)?;
        let record_end = pos.checked_add(usize::try_from(length).ok()?)?;
        let mut p = pos + 1; // attributes
        let timestamp_delta = read_varlong(batch, &mut p)?;
        let offset_delta = read_varlong(batch, &mut p)?;
        let timestamp = header.base_timestamp.checked_add(timestamp_delta)?;
        if timestamp >= target {
            let offset = u64::try_from(header.base_offset.checked_add(offset_delta)?).ok()?;
            return Some((offset, timestamp));
        }
        pos = record_end;
    }
    None
}

/// One record to put in a batch built by [`build_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_delta: i64,
}

/// Encodes an uncompressed RecordBatch v2 with base offset 0, as a producer would.
/// The broker never builds client batches; tests, benches and the load tool do.
pub fn build_batch(records: &[Record], base_timestamp: i64) -> Vec<u8> {
    let mut body = Vec::new();
    let mut max_timestamp = base_timestamp;
    for (i, r) in records.iter().enumerate() {
        let mut rec = vec![0u8]; // attributes
        write_varlong(&mut rec, r.timestamp_delta);
        write_varlong(&mut rec, i as i64);
        for field in [&r.key, &r.value] {
            match field {
                Some(bytes) => {
                    write_varlong(&mut rec, bytes.len() as i64);
                    rec.extend_from_slice(bytes);
                }
                None => write_varlong(&mut rec, -1),
            }
        }
        write_varlong(&mut rec, 0); // headers
        write_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
        max_timestamp = max_timestamp.max(base_timestamp + r.timestamp_delta);
    }
    let mut batch = Vec::with_capacity(HEADER_LEN + body.len());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    batch.extend_from_slice(&0i16.to_be_bytes()); // attributes
    let last_offset_delta = records.len().saturating_sub(1) as i32;
    batch.extend_from_slice(&last_offset_delta.to_be_bytes());
    batch.extend_from_slice(&base_timestamp.to_be_bytes());
    batch.extend_from_slice(&max_timestamp.to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&(records.len() as i32).to_be_bytes());
    batch.extend_from_slice(&body);
    let crc = compute_crc(&batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// A batch of `count` records whose values are `value_len` bytes of `fill`.
pub fn build_simple_batch(count: usize, value_len: usize, fill: u8, timestamp: i64) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|_| Record {
            key: None,
            value: Some(vec![fill; value_len]),
            timestamp_delta: 0,
        })
        .collect();
    build_batch(&records, timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batches_parse_and_their_crc_checks() {
        let batch = build_batch(
            &[
                Record {
                    key: Some(b"k".to_vec()),
                    value: Some(b"v1".to_vec()),
                    timestamp_delta: 0,
                },
                Record {
                    key: None,
                    value: Some(b"v2".to_vec()),
                    timestamp_delta: 5,
                },
            ],
            1000,
        );
        let h = BatchHeader::parse(&batch).expect("valid batch");
        assert_eq!((h.magic, h.record_count, h.offset_count()), (2, 2, 2));
        assert_eq!(h.max_timestamp, 1005);
        assert!(crc_is_valid(&batch));
        let mut moved = batch.clone();
        set_base_offset(&mut moved, 42);
        set_partition_leader_epoch(&mut moved, 7);
        assert!(
            crc_is_valid(&moved),
            "base offset and epoch are outside the CRC"
        );
        let mut broken = batch;
        let last = broken.len() - 1;
        broken[last] ^= 1;
        assert!(!crc_is_valid(&broken));
    }

    #[test]
    fn finds_the_first_record_at_or_after_a_timestamp() {
        let records: Vec<Record> = (0..4)
            .map(|i| Record {
                key: None,
                value: Some(vec![i as u8]),
                timestamp_delta: i * 10,
            })
            .collect();
        let mut batch = build_batch(&records, 100);
        set_base_offset(&mut batch, 50);
        assert_eq!(first_record_at_or_after(&batch, 115), Some((52, 120)));
        assert_eq!(first_record_at_or_after(&batch, 0), Some((50, 100)));
        assert_eq!(first_record_at_or_after(&batch, 131), None);
    }

    #[test]
    fn parse_rejects_bad_headers() {
        let good = build_simple_batch(1, 3, b'x', 0);
        assert!(BatchHeader::parse(&good[..HEADER_LEN - 1]).is_err());
        assert!(BatchHeader::parse(&good[..good.len() - 1]).is_err());
        let mut magic = good.clone();
        magic[MAGIC_OFFSET] = 1;
        assert!(BatchHeader::parse(&magic).is_err());
    }
}
