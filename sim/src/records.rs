//! The workload's topic, and reading records back out of batches and logs, for the
//! producers' and consumers' checks.

use chronik_core::log::batch::visit_records;
use chronik_core::log::PartitionLog;
use std::collections::BTreeMap;

/// The replicated topic the producers write to and the consumers read.
pub const TOPIC: &str = "orders";
pub const PARTITIONS: i32 = 2;

/// (offset, value) of every record of a consumer's fetch answer for `partition`, or
/// the broken rule if it does not parse.
pub fn fetched_records(partition: i32, records: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut seen = Vec::new();
    visit_batches(records, &mut |offset, value| seen.push((offset, value)))
        .map_err(|e| format!("R-WIRE-5 p{partition}: a fetch answer does not parse: {e}"))?;
    Ok(seen)
}

/// Calls `visit` with (offset, value) of every record in concatenated batches.
pub fn visit_batches(records: &[u8], visit: &mut dyn FnMut(u64, Vec<u8>)) -> Result<(), String> {
    let mut at = 0;
    while at < records.len() {
        let len = records
            .get(at + 8..at + 12)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or("short batch")?;
        let end = at + 12 + usize::try_from(len).map_err(|_| "negative batch length")?;
        let bytes = records.get(at..end).ok_or("batch past the answer")?;
        visit_records(bytes, 1 << 20, &mut |r| {
            visit(r.offset, r.value.unwrap_or_default().to_vec());
        })?;
        at = end;
    }
    Ok(())
}

/// The value of the record at `offset`, if the log holds it.
pub fn value_at(log: &PartitionLog, offset: u64) -> Option<Vec<u8>> {
    let read = log.read(offset, 1 << 20, offset + 1).ok()?;
    let mut found = None;
    visit_batches(&read.records, &mut |at, value| {
        if at == offset {
            found = Some(value);
        }
    })
    .ok()?;
    found
}

/// Every record value below `upper`, by offset.
pub fn read_values(log: &PartitionLog, upper: u64) -> Result<BTreeMap<u64, Vec<u8>>, String> {
    let mut values = BTreeMap::new();
    let mut offset = log.log_start_offset();
    while offset < upper {
        let read = log
            .read(offset, 1 << 20, upper)
            .map_err(|e| e.to_string())?;
        if read.batch_count == 0 {
            break;
        }
        visit_batches(&read.records, &mut |offset, value| {
            if offset < upper {
                values.insert(offset, value);
            }
        })?;
        offset = read.next_offset;
    }
    Ok(values)
}
