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

    /// Kafka's LogValidator check of a v2 batch's offset range: at least one record,
    /// and exactly one offset per record. Without it a one-record batch claiming
    /// lastOffsetDelta 2^31-1 would move the log end by 2^31 (issue 12).
    pub fn check_offset_range(&self) -> Result<(), String> {
        if self.record_count <= 0 {
            return Err(format!("invalid record count {}", self.record_count));
        }
        if i64::from(self.last_offset_delta) + 1 != i64::from(self.record_count) {
            return Err(format!(
                "inconsistent batch: lastOffsetDelta {} but {} records",
                self.last_offset_delta, self.record_count
            ));
        }
        Ok(())
    }
}

/// Checks a batch a client produced as Kafka's LogValidator does before offsets are
/// assigned (R-LOG-14): the offset range matches the record count; no control
/// batch; an idempotent batch has a sequence; and, for an uncompressed batch, the
/// records present are exactly `record_count` well-formed records whose offset
/// deltas are 0, 1, 2, ... A compressed batch's records are inside its compressed
/// payload and are not decompressed here (see spec/log.md R-LOG-14).
pub fn validate_client_batch(bytes: &[u8]) -> Result<BatchHeader, String> {
    let header = BatchHeader::parse(bytes)?;
    header.check_offset_range()?;
    if header.is_control() {
        return Err("clients may not write control batches".into());
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(format!(
            "invalid sequence {} for producer {}",
            header.base_sequence, header.producer_id
        ));
    }
    let body = &bytes[HEADER_LEN..];
    if header.compression() == 0 {
        check_records(body, header.record_count)?;
    } else if body.is_empty() {
        return Err("compressed batch without a payload".into());
    }
    Ok(header)
}

/// The records of an uncompressed batch: exactly `count` of them, filling `body`.
fn check_records(body: &[u8], count: i32) -> Result<(), String> {
    let mut pos = 0;
    for index in 0..count {
        let length = read_varlong(body, &mut pos)
            .ok_or_else(|| format!("record {index} of {count}: unreadable length"))?;
        let end = usize::try_from(length)
            .ok()
            .filter(|l| *l > 0)
            .and_then(|l| pos.checked_add(l))
            .filter(|end| *end <= body.len())
            .ok_or_else(|| {
                format!("record {index} of {count}: length {length} does not fit the batch")
            })?;
        check_record(&body[pos..end], index)
            .map_err(|e| format!("record {index} of {count}: {e}"))?;
        pos = end;
    }
    if pos != body.len() {
        return Err(format!(
            "{} bytes after the last of {count} records",
            body.len() - pos
        ));
    }
    Ok(())
}

/// One record's fields fill exactly its declared length, and its offset delta is
/// its index, so the offsets consumers compute are the ones the batch occupies.
fn check_record(record: &[u8], index: i32) -> Result<(), String> {
    let mut p = 1; // attributes
    read_varlong(record, &mut p).ok_or("unreadable timestamp delta")?;
    let delta = read_varlong(record, &mut p).ok_or("unreadable offset delta")?;
    if delta != i64::from(index) {
        return Err(format!("offset delta {delta} where {index} was expected"));
    }
    skip_bytes(record, &mut p, true).ok_or("bad key")?;
    skip_bytes(record, &mut p, true).ok_or("bad value")?;
    let headers = read_varlong(record, &mut p).ok_or("unreadable header count")?;
    if headers < 0 {
        return Err(format!("negative header count {headers}"));
    }
    for _ in 0..headers {
        skip_bytes(record, &mut p, false).ok_or("bad header key")?;
        skip_bytes(record, &mut p, true).ok_or("bad header value")?;
    }
    if p != record.len() {
        return Err(format!(
            "fields end at byte {p} of a {}-byte record",
            record.len()
        ));
    }
    Ok(())
}

/// Skips a length-prefixed byte string (-1 is null where `nullable`).
fn skip_bytes(bytes: &[u8], pos: &mut usize, nullable: bool) -> Option<()> {
    let len = read_varlong(bytes, pos)?;
    if len == -1 && nullable {
        return Some(());
    }
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    if end > bytes.len() {
        return None;
    }
    *pos = end;
    Some(())
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

    /// Rewrites header fields after a change and fixes the CRC, as a client would.
    fn patched(mut batch: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        f(&mut batch);
        let len = (batch.len() - LOG_OVERHEAD) as i32;
        batch[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
        let crc = compute_crc(&batch);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    fn set_i32(at: usize, value: i32) -> impl FnOnce(&mut Vec<u8>) {
        move |b| b[at..at + 4].copy_from_slice(&value.to_be_bytes())
    }

    fn three_records() -> Vec<u8> {
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                key: (i != 1).then(|| vec![b'k'; i]),
                value: (i != 2).then(|| vec![b'v'; 5]),
                timestamp_delta: i as i64,
            })
            .collect();
        build_batch(&records, 1000)
    }

    #[test]
    fn r_log_14_well_formed_batches_pass() {
        for count in 1..6 {
            assert!(validate_client_batch(&build_simple_batch(count, 7, b'x', 0)).is_ok());
        }
        assert!(validate_client_batch(&three_records()).is_ok());
    }

    #[test]
    fn r_log_14_offset_range_must_match_the_record_count() {
        let one = build_simple_batch(1, 3, b'x', 0);
        // A one-record batch claiming 2^31 offsets (issue 12).
        let wide = patched(one.clone(), set_i32(23, i32::MAX));
        assert!(
            validate_client_batch(&wide).is_err_and(|e| e.contains("lastOffsetDelta 2147483647"))
        );
        assert!(BatchHeader::parse(&wide).is_ok_and(|h| h.check_offset_range().is_err()));
        // A batch claiming 1000 records but holding one.
        let claims = patched(one.clone(), |b| {
            set_i32(57, 1000)(b);
            set_i32(23, 999)(b);
        });
        assert!(validate_client_batch(&claims).is_err_and(|e| e.contains("record 1 of 1000")));
        let empty = patched(one.clone(), |b| {
            set_i32(57, 0)(b);
            b.truncate(HEADER_LEN);
        });
        assert!(validate_client_batch(&empty).is_err());
        // Two records present, one declared: the second is trailing garbage.
        let two = build_simple_batch(2, 3, b'x', 0);
        let fewer = patched(two, |b| {
            set_i32(57, 1)(b);
            set_i32(23, 0)(b);
        });
        assert!(validate_client_batch(&fewer).is_err_and(|e| e.contains("after the last")));
    }

    #[test]
    fn r_log_14_offset_deltas_must_be_contiguous() {
        let batch = build_simple_batch(2, 3, b'x', 0);
        // Record 0 is [len][attr][ts][offset delta]...; find record 1's delta byte.
        let mut pos = HEADER_LEN;
        let first_len = read_varlong(&batch, &mut pos).unwrap_or(0) as usize;
        let delta_at = pos + first_len + 1 + 1 + 1;
        assert_eq!(batch[delta_at], 2, "zig-zag 1");
        let gap = patched(batch, |b| b[delta_at] = 4);
        assert!(validate_client_batch(&gap).is_err_and(|e| e.contains("offset delta 2")));
    }

    #[test]
    fn r_log_14_control_batches_and_missing_sequences_are_refused() {
        let one = build_simple_batch(1, 3, b'x', 0);
        let control = patched(one.clone(), |b| b[ATTRIBUTES_OFFSET + 1] |= 0x20);
        assert!(validate_client_batch(&control).is_err());
        let no_sequence = patched(one, |b| b[43..51].copy_from_slice(&7i64.to_be_bytes()));
        assert!(validate_client_batch(&no_sequence).is_err_and(|e| e.contains("sequence")));
    }

    #[test]
    fn r_log_14_compressed_batches_are_checked_by_their_header() {
        let gzip = patched(build_simple_batch(3, 3, b'x', 0), |b| {
            b[ATTRIBUTES_OFFSET + 1] |= 0x01;
        });
        assert!(validate_client_batch(&gzip).is_ok());
        let wide = patched(gzip, set_i32(23, 1 << 20));
        assert!(validate_client_batch(&wide).is_err());
    }

    #[test]
    fn r_log_14_no_mutation_of_a_batch_panics_the_validator() {
        let batch = three_records();
        for i in 0..batch.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = batch.clone();
                b[i] = value;
                let _ = validate_client_batch(&b);
                let _ = validate_client_batch(&b[..i]);
            }
        }
    }
}
