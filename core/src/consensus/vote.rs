//! The Raft term and vote, kept a second time outside the WAL (R-RECOVER-9).
//!
//! A node whose WAL is damaged can fetch the entries it lost from its peers, but not
//! its vote: a node that forgets a vote may vote twice in one term, and two leaders be
//! elected. So every change of term or vote is written both as a HardState record in
//! the WAL and here, both are fsynced before any message of that Ready leaves, and
//! recovery takes the later of the two: one damaged place never loses a vote. Two
//! slots take turns, each with a sequence number and a checksum, so a torn or damaged
//! slot leaves the other one's (older, and so never yet acted on, or superseded) value.

use crate::disk::{Disk, DiskFile, OpenMode};
use crate::log::LogError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const VOTE_FILE: &str = "vote";
const SLOT_LEN: usize = 32;

/// A term and the vote cast in it (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TermVote {
    pub term: u64,
    pub vote: u64,
}

impl TermVote {
    /// Later in Raft's order: a higher term, or the same term with a vote cast (a node
    /// votes at most once per term, after it learned the term).
    pub fn is_later_than(&self, other: &TermVote) -> bool {
        self.term > other.term || (self.term == other.term && self.vote != 0 && other.vote == 0)
    }
}

pub struct VoteFile {
    file: Arc<dyn DiskFile>,
    path: PathBuf,
    seq: u64,
    stored: TermVote,
    unsynced: bool,
}

impl VoteFile {
    pub fn open(disk: &dyn Disk, dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(VOTE_FILE);
        let file = disk
            .open_file(&path, OpenMode::Create)
            .map_err(|e| LogError::io("open", &path, e))?;
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
        let mut bytes = [0u8; 2 * SLOT_LEN];
        let got = file
            .read_full_at(&mut bytes, 0)
            .map_err(|e| LogError::io("read", &path, e))?;
        let newest = bytes[..got]
            .chunks_exact(SLOT_LEN)
            .filter_map(decode_slot)
            .max_by_key(|(seq, _)| *seq);
        let (seq, stored) = newest.unwrap_or_default();
        Ok(VoteFile {
            file,
            path,
            seq,
            stored,
            unsynced: false,
        })
    }

    /// What the newest intact slot holds ((0, 0) for a new file).
    pub fn stored(&self) -> TermVote {
        self.stored
    }

    /// Writes `now` into the older slot if it differs from what is stored; durable
    /// after [`sync`](Self::sync).
    pub fn record(&mut self, now: TermVote) -> Result<(), LogError> {
        if now == self.stored {
            return Ok(());
        }
        let seq = self.seq + 1;
        let slot = encode_slot(seq, now);
        self.unsynced = true;
        self.file
            .write_at(&slot, (seq % 2) * SLOT_LEN as u64)
            .map_err(|e| LogError::io("write", &self.path, e))?;
        self.seq = seq;
        self.stored = now;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), LogError> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(|e| LogError::io("fsync", &self.path, e))?;
            self.unsynced = false;
        }
        Ok(())
    }
}

fn encode_slot(seq: u64, tv: TermVote) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[4..12].copy_from_slice(&seq.to_le_bytes());
    slot[12..20].copy_from_slice(&tv.term.to_le_bytes());
    slot[20..28].copy_from_slice(&tv.vote.to_le_bytes());
    let crc = crc32fast::hash(&slot[4..]);
    slot[..4].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, TermVote)> {
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(slot.get(at..at + 8)?.try_into().ok()?))
    };
    let crc = u32::from_le_bytes(slot.get(..4)?.try_into().ok()?);
    let seq = word(4)?;
    if seq == 0 || crc != crc32fast::hash(slot.get(4..)?) {
        return None;
    }
    Some((
        seq,
        TermVote {
            term: word(12)?,
            vote: word(20)?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    fn open(disk: &MemDisk) -> VoteFile {
        disk.create_dir_all(Path::new("/m")).expect("mkdir");
        VoteFile::open(disk, Path::new("/m")).expect("open")
    }

    fn tv(term: u64, vote: u64) -> TermVote {
        TermVote { term, vote }
    }

    #[test]
    fn r_recover_9_the_newest_intact_slot_is_read_back() {
        let disk = MemDisk::new();
        let mut f = open(&disk);
        assert_eq!(f.stored(), TermVote::default());
        for (term, vote) in [(1, 0), (1, 2), (2, 0), (3, 3)] {
            f.record(tv(term, vote)).expect("record");
            f.sync().expect("sync");
            assert_eq!(open(&disk).stored(), tv(term, vote));
        }
    }

    #[test]
    fn r_recover_9_a_damaged_slot_leaves_the_previous_value() {
        let disk = MemDisk::new();
        let mut f = open(&disk);
        f.record(tv(4, 1)).expect("record");
        f.record(tv(5, 2)).expect("record");
        f.sync().expect("sync");
        // seq 2 went to slot 0: damage it; slot 1 still holds (4, 1).
        disk.corrupt(Path::new("/m/vote"), 13, &[0xff])
            .expect("corrupt");
        assert_eq!(open(&disk).stored(), tv(4, 1));
    }

    #[test]
    fn r_recover_9_later_means_higher_term_or_a_vote_cast_in_it() {
        assert!(tv(2, 0).is_later_than(&tv(1, 3)));
        assert!(tv(2, 3).is_later_than(&tv(2, 0)));
        assert!(!tv(2, 0).is_later_than(&tv(2, 3)));
        assert!(!tv(2, 3).is_later_than(&tv(2, 3)));
    }
}
