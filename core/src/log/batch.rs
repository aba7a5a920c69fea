//! Kafka RecordBatch v2: the header fields the log reads and the two it writes.
//!
//! The log stores batches as the client sent them except for the base offset and the
//! partition leader epoch, which the leader assigns. Neither is covered by the batch's
//! CRC-32C (which starts at `attributes`), so assigning them never re-checksums the
//! batch. Layout (big-endian): baseOffset i64 @0, batchLength i32 @8,
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17, attributes i16 @21,
//! lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35,
//! producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53, records i32 @57.

use super::compression;

pub const HEADER_LEN: usize = 61;
const BATCH_LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Attributes bit 3: the batch's timestamps are the broker's append time.
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
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

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
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

/// Why a client batch was refused: bytes that cannot be read as records (Kafka's
/// CORRUPT_MESSAGE) or records that disagree with their header (INVALID_RECORD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFault {
    Corrupt(String),
    Invalid(String),
    /// Its records decompress past the broker's bound (`max_records_bytes`).
    TooLarge(String),
}

impl std::fmt::Display for BatchFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchFault::Corrupt(m) | BatchFault::Invalid(m) | BatchFault::TooLarge(m) => {
                f.write_str(m)
            }
        }
    }
}

/// The record timestamps of a batch, as Kafka's LogValidator reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTimes {
    /// The largest record timestamp, -1 (Kafka's NO_TIMESTAMP) when no record has
    /// a larger one: what maxTimestamp in the header must say.
    pub max_timestamp: i64,
    /// The smallest and largest timestamps other than -1, which are the ones the
    /// topic's timestamp bounds apply to.
    pub bounded: Option<(i64, i64)>,
}

impl RecordTimes {
    fn new() -> Self {
        RecordTimes {
            max_timestamp: -1,
            bounded: None,
        }
    }

    fn add(&mut self, timestamp: i64) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
        if timestamp != -1 {
            let (lo, hi) = self.bounded.unwrap_or((timestamp, timestamp));
            self.bounded = Some((lo.min(timestamp), hi.max(timestamp)));
        }
    }
}

/// Checks a batch a client produced as Kafka's LogValidator does before offsets are
/// assigned (R-LOG-14): the offset range matches the record count; no control
/// batch; an idempotent batch has a sequence; and the records, decompressed if need
/// be (to at most `max_records_bytes`), are exactly `record_count` well-formed
/// records whose offset deltas are 0, 1, 2, ... Returns the header and the record
/// timestamps, from which the header's maxTimestamp is set (R-LOG-15).
pub fn inspect_client_batch(
    bytes: &[u8],
    max_records_bytes: usize,
) -> Result<(BatchHeader, RecordTimes), BatchFault> {
    let header = BatchHeader::parse(bytes).map_err(BatchFault::Corrupt)?;
    header.check_offset_range().map_err(BatchFault::Invalid)?;
    if header.is_control() {
        return Err(BatchFault::Invalid(
            "clients may not write control batches".into(),
        ));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(BatchFault::Invalid(format!(
            "invalid sequence {} for producer {}",
            header.base_sequence, header.producer_id
        )));
    }
    if header.compression() != 0 && bytes.len() == HEADER_LEN {
        return Err(BatchFault::Invalid(
            "compressed batch without a payload".into(),
        ));
    }
    let records = match header.compression() {
        compression::NONE => std::borrow::Cow::Borrowed(&bytes[HEADER_LEN..]),
        codec => std::borrow::Cow::Owned(
            compression::decompress(codec, &bytes[HEADER_LEN..], max_records_bytes).map_err(
                |e| match e {
                    compression::DecompressError::OverLimit(_) => {
                        BatchFault::TooLarge(e.to_string())
                    }
                    compression::DecompressError::Damaged(why) => BatchFault::Corrupt(why),
                },
            )?,
        ),
    };
    let mut times = RecordTimes::new();
    walk_records(&records, header.record_count, &mut |_, delta| {
        times.add(header.base_timestamp.wrapping_add(delta));
        true
    })
    .map_err(BatchFault::Invalid)?;
    Ok((header, times))
}

/// The records of a batch as bytes: its own for an uncompressed batch, else
/// decompressed to at most `limit` bytes.
pub(super) fn records_of<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    let body = &batch[HEADER_LEN..];
    match header.compression() {
        compression::NONE => Ok(std::borrow::Cow::Borrowed(body)),
        codec => compression::decompress(codec, body, limit)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| e.to_string()),
    }
}

/// Walks exactly `count` records filling `body`, checking each, and calls `visit`
/// with each record's index and timestamp delta until it returns false.
fn walk_records(
    body: &[u8],
    count: i32,
    visit: &mut dyn FnMut(i32, i64) -> bool,
) -> Result<(), String> {
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
        let timestamp_delta = check_record(&body[pos..end], index)
            .map_err(|e| format!("record {index} of {count}: {e}"))?;
        if !visit(index, timestamp_delta) {
            return Ok(());
        }
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
/// Returns the record's timestamp delta.
fn check_record(record: &[u8], index: i32) -> Result<i64, String> {
    let mut p = 1; // attributes
    let timestamp_delta = read_varlong(record, &mut p).ok_or("unreadable timestamp delta")?;
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
    Ok(timestamp_delta)
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

/// A RecordBatch v2 with no records over `count` offsets from `base`: no producer,
/// `timestamp` as both its first and max timestamp (-1: none), as the log cleaner
/// writes when it removed every record.
pub fn empty_batch(base: u64, count: i32, leader_epoch: i32, timestamp: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN);
    b.extend_from_slice(&(base as i64).to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
    b.extend_from_slice(&leader_epoch.to_be_bytes());
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, set below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp.to_be_bytes()); // first timestamp
    b.extend_from_slice(&timestamp.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&0i32.to_be_bytes()); // record count
    let crc = compute_crc(&b);
    b[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
    b
}

/// True when some batch of `batches` (stored batches one after another) holds a
/// record, false for none or only empty ones (compaction, quarantine).
pub fn holds_records(batches: &[u8]) -> bool {
    let mut rest = batches;
    while rest.len() >= HEADER_LEN {
        let length = usize::try_from(be_i32(rest, BATCH_LENGTH_OFFSET)).unwrap_or(0);
        if be_i32(rest, HEADER_LEN - 4) > 0 {
            return true;
        }
        let Some(next) = rest.get(LOG_OVERHEAD + length..) else {
            return false;
        };
        rest = next;
    }
    false
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
pub(super) fn read_varlong(bytes: &[u8], pos: &mut usize) -> Option<i64> {
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

/// Sets maxTimestamp and the timestamp type (LogAppendTime when `log_append_time`)
/// and re-checksums the batch, as Kafka's validator does in place.
pub fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64, log_append_time: bool) {
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET) & !TIMESTAMP_TYPE_BIT;
    let attributes = if log_append_time {
        attributes | TIMESTAMP_TYPE_BIT
    } else {
        attributes
    };
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The batch with its records recompressed by `codec`, as Kafka stores batches on
/// a topic whose `compression.type` differs from the batch's: every header field
/// is kept but the codec bits, batchLength and the CRC. Records decompress to at
/// most `limit` bytes.
pub fn recompress(batch: &[u8], codec: i16, limit: usize) -> Result<Vec<u8>, String> {
    let header = BatchHeader::parse(batch)?;
    let records = records_of(&header, batch, limit)?;
    let body = compression::compress(codec, &records)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| format!("recompressed batch of {} bytes", out.len()))?;
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
    let attributes = (header.attributes & !0x07) | codec;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The batch with only `count` of its records, `records` (uncompressed, each with
/// its length prefix, offset and timestamp deltas unchanged), compressed again by the
/// batch's own codec. Every other header field is kept, so the batch still covers
/// the same offsets and names the same producer; maxTimestamp becomes `max_timestamp`
/// unless the batch carries its append time (what Kafka's cleaner writes).
pub fn with_records(
    batch: &[u8],
    records: &[u8],
    count: i32,
    max_timestamp: i64,
) -> Result<Vec<u8>, String> {
    let header = BatchHeader::parse(batch)?;
    let body = compression::compress(header.compression(), records)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| format!("filtered batch of {} bytes", out.len()))?;
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
    out[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
    if !header.is_log_append_time() {
        out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
    }
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The offset and timestamp of the first record whose timestamp is at least
/// `target`, reading compressed records too (decompressed to at most `limit`
/// bytes). In a LogAppendTime batch every record has the batch's timestamp. None
/// if no record qualifies or the records cannot be read (the caller then falls
/// back to the batch's base offset).
pub fn first_record_at_or_after(batch: &[u8], target: i64, limit: usize) -> Option<(u64, i64)> {
    let header = BatchHeader::parse(batch).ok()?;
    let base_offset = u64::try_from(header.base_offset).ok()?;
    if header.is_log_append_time() {
        return (header.max_timestamp >= target).then_some((base_offset, header.max_timestamp));
    }
    let records = records_of(&header, batch, limit).ok()?;
    let mut found = None;
    walk_records(&records, header.record_count, &mut |index, delta| {
        let timestamp = header.base_timestamp.wrapping_add(delta);
        if timestamp >= target {
            found = Some((base_offset + index as u64, timestamp));
        }
        found.is_none()
    })
    .ok()?;
    found
}

/// One record of a stored batch, as a reader sees it: its absolute offset and
/// timestamp (the batch's append time on a LogAppendTime batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Calls `visit` with every record of one batch in order, its records decompressed
/// to at most `limit` bytes; headers are skipped. Returns the batch's header.
pub fn visit_records(
    batch: &[u8],
    limit: usize,
    visit: &mut dyn FnMut(RecordView<'_>),
) -> Result<BatchHeader, String> {
    let header = BatchHeader::parse(batch)?;
    let base_offset =
        u64::try_from(header.base_offset).map_err(|_| "negative base offset".to_string())?;
    let records = records_of(&header, batch, limit)?;
    let mut pos = 0;
    for index in 0..header.record_count {
        let length = read_varlong(&records, &mut pos)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l <= records.len() - pos)
            .ok_or_else(|| format!("record {index}: bad length"))?;
        let record = &records[pos..pos + length];
        pos += length;
        let (timestamp_delta, offset_delta, key, value) =
            record_fields(record).ok_or_else(|| format!("record {index}: bad fields"))?;
        visit(RecordView {
            offset: base_offset.wrapping_add(offset_delta as u64),
            timestamp: if header.is_log_append_time() {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(timestamp_delta)
            },
            key,
            value,
        });
    }
    Ok(header)
}

pub(super) type RecordFields<'a> = (i64, i64, Option<&'a [u8]>, Option<&'a [u8]>);

/// A record's timestamp delta, offset delta, key and value.
pub(super) fn record_fields(record: &[u8]) -> Option<RecordFields<'_>> {
    let mut p = 1; // attributes
    let timestamp_delta = read_varlong(record, &mut p)?;
    let offset_delta = read_varlong(record, &mut p)?;
    let key = read_nullable(record, &mut p)?;
    let value = read_nullable(record, &mut p)?;
    Some((timestamp_delta, offset_delta, key, value))
}

/// A varint-length byte string; the outer None is a malformed one, the inner a null.
fn read_nullable<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varlong(bytes, pos)?;
    if len == -1 {
        return Some(None);
    }
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let field = bytes.get(*pos..end)?;
    *pos = end;
    Some(Some(field))
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
    build_compressed_batch(records, base_timestamp, compression::NONE)
        .unwrap_or_else(|_| Vec::new())
}

/// Marks a built batch as sent by an idempotent producer (producer id, epoch and
/// base sequence), fixing its CRC-32C.
pub fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    if batch.len() < HEADER_LEN {
        return;
    }
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// As [`build_batch`], with the records compressed by `codec`.
pub fn build_compressed_batch(
    records: &[Record],
    base_timestamp: i64,
    codec: i16,
) -> Result<Vec<u8>, String> {
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
    let body = compression::compress(codec, &body)?;
    let mut batch = Vec::with_capacity(HEADER_LEN + body.len());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    batch.extend_from_slice(&codec.to_be_bytes()); // attributes
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
    Ok(batch)
}

/// One-byte records stamped `base_timestamp + delta` under a header whose
/// maxTimestamp is -1, as Sarama writes it; compressed with `codec`.
pub fn build_sarama_batch(
    base_timestamp: i64,
    deltas: &[i64],
    codec: i16,
) -> Result<Vec<u8>, String> {
    let records: Vec<Record> = deltas
        .iter()
        .map(|d| Record {
            key: None,
            value: Some(vec![b'v']),
            timestamp_delta: *d,
        })
        .collect();
    let mut batch = build_compressed_batch(&records, base_timestamp, codec)?;
    set_max_timestamp(&mut batch, -1, false);
    Ok(batch)
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

    const CODECS: [i16; 5] = [
        compression::NONE,
        compression::GZIP,
        compression::SNAPPY,
        compression::LZ4,
        compression::ZSTD,
    ];

    fn validate_client_batch(bytes: &[u8]) -> Result<BatchHeader, String> {
        inspect_client_batch(bytes, 1 << 20)
            .map(|(header, _)| header)
            .map_err(|e| e.to_string())
    }

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
        assert_eq!(first_record_at_or_after(&batch, 115, 1000), Some((52, 120)));
        assert_eq!(first_record_at_or_after(&batch, 0, 1000), Some((50, 100)));
        assert_eq!(first_record_at_or_after(&batch, 131, 1000), None);
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
    fn r_log_14_compressed_batches_are_checked_record_by_record() {
        let records = |n: usize| -> Vec<Record> {
            (0..n)
                .map(|i| Record {
                    key: None,
                    value: Some(vec![b'x'; 3]),
                    timestamp_delta: i as i64,
                })
                .collect()
        };
        for codec in CODECS {
            let batch = build_compressed_batch(&records(3), 0, codec).expect("build");
            assert!(validate_client_batch(&batch).is_ok(), "codec {codec}");
            let wide = patched(batch, set_i32(23, 1 << 20));
            assert!(validate_client_batch(&wide).is_err());
            // Claims three records, holds two: only visible inside the payload.
            let short = build_compressed_batch(&records(2), 0, codec).expect("build");
            let claims = patched(short, |b| {
                set_i32(57, 3)(b);
                set_i32(23, 2)(b);
            });
            assert_eq!(
                inspect_client_batch(&claims, 1 << 20).map(|_| ()),
                Err(BatchFault::Invalid(
                    "record 2 of 3: unreadable length".into()
                )),
                "codec {codec}"
            );
        }
        // A payload that is not the codec's: corrupt, not invalid.
        let garbage = patched(build_simple_batch(3, 3, b'x', 0), |b| {
            b[ATTRIBUTES_OFFSET + 1] |= 0x01;
        });
        assert!(matches!(
            inspect_client_batch(&garbage, 1 << 20),
            Err(BatchFault::Corrupt(_))
        ));
    }

    #[test]
    fn r_log_14_a_decompression_bomb_is_too_large_not_allocated() {
        let big = [Record {
            key: None,
            value: Some(vec![0; 4 << 20]),
            timestamp_delta: 0,
        }];
        for codec in &CODECS[1..] {
            let codec = *codec;
            let bomb = build_compressed_batch(&big, 0, codec).expect("build");
            assert!(bomb.len() < 512 << 10, "codec {codec}: {}", bomb.len());
            // Too large, not damaged: refused with MESSAGE_TOO_LARGE, which no client
            // retries (librdkafka retried CORRUPT_MESSAGE until its message timeout).
            assert!(matches!(
                inspect_client_batch(&bomb, 1 << 20),
                Err(BatchFault::TooLarge(e)) if e.contains("more than")
            ));
            assert!(
                inspect_client_batch(&bomb, 8 << 20).is_ok(),
                "codec {codec}"
            );
        }
    }

    fn sarama_batch(deltas: &[i64], codec: i16) -> Vec<u8> {
        build_sarama_batch(1000, deltas, codec).expect("build")
    }

    #[test]
    fn r_log_15_record_timestamps_are_read_from_the_records() {
        for codec in CODECS {
            let batch = sarama_batch(&[5, 30, 2, 30], codec);
            let (header, times) = inspect_client_batch(&batch, 1 << 20).expect("valid");
            assert_eq!(header.max_timestamp, -1);
            assert_eq!(times.max_timestamp, 1030, "codec {codec}");
            assert_eq!(times.bounded, Some((1002, 1030)));
        }
        // Records without timestamps (-1) take no part in the bounds.
        let none = patched(sarama_batch(&[0, 0], 0), |b| {
            b[27..35].copy_from_slice(&(-1i64).to_be_bytes())
        });
        let (_, times) = inspect_client_batch(&none, 1 << 20).expect("valid");
        assert_eq!((times.max_timestamp, times.bounded), (-1, None));
    }

    #[test]
    fn r_log_15_setting_the_max_timestamp_keeps_the_crc_valid() {
        let mut batch = sarama_batch(&[0, 7], compression::ZSTD);
        set_max_timestamp(&mut batch, 1007, false);
        let header = BatchHeader::parse(&batch).expect("valid");
        assert!(crc_is_valid(&batch));
        assert_eq!(
            (header.max_timestamp, header.is_log_append_time()),
            (1007, false)
        );
        assert_eq!(header.compression(), compression::ZSTD);
        set_max_timestamp(&mut batch, 99_000, true);
        let header = BatchHeader::parse(&batch).expect("valid");
        assert!(crc_is_valid(&batch));
        assert_eq!(
            (header.max_timestamp, header.is_log_append_time()),
            (99_000, true)
        );
        assert_eq!(header.compression(), compression::ZSTD);
    }

    #[test]
    fn r_wire_11_recompression_keeps_the_records_and_the_header() {
        for from in CODECS {
            for to in CODECS {
                let batch = sarama_batch(&[0, 10, 20], from);
                let out = recompress(&batch, to, 1 << 20).expect("recompress");
                let (was, _) = inspect_client_batch(&batch, 1 << 20).expect("valid");
                let (now, times) = inspect_client_batch(&out, 1 << 20).expect("valid");
                assert!(crc_is_valid(&out), "{from} to {to}");
                assert_eq!(now.compression(), to);
                assert_eq!(times.max_timestamp, 1020);
                let same = |h: &BatchHeader| {
                    (
                        h.record_count,
                        h.base_timestamp,
                        h.max_timestamp,
                        h.producer_id,
                    )
                };
                assert_eq!(same(&now), same(&was));
                assert_eq!(
                    records_of(&now, &out, 1 << 20).expect("records"),
                    records_of(&was, &batch, 1 << 20).expect("records")
                );
            }
        }
    }

    #[test]
    fn r_log_15_timestamp_search_reads_compressed_and_log_append_time_batches() {
        for codec in CODECS {
            let mut batch = sarama_batch(&[0, 10, 20, 30], codec);
            set_base_offset(&mut batch, 50);
            assert_eq!(
                first_record_at_or_after(&batch, 1015, 1 << 20),
                Some((52, 1020))
            );
            assert_eq!(first_record_at_or_after(&batch, 1031, 1 << 20), None);
            set_max_timestamp(&mut batch, 5000, true);
            assert_eq!(
                first_record_at_or_after(&batch, 1015, 1 << 20),
                Some((50, 5000))
            );
            assert_eq!(first_record_at_or_after(&batch, 5001, 1 << 20), None);
        }
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
