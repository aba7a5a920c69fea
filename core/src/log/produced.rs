//! The batch a Produce request appends for one partition, as the broker's Produce
//! handler and the simulator both prepare it: a v0/v1 message set of Produce v0-2
//! converted up into one RecordBatch v2 (R-WIRE-13), then checked and its timestamps
//! set as Kafka's LogValidator does (R-LOG-14, R-LOG-15), under the topic's configs.

use super::message_format;
use super::validation::{prepare_owned, Prepared, RecordPolicy};
use crate::errors::{self, ErrorCode};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The prepared batch, or `None` for an old message set that holds no whole message
/// (Kafka appends nothing and answers success); an error code refuses the partition.
/// `limit` bounds the decompressed records.
pub fn prepare_produced<'a>(
    records: &'a [u8],
    version: i16,
    topic_configs: &BTreeMap<String, String>,
    limit: usize,
    now_ms: i64,
) -> Result<Option<Prepared<'a>>, ErrorCode> {
    let policy = RecordPolicy::of_topic(topic_configs);
    match produced_batch(records, version, limit, &policy)? {
        None => Ok(None),
        Some(batch) => prepare_owned(batch, limit, &policy, now_ms).map(Some),
    }
}

/// Transactions are not built, so no producer is ever in a transaction: a batch
/// flagged transactional is refused as Kafka refuses one sent outside a transaction,
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED without a transactional id and
/// INVALID_TXN_STATE with one. Appended, it was read by read_committed consumers at
/// once, with no commit or abort ever to follow it (exploratory testing, 2026-12-07).
pub fn transaction_refusal(records: &[u8], has_transactional_id: bool) -> Option<ErrorCode> {
    let header = super::batch::BatchHeader::parse(records).ok()?;
    (header.magic == 2 && header.is_transactional()).then_some(if has_transactional_id {
        errors::INVALID_TXN_STATE
    } else {
        errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    })
}

/// The v2 batch to append: as sent (Produce v3+ carries nothing else, as Kafka's
/// ProduceRequest.validateRecords requires), or a v0/v1 message set of Produce v0-2
/// converted up; None when such a set holds no whole message.
fn produced_batch<'a>(
    records: &'a [u8],
    version: i16,
    limit: usize,
    policy: &RecordPolicy,
) -> Result<Option<Cow<'a, [u8]>>, ErrorCode> {
    let target = message_format::Target {
        codec: policy.codec,
        log_append_time: policy.log_append_time,
    };
    match (message_format::magic(records), version < 3) {
        (None, true) => Ok(None),
        (Some(magic), true) if magic < 2 => {
            let batch = message_format::to_record_batch(records, limit, target)?;
            Ok(batch.map(Cow::Owned))
        }
        (Some(magic), false) if magic < 2 => Err(errors::INVALID_RECORD),
        _ => Ok(Some(Cow::Borrowed(records))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::build_simple_batch;

    /// The attributes' transactional bit (Kafka's RecordBatch, bit 4), set on a
    /// built batch; the header is all the refusal reads.
    fn flagged_transactional(mut batch: Vec<u8>) -> Vec<u8> {
        batch[22] |= 0x10;
        batch
    }

    #[test]
    fn r_wire_13_a_transactional_batch_is_refused_as_outside_any_transaction() {
        let plain = build_simple_batch(2, 4, b'v', 0);
        assert_eq!(transaction_refusal(&plain, false), None);
        assert_eq!(transaction_refusal(&plain, true), None);
        let flagged = flagged_transactional(plain);
        assert_eq!(
            transaction_refusal(&flagged, false),
            Some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        );
        assert_eq!(
            transaction_refusal(&flagged, true),
            Some(errors::INVALID_TXN_STATE)
        );
        assert_eq!(transaction_refusal(b"not a batch", false), None);
    }
}
