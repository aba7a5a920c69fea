//! ListOffsets (v1+) at a partition's leader, as Kafka 3.9's `fetchOffsetForTimestamp`:
//! which special timestamps each version may ask, what each answers, and the
//! refusal while a new leader's high watermark still lags its epoch's start.

use crate::errors::{self, ErrorCode};
use crate::log::PartitionLog;

/// The special timestamps of ListOffsets, with the first version that may send each.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
/// KIP-405: the local log's start; without tiered storage the log start.
pub const EARLIEST_LOCAL: i64 = -4;
/// KIP-1005: the last offset in tiered storage; there is none here.
pub const LATEST_TIERED: i64 = -5;

fn first_version_of(timestamp: i64) -> Option<i16> {
    match timestamp {
        LATEST | EARLIEST => Some(1),
        MAX_TIMESTAMP => Some(7),
        EARLIEST_LOCAL => Some(8),
        LATEST_TIERED => Some(9),
        _ => None,
    }
}

/// One partition's answer: offset and timestamp (-1 for none), and the leader epoch
/// of the batch it names, where known (v4+ carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

impl ListedOffset {
    const NONE: ListedOffset = ListedOffset {
        offset: -1,
        timestamp: -1,
        leader_epoch: None,
    };
}

/// The answer for `timestamp` from the leader of `leader_epoch` holding `log`, or its
/// error code. A consumer sees nothing beyond the high watermark. A leader whose
/// high watermark is still below the offset where its epoch began does not yet
/// know how far its predecessor acknowledged, so "latest" and a lookup it cannot
/// answer below the high watermark are OFFSET_NOT_AVAILABLE (retriable;
/// LEADER_NOT_AVAILABLE before v5), never an offset that went backwards.
pub fn list_offset(
    log: &PartitionLog,
    leader_epoch: i32,
    timestamp: i64,
    version: i16,
) -> Result<ListedOffset, ErrorCode> {
    let known_here = match first_version_of(timestamp) {
        Some(first) => version >= first,
        None => timestamp >= 0,
    };
    if !known_here {
        return Err(errors::UNSUPPORTED_VERSION);
    }
    let hw = log.high_watermark();
    let lagging = log.epoch_start_offset(leader_epoch) > hw;
    let not_available = if version >= 5 {
        errors::OFFSET_NOT_AVAILABLE
    } else {
        errors::LEADER_NOT_AVAILABLE
    };
    let epoch_of = |offset: u64| Some(log.leader_epoch_at(offset));
    let found = match timestamp {
        LATEST if lagging => return Err(not_available),
        LATEST => {
            return Ok(ListedOffset {
                offset: hw as i64,
                timestamp: -1,
                leader_epoch: Some(leader_epoch),
            })
        }
        EARLIEST | EARLIEST_LOCAL => return Ok(earliest(log)),
        LATEST_TIERED => {
            return Ok(ListedOffset {
                leader_epoch: Some(-1),
                ..ListedOffset::NONE
            })
        }
        MAX_TIMESTAMP => log.offset_of_max_timestamp(hw),
        _ => log.offset_for_timestamp(timestamp, hw),
    };
    match found.map_err(|e| errors::from_log_error(&e))? {
        Some((offset, timestamp)) => Ok(ListedOffset {
            offset: offset as i64,
            timestamp,
            leader_epoch: epoch_of(offset),
        }),
        None if lagging => Err(not_available),
        None => Ok(ListedOffset::NONE),
    }
}

/// The log start, with the first recorded epoch if it began at or before it.
fn earliest(log: &PartitionLog) -> ListedOffset {
    let start = log.log_start_offset();
    let leader_epoch = log
        .earliest_epoch()
        .filter(|(_, first)| *first <= start)
        .map(|(epoch, _)| epoch);
    ListedOffset {
        offset: start as i64,
        timestamp: -1,
        leader_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;
    use crate::log::batch::{build_batch, Record};
    use crate::log::LogConfig;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// A log with batches of epochs 3 and 5 at offsets 0..4, timestamps 1000 + 10 * offset.
    fn log_of_two_epochs() -> PartitionLog {
        let disk = Arc::new(MemDisk::new());
        let dir = PathBuf::from("/data/t-0");
        let log = PartitionLog::open(disk, &dir, LogConfig::default(), None).unwrap();
        for (epoch, first) in [(3, 0), (3, 2), (5, 4)] {
            let records: Vec<Record> = (0..2)
                .map(|i| Record {
                    value: Some(vec![b'v']),
                    timestamp_delta: 10 * i,
                    ..Record::default()
                })
                .collect();
            log.append(&build_batch(&records, 1_000 + 10 * first), 0, epoch)
                .unwrap();
        }
        log
    }

    #[test]
    fn r_wire_13_special_timestamps_need_their_version() {
        let log = log_of_two_epochs();
        log.set_high_watermark(6);
        let refused = Err(errors::UNSUPPORTED_VERSION);
        assert_eq!(list_offset(&log, 5, MAX_TIMESTAMP, 6), refused);
        assert_eq!(list_offset(&log, 5, EARLIEST_LOCAL, 7), refused);
        assert_eq!(list_offset(&log, 5, LATEST_TIERED, 8), refused);
        assert_eq!(list_offset(&log, 5, -6, 9), refused);
        let earliest = list_offset(&log, 5, EARLIEST, 1).unwrap();
        assert_eq!(list_offset(&log, 5, EARLIEST_LOCAL, 8), Ok(earliest));
        assert_eq!((earliest.offset, earliest.leader_epoch), (0, Some(3)));
        let tiered = list_offset(&log, 5, LATEST_TIERED, 9).unwrap();
        assert_eq!((tiered.offset, tiered.leader_epoch), (-1, Some(-1)));
    }

    #[test]
    fn r_wire_13_answers_name_the_leader_epoch_of_what_they_find() {
        let log = log_of_two_epochs();
        log.set_high_watermark(6);
        let latest = list_offset(&log, 5, LATEST, 9).unwrap();
        assert_eq!((latest.offset, latest.leader_epoch), (6, Some(5)));
        let by_time = list_offset(&log, 5, 1_025, 9).unwrap();
        assert_eq!((by_time.offset, by_time.timestamp), (3, 1_030));
        assert_eq!(by_time.leader_epoch, Some(3));
        let max = list_offset(&log, 5, MAX_TIMESTAMP, 9).unwrap();
        assert_eq!((max.offset, max.leader_epoch), (5, Some(5)));
    }

    #[test]
    fn r_wire_13_a_new_leader_lagging_its_epoch_start_lists_no_latest_offset() {
        // Leader of epoch 7 since offset 6; it knows a high watermark of 4 only.
        let log = log_of_two_epochs();
        log.set_high_watermark(4);
        assert_eq!(
            list_offset(&log, 7, LATEST, 5),
            Err(errors::OFFSET_NOT_AVAILABLE)
        );
        assert_eq!(
            list_offset(&log, 7, LATEST, 4),
            Err(errors::LEADER_NOT_AVAILABLE),
            "before v5"
        );
        assert_eq!(
            list_offset(&log, 7, 1_045, 9),
            Err(errors::OFFSET_NOT_AVAILABLE),
            "a record it cannot show yet"
        );
        assert_eq!(list_offset(&log, 7, 1_005, 9).map(|l| l.offset), Ok(1));
        assert_eq!(list_offset(&log, 7, EARLIEST, 9).map(|l| l.offset), Ok(0));
        log.set_high_watermark(6);
        assert_eq!(list_offset(&log, 7, LATEST, 9).map(|l| l.offset), Ok(6));
    }
}
