//! What Kafka's LogValidator does to a produced batch before it is appended: checks
//! its framing and records (R-LOG-14), checks and sets its timestamps from the
//! records and the topic's `message.timestamp.*` configs (R-LOG-15), and
//! recompresses it when the topic's `compression.type` names another codec
//! (R-WIRE-11).

use crate::errors::{self, ErrorCode};
use crate::log::batch::{self, BatchFault, BatchHeader, RecordTimes};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The topic's configs that shape a produced batch, as Kafka's LogConfig resolves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPolicy {
    /// `message.timestamp.type=LogAppendTime`: the broker's clock stamps batches.
    pub log_append_time: bool,
    /// How far in the past (`message.timestamp.before.max.ms`) and the future
    /// (`message.timestamp.after.max.ms`) a CreateTime record may be.
    pub before_max_ms: i64,
    pub after_max_ms: i64,
    /// The codec batches are stored in; None keeps the producer's.
    pub codec: Option<i16>,
    /// `cleanup.policy` includes `compact`: every record needs a key (R-LOG-18).
    pub keys_required: bool,
}

impl RecordPolicy {
    /// Reads the topic's configs. As Kafka 3.6+ does, the deprecated
    /// `message.timestamp.difference.max.ms` applies to a side whose KIP-937
    /// config is left at its default (unbounded).
    pub fn of_topic(configs: &BTreeMap<String, String>) -> Self {
        let long = |name: &str| {
            configs
                .get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(i64::MAX)
        };
        let difference = long("message.timestamp.difference.max.ms");
        let side = |name: &str| match long(name) {
            i64::MAX => difference,
            v => v,
        };
        RecordPolicy {
            log_append_time: configs.get("message.timestamp.type").map(String::as_str)
                == Some("LogAppendTime"),
            before_max_ms: side("message.timestamp.before.max.ms"),
            after_max_ms: side("message.timestamp.after.max.ms"),
            codec: configs
                .get("compression.type")
                .and_then(|name| crate::log::compression::from_name(name)),
            keys_required: configs
                .get("cleanup.policy")
                .is_some_and(|p| p.split(',').any(|item| item.trim() == "compact")),
        }
    }

    /// Kafka's check of each CreateTime record: not more than `before_max_ms` older
    /// or `after_max_ms` newer than the broker's clock (records without a timestamp
    /// are not checked).
    fn admits(&self, times: &RecordTimes, now_ms: i64) -> bool {
        times.bounded.is_none_or(|(oldest, newest)| {
            now_ms.saturating_sub(oldest) <= self.before_max_ms
                && newest.saturating_sub(now_ms) <= self.after_max_ms
        })
    }
}

/// A batch ready to append, and the append time the Produce answer reports
/// (-1 unless the topic uses LogAppendTime).
#[derive(Debug)]
pub struct Prepared<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub header: BatchHeader,
    pub log_append_time_ms: i64,
}

/// Checks one produced batch and sets its header's timestamps as Kafka's validator
/// does in place; nothing is appended when it answers an error code.
/// `max_records_bytes` bounds the decompressed records.
pub fn prepare<'a>(
    records: &'a [u8],
    max_records_bytes: usize,
    policy: &RecordPolicy,
    now_ms: i64,
) -> Result<Prepared<'a>, ErrorCode> {
    if !batch::crc_is_valid(records) {
        return Err(errors::CORRUPT_MESSAGE);
    }
    let (header, times) =
        batch::inspect_client_batch(records, max_records_bytes).map_err(|fault| {
            tracing::debug!(%fault, "produce refused");
            match fault {
                BatchFault::Corrupt(_) => errors::CORRUPT_MESSAGE,
                BatchFault::Invalid(_) => errors::INVALID_RECORD,
                // Not CORRUPT_MESSAGE, which librdkafka retries until its message
                // timeout and then reports only as timed out.
                BatchFault::TooLarge(why) => {
                    tracing::warn!(%why, "produce refused: a batch's records decompress past the bound (16 times max.message.bytes)");
                    errors::MESSAGE_TOO_LARGE
                }
            }
        })?;
    // Producers may not claim the broker's clock (Kafka's "Invalid timestamp type").
    if header.is_log_append_time() {
        return Err(errors::INVALID_TIMESTAMP);
    }
    if policy.keys_required && !every_record_has_a_key(records, max_records_bytes) {
        tracing::debug!("compacted topic refused a record without a key");
        return Err(errors::INVALID_RECORD);
    }
    let mut bytes = Cow::Borrowed(records);
    if let Some(codec) = policy.codec.filter(|c| *c != header.compression()) {
        let recompressed = batch::recompress(records, codec, max_records_bytes).map_err(|e| {
            tracing::warn!(error = %e, "cannot recompress a produced batch");
            errors::CORRUPT_MESSAGE
        })?;
        bytes = Cow::Owned(recompressed);
    }
    if policy.log_append_time {
        batch::set_max_timestamp(bytes.to_mut(), now_ms, true);
        return Ok(Prepared {
            bytes,
            header,
            log_append_time_ms: now_ms,
        });
    }
    if !policy.admits(&times, now_ms) {
        return Err(errors::INVALID_TIMESTAMP);
    }
    if header.max_timestamp != times.max_timestamp {
        batch::set_max_timestamp(bytes.to_mut(), times.max_timestamp, false);
    }
    Ok(Prepared {
        bytes,
        header,
        log_append_time_ms: -1,
    })
}

/// The positions in a batch of the records without a key: what a compacted topic's
/// refusal names in Produce v8+'s `record_errors` (KIP-467), so a client fails those
/// records and not the rest of their batch for the same reason.
pub fn keyless_record_indexes(records: &[u8], max_records_bytes: usize) -> Vec<i32> {
    let mut index = 0;
    let mut keyless = Vec::new();
    let _ = batch::visit_records(records, max_records_bytes, &mut |r| {
        if r.key.is_none() {
            keyless.push(index);
        }
        index += 1;
    });
    keyless
}

/// Kafka's "Compacted topic cannot accept message without key".
fn every_record_has_a_key(records: &[u8], max_records_bytes: usize) -> bool {
    let mut keyless = false;
    let read = batch::visit_records(records, max_records_bytes, &mut |r| {
        keyless |= r.key.is_none();
    });
    read.is_ok() && !keyless
}

/// As [`prepare`], for a batch that may be borrowed from the request or built by
/// the broker (an old message set converted up): the result owns what it must.
pub fn prepare_owned<'a>(
    records: Cow<'a, [u8]>,
    max_records_bytes: usize,
    policy: &RecordPolicy,
    now_ms: i64,
) -> Result<Prepared<'a>, ErrorCode> {
    match records {
        Cow::Borrowed(b) => prepare(b, max_records_bytes, policy, now_ms),
        Cow::Owned(b) => {
            let p = prepare(&b, max_records_bytes, policy, now_ms)?;
            let (header, log_append_time_ms) = (p.header, p.log_append_time_ms);
            let rebuilt = match p.bytes {
                Cow::Owned(rebuilt) => Some(rebuilt),
                Cow::Borrowed(_) => None,
            };
            Ok(Prepared {
                bytes: Cow::Owned(rebuilt.unwrap_or(b)),
                header,
                log_append_time_ms,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Two records stamped 1000 and 1040 under a header claiming -1, as Sarama sends.
    fn sarama_batch() -> Vec<u8> {
        batch::build_sarama_batch(1000, &[0, 40], 0).unwrap_or_default()
    }

    #[test]
    fn r_log_15_create_time_sets_the_max_timestamp_from_the_records() {
        let policy = RecordPolicy::of_topic(&BTreeMap::new());
        let b = sarama_batch();
        let p = prepare(&b, 1 << 20, &policy, 5000).expect("valid");
        let header = BatchHeader::parse(&p.bytes).expect("valid");
        assert_eq!((header.max_timestamp, p.log_append_time_ms), (1040, -1));
        assert!(batch::crc_is_valid(&p.bytes));
        // Already right: passed through untouched.
        let again = prepare(&p.bytes, 1 << 20, &policy, 5000).expect("valid");
        assert!(matches!(again.bytes, Cow::Borrowed(_)));
    }

    #[test]
    fn r_log_15_log_append_time_stamps_the_broker_clock() {
        let policy =
            RecordPolicy::of_topic(&configs(&[("message.timestamp.type", "LogAppendTime")]));
        let b = sarama_batch();
        let p = prepare(&b, 1 << 20, &policy, 777).expect("valid");
        let header = BatchHeader::parse(&p.bytes).expect("valid");
        assert_eq!(header.max_timestamp, 777);
        assert!(header.is_log_append_time() && batch::crc_is_valid(&p.bytes));
        assert_eq!(p.log_append_time_ms, 777);
        // A client may not send a LogAppendTime batch itself.
        assert_eq!(
            prepare(&p.bytes, 1 << 20, &policy, 777).map(|_| ()),
            Err(errors::INVALID_TIMESTAMP)
        );
    }

    #[test]
    fn r_wire_11_a_topic_codec_recompresses_batches_in_another() {
        let policy = RecordPolicy::of_topic(&configs(&[("compression.type", "zstd")]));
        let b = sarama_batch();
        let p = prepare(&b, 1 << 20, &policy, 5000).expect("valid");
        let header = BatchHeader::parse(&p.bytes).expect("valid");
        assert_eq!(header.compression(), crate::log::compression::ZSTD);
        assert_eq!(header.max_timestamp, 1040);
        assert!(batch::crc_is_valid(&p.bytes));
        let again = prepare(&p.bytes, 1 << 20, &policy, 5000).expect("valid");
        assert!(matches!(again.bytes, Cow::Borrowed(_)), "already zstd");
        let plain = RecordPolicy::of_topic(&configs(&[("compression.type", "uncompressed")]));
        let back = prepare(&p.bytes, 1 << 20, &plain, 5000).expect("valid");
        assert_eq!(
            back.bytes.as_ref(),
            prepare(&b, 1 << 20, &policy_default(), 5000)
                .expect("valid")
                .bytes
                .as_ref()
        );
    }

    #[test]
    fn r_log_18_a_compacted_topic_refuses_a_record_without_a_key() {
        let compacted = RecordPolicy::of_topic(&configs(&[("cleanup.policy", "compact,delete")]));
        let keyed = |key: Option<&[u8]>| {
            batch::build_batch(
                &[
                    batch::Record {
                        key: Some(b"k".to_vec()),
                        value: Some(b"v".to_vec()),
                        timestamp_delta: 0,
                    },
                    batch::Record {
                        key: key.map(<[u8]>::to_vec),
                        value: Some(b"v".to_vec()),
                        timestamp_delta: 0,
                    },
                ],
                1_000,
            )
        };
        let (with_keys, without) = (keyed(Some(b"j")), keyed(None));
        assert!(prepare(&with_keys, 1 << 20, &compacted, 1_000).is_ok());
        assert_eq!(
            prepare(&without, 1 << 20, &compacted, 1_000).map(|_| ()),
            Err(errors::INVALID_RECORD)
        );
        assert!(prepare(&without, 1 << 20, &policy_default(), 1_000).is_ok());
        assert_eq!(keyless_record_indexes(&without, 1 << 20), vec![1]);
        assert!(keyless_record_indexes(&with_keys, 1 << 20).is_empty());
    }

    fn policy_default() -> RecordPolicy {
        RecordPolicy::of_topic(&BTreeMap::new())
    }

    #[test]
    fn r_log_15_timestamps_outside_the_topic_bounds_are_refused() {
        let b = sarama_batch(); // records at 1000 and 1040
        let check = |pairs: &[(&str, &str)], now: i64| {
            prepare(&b, 1 << 20, &RecordPolicy::of_topic(&configs(pairs)), now).map(|_| ())
        };
        let bad = Err(errors::INVALID_TIMESTAMP);
        assert_eq!(
            check(&[("message.timestamp.before.max.ms", "100")], 1100),
            Ok(())
        );
        assert_eq!(
            check(&[("message.timestamp.before.max.ms", "99")], 1100),
            bad
        );
        assert_eq!(
            check(&[("message.timestamp.after.max.ms", "40")], 1000),
            Ok(())
        );
        assert_eq!(
            check(&[("message.timestamp.after.max.ms", "39")], 1000),
            bad
        );
        // The deprecated config bounds both sides unless a KIP-937 one is set.
        assert_eq!(
            check(&[("message.timestamp.difference.max.ms", "39")], 1000),
            bad
        );
        assert_eq!(
            check(&[("message.timestamp.difference.max.ms", "39")], 1079),
            bad
        );
        assert_eq!(
            check(&[("message.timestamp.difference.max.ms", "40")], 1040),
            Ok(())
        );
        assert_eq!(
            check(
                &[
                    ("message.timestamp.difference.max.ms", "1"),
                    ("message.timestamp.after.max.ms", "1000")
                ],
                1000
            ),
            Ok(())
        );
    }
}
