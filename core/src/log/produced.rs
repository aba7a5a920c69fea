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
