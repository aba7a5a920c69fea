//! Per-segment sparse indexes, kept in memory and written to disk when a segment is
//! sealed or the log is closed. On open they are trusted only if consistent with
//! the segment file; otherwise they are rebuilt by scanning it (R-LOG-3).

/// Maps offsets (relative to the segment's base) to byte positions of the frame of
/// the batch starting there. One entry per `index_interval_bytes` of log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        self.entries.push((relative_offset, position));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The position of the last indexed batch starting at or before `relative_offset`;
    /// 0 (the segment's start) when there is none.
    pub fn position_for(&self, relative_offset: u32) -> u32 {
        let i = self.entries.partition_point(|(o, _)| *o <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    /// The last entry (relative offset, position) at or before `relative_offset`;
    /// (0, 0), the segment's start, when there is none.
    pub fn entry_for(&self, relative_offset: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|(o, _)| *o <= relative_offset);
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    pub fn last_relative_offset(&self) -> Option<u32> {
        self.entries.last().map(|(o, _)| *o)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for (o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// None if the bytes are not a consistent index for a segment of `segment_len`
    /// bytes: entries strictly increasing and pointing inside the segment.
    pub fn decode(bytes: &[u8], segment_len: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut entries = Vec::with_capacity(bytes.len() / 8);
        for chunk in bytes.chunks_exact(8) {
            let o = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let p = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if u64::from(p) >= segment_len {
                return None;
            }
            if let Some(&(po, pp)) = entries.last() {
                if o <= po || p <= pp {
                    return None;
                }
            }
            entries.push((o, p));
        }
        Some(OffsetIndex { entries })
    }
}

/// Maps the largest timestamp seen so far to the relative offset of the batch at
/// which it was recorded, for ListOffsets by timestamp and time-based retention.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Records `(max_timestamp_so_far, relative_offset)` if the timestamp grew.
    pub fn maybe_push(&mut self, max_timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(ts, o)) if ts >= max_timestamp || o > relative_offset => {}
            Some(&(_, o)) if o == relative_offset => {
                if let Some(last) = self.entries.last_mut() {
                    last.0 = max_timestamp;
                }
            }
            _ => self.entries.push((max_timestamp, relative_offset)),
        }
    }

    /// A relative offset from which a scan for the first batch with a timestamp of
    /// at least `target` may start: every batch before it is older than `target`.
    pub fn start_for(&self, target: i64) -> u32 {
        let i = self.entries.partition_point(|(ts, _)| *ts < target);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|(ts, _)| *ts)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for (ts, o) in &self.entries {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(12) {
            return None;
        }
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / 12);
        for chunk in bytes.chunks_exact(12) {
            let mut t = [0; 8];
            t.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(t);
            let o = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if let Some(&(pts, po)) = entries.last() {
                if ts <= pts || o < po {
                    return None;
                }
            }
            entries.push((ts, o));
        }
        Some(TimeIndex { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_round_trip() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4100);
        idx.push(25, 8300);
        assert_eq!(idx.position_for(0), 0);
        assert_eq!(idx.position_for(9), 0);
        assert_eq!(idx.position_for(10), 4100);
        assert_eq!(idx.position_for(1000), 8300);
        assert_eq!(OffsetIndex::decode(&idx.encode(), 9000), Some(idx.clone()));
        assert_eq!(
            OffsetIndex::decode(&idx.encode(), 8300),
            None,
            "points past the end"
        );
        assert_eq!(OffsetIndex::decode(&idx.encode()[..7], 9000), None);
    }

    #[test]
    fn time_index_start_never_skips_a_newer_batch() {
        let mut idx = TimeIndex::default();
        idx.maybe_push(100, 0);
        idx.maybe_push(90, 5); // older timestamp: not recorded
        idx.maybe_push(200, 10);
        idx.maybe_push(300, 20);
        assert_eq!(idx.start_for(50), 0);
        assert_eq!(idx.start_for(150), 0);
        assert_eq!(idx.start_for(201), 10);
        assert_eq!(idx.max_timestamp(), Some(300));
        assert_eq!(TimeIndex::decode(&idx.encode()), Some(idx));
    }
}
