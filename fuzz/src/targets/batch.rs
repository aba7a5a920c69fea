//! `record_batch`: what a produced RecordBatch goes through before it is appended
//! (`record_validation::prepare`: CRC, header, records, bounded decompression,
//! timestamps, recompression) and the reads of stored batches that trust it.

use crate::alloc::{self, assert_within};
use chronik::kafka::errors;
use chronik::kafka::record_validation::{prepare, RecordPolicy};
use chronik::log::batch::{self, BatchHeader, HEADER_LEN};
use chronik::log::compression;

/// The decompression bound the target runs with (the broker's is 16 x the topic's
/// `max.message.bytes`).
const LIMIT: usize = 1 << 20;
/// Fixed costs of the codecs' own state, whatever the input: a zstd window of up to
/// 8 MiB (`compression::zstd_decoder`'s floor), lz4's 4 MiB blocks, zstd's
/// compression context when recompressing.
const CODEC_SLACK: usize = 24 << 20;
const NOW_MS: i64 = 1_700_000_000_000;

/// Input: one byte of switches, then the batch.
/// - bits 0-2: the topic's `compression.type` (0-4 a codec, else `producer`);
/// - bit 3: the topic stamps LogAppendTime;
/// - bit 4: the rest is `[codec][record count][records]`, which the harness
///   compresses and wraps in a valid header, so the records and codecs are reached;
/// - bit 5: batchLength and the CRC are set right, so the fuzzer gets past them.
///
/// Checks: no panic; only CORRUPT_MESSAGE, INVALID_RECORD or INVALID_TIMESTAMP as
/// refusals; reservations bounded by the decompression limit and the input, never
/// by a length field; decompression never yields more than its limit; an accepted
/// batch has a valid CRC, keeps its header and records (recompressed or not),
/// passes validation again, and ListOffsets' record search stays in its offsets.
pub fn record_batch(data: &[u8]) {
    let Some((&switches, rest)) = data.split_first() else {
        return;
    };
    let input = shape(switches, rest);
    let policy = policy(switches);
    let (outcome, usage) = alloc::measure(|| {
        let decompressed = raw_decompress(&input);
        let prepared = prepare(&input, LIMIT, &policy, NOW_MS).map(|p| p.bytes.into_owned());
        (decompressed, prepared)
    });
    let cap = CODEC_SLACK + 4 * LIMIT + 8 * data.len();
    assert_within(
        "batch validation reserved",
        usage.reserved_peak,
        cap,
        data.len(),
    );
    let (decompressed, prepared) = outcome;
    if let Some(Ok(records)) = decompressed {
        assert!(records.len() <= LIMIT, "decompressed past the limit");
    }
    match prepared {
        Ok(stored) => check_accepted(&input, &stored, &policy),
        Err(code) => assert!(
            [
                errors::CORRUPT_MESSAGE,
                errors::INVALID_RECORD,
                errors::INVALID_TIMESTAMP
            ]
            .contains(&code),
            "unexpected error code {code}"
        ),
    }
}

fn policy(switches: u8) -> RecordPolicy {
    let codec = i16::from(switches & 0x07);
    RecordPolicy {
        log_append_time: switches & 0x08 != 0,
        before_max_ms: i64::MAX,
        after_max_ms: i64::MAX,
        codec: (codec <= compression::ZSTD).then_some(codec),
        keys_required: switches & 0x40 != 0,
    }
}

fn shape(switches: u8, rest: &[u8]) -> Vec<u8> {
    if switches & 0x10 != 0 {
        return wrap(rest);
    }
    let mut input = rest.to_vec();
    if switches & 0x20 != 0 && input.len() >= HEADER_LEN {
        let length = (input.len() - 12) as i32;
        input[8..12].copy_from_slice(&length.to_be_bytes());
        fix_crc(&mut input);
    }
    input
}

/// `[codec][record count][records]` in a header a producer would write.
fn wrap(rest: &[u8]) -> Vec<u8> {
    let (codec, count, records) = match rest {
        [codec, count, records @ ..] => (i16::from(codec % 5), i32::from(*count), records),
        _ => return Vec::new(),
    };
    let Ok(body) = compression::compress(codec, records) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((HEADER_LEN - 12 + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&codec.to_be_bytes());
    out.extend_from_slice(&(count - 1).to_be_bytes());
    out.extend_from_slice(&NOW_MS.to_be_bytes());
    out.extend_from_slice(&NOW_MS.to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&body);
    fix_crc(&mut out);
    out
}

fn fix_crc(batch: &mut [u8]) {
    let crc = batch::compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The codecs straight on the payload, as `records_of` calls them.
fn raw_decompress(input: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let header = BatchHeader::parse(input).ok()?;
    let codec = header.compression();
    (codec != compression::NONE).then(|| {
        compression::decompress(codec, &input[HEADER_LEN..], LIMIT).map_err(|e| e.to_string())
    })
}

fn records(batch: &[u8]) -> Vec<u8> {
    let header = BatchHeader::parse(batch).expect("an accepted batch parses");
    compression::decompress(header.compression(), &batch[HEADER_LEN..], LIMIT)
        .expect("an accepted batch's records decompress")
}

fn check_accepted(input: &[u8], stored: &[u8], policy: &RecordPolicy) {
    assert!(batch::crc_is_valid(stored), "accepted batch has a bad CRC");
    let before = BatchHeader::parse(input).expect("accepted input parses");
    let after = BatchHeader::parse(stored).expect("stored batch parses");
    after.check_offset_range().expect("stored offset range");
    let kept = |h: &BatchHeader| {
        (
            h.base_offset,
            h.last_offset_delta,
            h.base_timestamp,
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.record_count,
            h.attributes & !0x0f,
        )
    };
    assert_eq!(kept(&before), kept(&after), "header fields changed");
    if let Some(codec) = policy.codec {
        assert_eq!(
            after.compression(),
            codec,
            "not stored in the topic's codec"
        );
    }
    assert_eq!(records(input), records(stored), "records changed");
    check_search(stored, &after, policy.log_append_time);
}

/// The batch passes validation again as it is stored, and ListOffsets' search of
/// it answers an offset inside the batch.
fn check_search(stored: &[u8], header: &BatchHeader, log_append_time: bool) {
    if !log_append_time {
        let (again, _) = batch::inspect_client_batch(stored, LIMIT).expect("stored batch valid");
        assert_eq!(again.record_count, header.record_count);
    }
    let mut placed = stored.to_vec();
    batch::set_base_offset(&mut placed, 100);
    let last = 100 + header.offset_count();
    for target in [
        i64::MIN,
        header.base_timestamp,
        header.max_timestamp,
        i64::MAX,
    ] {
        if let Some((offset, timestamp)) = batch::first_record_at_or_after(&placed, target, LIMIT) {
            assert!(
                (100..last).contains(&offset),
                "offset {offset} outside the batch"
            );
            assert!(timestamp >= target, "record before the target time");
        }
    }
}
