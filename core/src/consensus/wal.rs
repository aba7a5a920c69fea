//! Durable Raft storage (R-PERSIST-1, R-RECOVER-1).
//!
//! `raft/wal.log` holds frames (the partition log's format: length, crc32, payload)
//! whose payload is a kind byte and a protobuf message: an entry or a HardState.
//! Entries are written before the HardState that may commit them, and one fdatasync
//! covers both, so a HardState on disk never commits an entry that is not.
//! `raft/snapshot.bin` holds the last snapshot (metadata image and its Raft index),
//! written atomically; after it the WAL is rewritten without the entries it covers.

use super::vote::{TermVote, VoteFile};
use crate::disk::{write_atomically, Disk, DiskFile, OpenMode};
use crate::log::frame::{self, FRAME_HEADER_LEN};
use crate::log::frame_reader::{FrameReader, Stop, SCAN_BLOCK};
use crate::log::LogError;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

const WAL_FILE: &str = "wal.log";
/// Present while the node repairs a damaged WAL from its peers (R-RECOVER-9); it says
/// where the damage was.
const REPAIR_FILE: &str = "repair";
const SNAPSHOT_FILE: &str = "snapshot.bin";
/// The kind byte of a WAL record that holds one Raft entry (its protobuf follows).
pub const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;

/// A bad record with a valid record after it is damage, not a crash's torn tail:
/// cutting there would delete committed metadata (issue 12: three topics vanished).
/// Returns the position of that next valid record, if there is one.
fn damage_before_valid_record(
    file: &dyn DiskFile,
    path: &Path,
    at: u64,
    len: u64,
) -> Result<Option<u64>, LogError> {
    next_valid_record(file, path, at + 1, len)
}

/// Why a broker refuses to start on partition data whose metadata is gone
/// (R-RECOVER-7).
#[derive(Debug, thiserror::Error)]
pub enum OrphanedData {
    #[error(transparent)]
    Storage(#[from] LogError),
    #[error(
        "{logs} holds {count} partition directories (e.g. {example}) but the metadata log in \
         {metadata} is missing or empty: starting would lose every topic and let a new topic \
         of the same name serve the old records. Restore the metadata directory, or move \
         {logs} aside to start empty."
    )]
    MetadataMissing {
        logs: String,
        count: usize,
        example: String,
        metadata: String,
    },
}

/// Partition directories in `logs_dir` with no Raft log or snapshot in
/// `metadata_dir` mean the metadata was lost (deleted, emptied, a wrong path):
/// starting anyway would serve zero topics, and a topic created again under an old
/// name would serve the old records (issue 12). A start-up decision, made before the
/// Raft storage is opened (which would create an empty log).
pub fn refuse_partition_data_without_metadata(
    disk: &dyn Disk,
    metadata_dir: &Path,
    logs_dir: &Path,
) -> Result<(), OrphanedData> {
    let wal_path = metadata_dir.join(WAL_FILE);
    // Only a missing WAL counts as no metadata: an unreadable one is a storage error
    // to report, not a reason to refuse a node whose metadata may be intact.
    let wal_len = match disk.open_file(&wal_path, OpenMode::Existing) {
        Ok(file) => file.len().map_err(|e| LogError::io("stat", &wal_path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(LogError::io("open", &wal_path, e).into()),
    };
    if wal_len > 0 || disk.exists(&metadata_dir.join(SNAPSHOT_FILE)) {
        return Ok(());
    }
    let partitions = if disk.is_dir(logs_dir) {
        disk.list_dir(logs_dir)
            .map_err(|e| LogError::io("list", logs_dir, e))?
    } else {
        Vec::new()
    };
    let Some(example) = partitions.first() else {
        return Ok(());
    };
    Err(OrphanedData::MetadataMissing {
        logs: logs_dir.display().to_string(),
        count: partitions.len(),
        example: example.clone(),
        metadata: metadata_dir.display().to_string(),
    })
}

/// A single node has no peer to repair from: it refuses to start, naming the bytes
/// (R-RECOVER-6).
fn refuse_damage(path: &Path, at: u64, next: u64, why: &str) -> LogError {
    corrupt(
        path,
        at,
        format!(
            "{why}, and a valid record follows at byte {next}: the bytes in between are \
             damaged, not torn by a crash, so cutting the log there would delete committed \
             metadata; refusing to start. Restore this directory from a copy; in a cluster \
             the node repairs its log from its peers instead (R-RECOVER-9)"
        ),
    )
}

/// The position of the first whole record (frame with a valid checksum and a known
/// kind) at or after `from`.
fn next_valid_record(
    file: &dyn DiskFile,
    path: &Path,
    from: u64,
    len: u64,
) -> Result<Option<u64>, LogError> {
    if from >= len {
        return Ok(None);
    }
    let mut tail = vec![0u8; (len - from) as usize];
    let got = file
        .read_full_at(&mut tail, from)
        .map_err(|e| LogError::io("read", path, e))?;
    tail.truncate(got);
    for i in 0..tail.len() {
        if let frame::Decoded::Frame { start, end } = frame::decode(&tail, i) {
            let kind = tail[start..end].first().copied();
            if matches!(kind, Some(KIND_ENTRY) | Some(KIND_HARD_STATE)) {
                return Ok(Some(from + i as u64));
            }
        }
    }
    Ok(None)
}

/// Records whose checksums hold but whose indexes skip one (a record lost from the
/// middle, or written by a bug) would have raft-rs index past its storage and panic
/// once it reads there (R-RECOVER-6). Returns the entries before the gap, the entry
/// index after it, and what to say.
fn find_gap(kept: &[Entry]) -> Option<(usize, u64, String)> {
    let at = kept
        .windows(2)
        .position(|pair| pair[0].index.checked_add(1) != Some(pair[1].index))?;
    let (before, after) = (kept[at].index, kept[at + 1].index);
    Some((
        at + 1,
        after,
        format!(
            "entry {after} follows entry {before}: the Raft log has a gap, so records are missing"
        ),
    ))
}

fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        offset: 0,
        reason: reason.into(),
    }
}

fn term_vote(hs: &HardState) -> TermVote {
    TermVote {
        term: hs.term,
        vote: hs.vote,
    }
}

/// The durable snapshot, or an empty one holding the initial voters.
fn read_snapshot(disk: &dyn Disk, dir: &Path, voters: &[u64]) -> Result<Snapshot, LogError> {
    let snapshot_path = dir.join(SNAPSHOT_FILE);
    if !disk.exists(&snapshot_path) {
        let mut s = Snapshot::default();
        s.mut_metadata()
            .set_conf_state(ConfState::from((voters.to_vec(), vec![])));
        return Ok(s);
    }
    let bytes = read_file(disk, &snapshot_path)?;
    let (payload, valid) = match frame::decode(&bytes, 0) {
        frame::Decoded::Frame { start, end } => (&bytes[start..end], end == bytes.len()),
        _ => (&bytes[..0], false),
    };
    if !valid {
        return Err(corrupt(&snapshot_path, 0, "snapshot frame does not check"));
    }
    Snapshot::parse_from_bytes(payload)
        .map_err(|e| corrupt(&snapshot_path, 0, format!("snapshot: {e}")))
}

/// What a read of the WAL found.
#[derive(Default)]
struct WalScan {
    entries: BTreeMap<u64, Entry>,
    /// File position of each kept entry's frame.
    positions: BTreeMap<u64, u64>,
    /// The newest HardState before any damage, its term and vote raised to the latest
    /// found after it.
    hard_state: HardState,
    /// Where the kept records end.
    valid_len: u64,
    /// Where the damage starts, and what it is.
    damage: Option<(u64, String)>,
}

/// Where the entries of a Raft log are, as [`RaftWal::entry_records`] finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecords {
    /// The WAL file.
    pub path: PathBuf,
    /// The file position of the record of each entry a recovery would keep.
    pub positions: BTreeMap<u64, u64>,
    /// The durable commit index (of the newest HardState before any damage).
    pub commit: u64,
}

/// Reads every record up to the first bad one. A bad record with no valid one after it
/// is a torn tail. One with a valid record after it is damage: refused unless
/// `may_repair`, in which case the records after it are read only for the latest term
/// and vote they hold (R-RECOVER-9).
fn scan_wal(
    file: &dyn DiskFile,
    path: &Path,
    len: u64,
    may_repair: bool,
    initial: HardState,
) -> Result<WalScan, LogError> {
    let mut scan = WalScan {
        hard_state: initial,
        ..WalScan::default()
    };
    let mut reader = FrameReader::new(file, path, 0, len, SCAN_BLOCK);
    scan.valid_len = loop {
        let position = reader.position();
        let frame = match reader.next_frame()? {
            Ok(None) => break len,
            Ok(Some(frame)) => frame,
            Err(stop) => {
                let (at, why) = match stop {
                    Stop::Torn { position } => (position, "torn record".to_string()),
                    Stop::Corrupt { position, reason } => (position, reason),
                };
                if let Some(next) = damage_before_valid_record(file, path, at, len)? {
                    if !may_repair {
                        return Err(refuse_damage(path, at, next, &why));
                    }
                    scan.damage =
                        Some((at, format!("{why}; a valid record follows at byte {next}")));
                    raise_to_later_votes(file, path, next, len, &mut scan.hard_state)?;
                }
                break at;
            }
        };
        let (kind, body) = frame.payload.split_first().unwrap_or((&0, &[]));
        match *kind {
            KIND_ENTRY => {
                let entry = Entry::parse_from_bytes(body)
                    .map_err(|e| corrupt(path, position, format!("entry: {e}")))?;
                // A later record for an index replaces the suffix from it.
                let index = entry.index;
                scan.entries.split_off(&index);
                scan.positions.split_off(&index);
                scan.positions.insert(index, position);
                scan.entries.insert(index, entry);
            }
            KIND_HARD_STATE => {
                scan.hard_state = HardState::parse_from_bytes(body)
                    .map_err(|e| corrupt(path, position, format!("hard state: {e}")))?;
            }
            other => {
                return Err(corrupt(
                    path,
                    position,
                    format!("unknown record kind {other}"),
                ))
            }
        }
    };
    Ok(scan)
}

/// Raises `hard_state`'s term and vote to the latest of the HardState records that
/// still check from `from` on, past any further damage.
fn raise_to_later_votes(
    file: &dyn DiskFile,
    path: &Path,
    from: u64,
    len: u64,
    hard_state: &mut HardState,
) -> Result<(), LogError> {
    let mut next = Some(from);
    while let Some(start) = next {
        let mut reader = FrameReader::new(file, path, start, len, SCAN_BLOCK);
        let stopped_at = loop {
            match reader.next_frame()? {
                Ok(None) => break None,
                Err(Stop::Torn { position } | Stop::Corrupt { position, .. }) => {
                    break Some(position)
                }
                Ok(Some(frame)) => {
                    let Some((&KIND_HARD_STATE, body)) = frame.payload.split_first() else {
                        continue;
                    };
                    let Ok(later) = HardState::parse_from_bytes(body) else {
                        continue;
                    };
                    if term_vote(&later).is_later_than(&term_vote(hard_state)) {
                        hard_state.term = later.term;
                        hard_state.vote = later.vote;
                    }
                }
            }
        };
        next = match stopped_at {
            Some(at) => next_valid_record(file, path, at + 1, len)?,
            None => None,
        };
    }
    Ok(())
}

/// The Raft storage that `RawNode` reads: entries from an in-memory copy of the
/// durable log (raft-rs's `MemStorage`), snapshots from the last durable snapshot.
#[derive(Clone)]
pub struct RaftStore {
    mem: MemStorage,
    snapshot: Arc<RwLock<Snapshot>>,
}

impl RaftStore {
    pub fn mem(&self) -> &MemStorage {
        &self.mem
    }

    pub fn last_snapshot(&self) -> Snapshot {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_snapshot(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}

impl Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let snapshot = self.last_snapshot();
        if snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(snapshot)
    }
}

/// The durable side: appends and syncs records, and rebuilds a [`RaftStore`] on open.
pub struct RaftWal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    path: PathBuf,
    file: Arc<dyn DiskFile>,
    size: u64,
    /// File position of each entry's frame, to cut the log when a new leader
    /// overwrites a suffix.
    positions: BTreeMap<u64, u64>,
    hard_state: HardState,
    /// The term and vote again, outside the WAL (R-RECOVER-9).
    votes: VoteFile,
    repairing: bool,
    /// Something was written or cut since the last successful fsync.
    unsynced: bool,
    /// Test-only fault: `sync` reports success without syncing (the oracle's teeth).
    skip_fsync: bool,
}

impl RaftWal {
    /// Opens (recovering) or creates the Raft storage in `dir`. `voters` is the
    /// initial configuration, used when nothing is stored yet. Damage to the WAL stops
    /// a single node (R-RECOVER-6); in a cluster the damaged suffix is cut and the
    /// node repairs it from its peers (R-RECOVER-9, [`is_repairing`](Self::is_repairing)).
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        voters: &[u64],
    ) -> Result<(Self, RaftStore), LogError> {
        Self::open_with(disk, dir, voters, false)
    }

    /// Test-only fault for the conformance oracle (issue 12's recovery): damage is
    /// cut as if it were a torn tail, the commit index taken down to what is left,
    /// and the node starts, single voter or not, with no repair.
    #[cfg(feature = "inject-bugs")]
    pub fn open_cutting_damage(
        disk: Arc<dyn Disk>,
        dir: &Path,
        voters: &[u64],
    ) -> Result<(Self, RaftStore), LogError> {
        Self::open_with(disk, dir, voters, true)
    }

    fn open_with(
        disk: Arc<dyn Disk>,
        dir: &Path,
        voters: &[u64],
        cut_damage: bool,
    ) -> Result<(Self, RaftStore), LogError> {
        // A new metadata directory's own entry is durable before the log in it is.
        crate::disk::create_dir_durably(disk.as_ref(), dir)
            .map_err(|e| LogError::io("create directory", dir, e))?;
        let snapshot = read_snapshot(disk.as_ref(), dir, voters)?;
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let mem = if snapshot.get_metadata().index == 0 {
            MemStorage::new_with_conf_state(snapshot.get_metadata().get_conf_state().clone())
        } else {
            let mem = MemStorage::new();
            mem.wl()
                .apply_snapshot(snapshot.clone())
                .map_err(|e| corrupt(&snapshot_path, 0, format!("snapshot rejected: {e}")))?;
            mem
        };
        let snapshot_index = snapshot.get_metadata().index;

        let path = dir.join(WAL_FILE);
        let file = disk
            .open_file(&path, OpenMode::Create)
            .map_err(|e| LogError::io("open", &path, e))?;
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
        let votes = VoteFile::open(disk.as_ref(), dir)?;
        let len = file.len().map_err(|e| LogError::io("stat", &path, e))?;
        let may_repair = voters.len() > 1;
        let initial = mem.rl().hard_state().clone();
        let mut scan = scan_wal(file.as_ref(), &path, len, may_repair || cut_damage, initial)?;
        if cut_damage {
            scan.damage = None;
        }
        let mut hard_state = std::mem::take(&mut scan.hard_state);
        let mut kept: Vec<Entry> = std::mem::take(&mut scan.entries)
            .into_values()
            .filter(|e| e.index > snapshot_index)
            .collect();
        if let Some(first) = kept.first() {
            if first.index != snapshot_index + 1 {
                return Err(corrupt(
                    &path,
                    0,
                    format!(
                        "log starts at index {} but the snapshot ends at {snapshot_index}",
                        first.index
                    ),
                ));
            }
        }
        if let Some((keep, after, why)) = find_gap(&kept) {
            let position = scan.positions.get(&after).copied().unwrap_or(0);
            if !may_repair {
                return Err(corrupt(
                    &path,
                    position,
                    format!(
                        "{why}; refusing to start. Restore this directory from a copy; in a \
                         cluster the node repairs its log from its peers instead (R-RECOVER-9)"
                    ),
                ));
            }
            kept.truncate(keep);
            scan.positions.split_off(&after);
            scan.valid_len = scan.valid_len.min(position);
            scan.damage.get_or_insert((position, why));
        }
        let marker = dir.join(REPAIR_FILE);
        if let Some((position, why)) = &scan.damage {
            // Durable before the cut: a crash after it must still know that this node
            // lost entries it may have acknowledged, and so must not vote yet.
            let note = format!("byte {position} of {}: {why}\n", path.display());
            write_atomically(disk.as_ref(), &marker, note.as_bytes())
                .map_err(|e| LogError::io("write", &marker, e))?;
            tracing::error!(wal = %path.display(), position, %why, cut_bytes = len - scan.valid_len,
                "the Raft log is damaged, not torn: cutting it at the damage and repairing it \
                 from the peers; this node does not vote until its own registration is applied \
                 (R-RECOVER-9)");
        } else if scan.valid_len < len {
            tracing::warn!(wal = %path.display(), position = scan.valid_len,
                cut_bytes = len - scan.valid_len, "cutting the torn tail of the Raft log");
        }
        if scan.valid_len < len {
            file.set_len(scan.valid_len)
                .and_then(|_| file.sync_data())
                .map_err(|e| LogError::io("truncate", &path, e))?;
        }
        let repairing = disk.exists(&marker);
        if repairing && !may_repair {
            return Err(corrupt(
                &marker,
                0,
                "this node's metadata log was cut for a repair from its peers, but it is now a \
                 single voter: there is no peer to repair from; restore the metadata directory \
                 from a copy",
            ));
        }
        let stored = votes.stored();
        if stored.is_later_than(&term_vote(&hard_state)) {
            hard_state.term = stored.term;
            hard_state.vote = stored.vote;
        }
        let last_index = kept.last().map_or(snapshot_index, |e| e.index);
        if hard_state.commit > last_index {
            if !repairing && !cut_damage {
                // raft-rs would panic on this; say what is wrong instead (R-PERSIST-2).
                return Err(corrupt(
                    &path,
                    scan.valid_len,
                    format!(
                        "hard state commits index {} but the log ends at {last_index}",
                        hard_state.commit
                    ),
                ));
            }
            // The leader tells the commit index again once the log is repaired.
            hard_state.commit = last_index;
        }
        hard_state.commit = hard_state.commit.max(snapshot_index);
        {
            let mut core = mem.wl();
            core.append(&kept)
                .map_err(|e| corrupt(&path, 0, format!("entries rejected: {e}")))?;
            core.set_hardstate(hard_state.clone());
        }
        let store = RaftStore {
            mem,
            snapshot: Arc::new(RwLock::new(snapshot)),
        };
        let mut wal = RaftWal {
            disk,
            dir: dir.to_path_buf(),
            path,
            file,
            size: scan.valid_len,
            positions: scan.positions,
            hard_state: hard_state.clone(),
            votes,
            repairing,
            unsynced: false,
            skip_fsync: false,
        };
        if scan.damage.is_some() || stored != term_vote(&hard_state) {
            // The cut may have taken the newest HardState record; and a vote file older
            // than the WAL (written by a version without one) is brought up to date.
            wal.write_hard_state(&hard_state)?;
            wal.sync()?;
        }
        Ok((wal, store))
    }

    /// The WAL file in `dir` and the file position of the record that holds each
    /// entry a recovery would keep, read without changing anything: for tools and
    /// tests that must name the bytes of an entry (a bad sector in it, R-RECOVER-6).
    pub fn entry_records(disk: &dyn Disk, dir: &Path) -> Result<EntryRecords, LogError> {
        let path = dir.join(WAL_FILE);
        let file = disk
            .open_file(&path, OpenMode::Existing)
            .map_err(|e| LogError::io("open", &path, e))?;
        let len = file.len().map_err(|e| LogError::io("stat", &path, e))?;
        let scan = scan_wal(file.as_ref(), &path, len, true, HardState::default())?;
        Ok(EntryRecords {
            path,
            positions: scan.positions,
            commit: scan.hard_state.commit,
        })
    }

    /// The WAL was damaged and cut (R-RECOVER-9): until the node's own registration of
    /// this start is applied, its log may lack entries it acknowledged, so it must
    /// neither vote nor campaign.
    pub fn is_repairing(&self) -> bool {
        self.repairing
    }

    /// The repair is over: the log holds the leader's log up to an entry proposed
    /// after this start, so every entry acknowledged before the damage.
    pub fn finish_repair(&mut self) -> Result<(), LogError> {
        if !self.repairing {
            return Ok(());
        }
        let marker = self.dir.join(REPAIR_FILE);
        self.disk
            .remove_file(&marker)
            .map_err(|e| LogError::io("remove", &marker, e))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io("fsync directory", &self.dir, e))?;
        self.repairing = false;
        Ok(())
    }

    fn write_record(&mut self, kind: u8, body: &[u8]) -> Result<u64, LogError> {
        let mut payload = Vec::with_capacity(1 + body.len());
        payload.push(kind);
        payload.extend_from_slice(body);
        let mut framed = vec![0u8; FRAME_HEADER_LEN];
        frame::write_header(&mut framed, &payload);
        framed.extend_from_slice(&payload);
        let position = self.size;
        self.unsynced = true;
        self.file
            .write_at(&framed, position)
            .map_err(|e| LogError::io("append to", &self.path, e))?;
        self.size += framed.len() as u64;
        Ok(position)
    }

    /// Appends entries, first cutting off any stored suffix they replace.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if let Some(&cut) = self.positions.get(&first.index) {
            self.file
                .set_len(cut)
                .map_err(|e| LogError::io("truncate", &self.path, e))?;
            self.size = cut;
            self.unsynced = true;
            // Durable before anything is written over it: a crash can then leave only
            // a torn frame at the very end, never a torn frame followed by the stale
            // frames it replaced, which recovery would rightly call damage
            // (R-RECOVER-6).
            self.sync()?;
            self.positions.split_off(&first.index);
            // The cut may have taken the latest HardState record with it, and its
            // commit index is what a restart replays up to (R-RECOVER-2): durable
            // again before the Ready goes on. The vote file keeps term and vote
            // meanwhile; a crash between the two syncs can leave an older commit
            // index, which the leader's next append restores.
            let hs = self.hard_state.clone();
            self.write_hard_state(&hs)?;
            self.sync()?;
        }
        for entry in entries {
            let body = entry
                .write_to_bytes()
                .map_err(|e| corrupt(&self.path, self.size, format!("encode entry: {e}")))?;
            let position = self.write_record(KIND_ENTRY, &body)?;
            self.positions.insert(entry.index, position);
        }
        Ok(())
    }

    pub fn write_hard_state(&mut self, hs: &HardState) -> Result<(), LogError> {
        let body = hs
            .write_to_bytes()
            .map_err(|e| corrupt(&self.path, self.size, format!("encode hard state: {e}")))?;
        self.write_record(KIND_HARD_STATE, &body)?;
        self.votes.record(term_vote(hs))?;
        self.hard_state = hs.clone();
        Ok(())
    }

    /// fdatasync: everything written so far is durable when this returns Ok.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if !self.skip_fsync {
            self.file
                .sync_data()
                .map_err(|e| LogError::io("fsync", &self.path, e))?;
            self.votes.sync()?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Everything written has been fsynced.
    pub fn is_synced(&self) -> bool {
        !self.unsynced
    }

    /// Test-only fault for the conformance oracle: `sync` succeeds without syncing.
    #[cfg(feature = "inject-bugs")]
    pub fn inject_skip_fsync(&mut self) {
        self.skip_fsync = true;
    }

    /// Stores a snapshot durably, then rewrites the WAL without the entries it
    /// covers (both atomically, so a crash in between leaves a consistent pair).
    pub fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
        store: &RaftStore,
    ) -> Result<(), LogError> {
        let index = snapshot.get_metadata().index;
        let body = snapshot
            .write_to_bytes()
            .map_err(|e| corrupt(&self.dir, 0, format!("encode snapshot: {e}")))?;
        let mut framed = vec![0u8; FRAME_HEADER_LEN];
        frame::write_header(&mut framed, &body);
        framed.extend_from_slice(&body);
        let snapshot_path = self.dir.join(SNAPSHOT_FILE);
        write_atomically(self.disk.as_ref(), &snapshot_path, &framed)
            .map_err(|e| LogError::io("write", &snapshot_path, e))?;
        store.set_snapshot(snapshot.clone());

        // Rewrite the WAL with the entries after the snapshot and the HardState.
        let (entries, hs) = {
            let last = store
                .mem
                .last_index()
                .map_err(|e| corrupt(&self.path, 0, format!("last index: {e}")))?;
            let entries = if last > index {
                store
                    .mem
                    .entries(index + 1, last + 1, None, GetEntriesContext::empty(false))
                    .map_err(|e| {
                        corrupt(
                            &self.path,
                            0,
                            format!("read entries after the snapshot: {e}"),
                        )
                    })?
            } else {
                Vec::new()
            };
            (entries, self.hard_state.clone())
        };
        let tmp = self.dir.join("wal.rewrite");
        let file = self
            .disk
            .open_file(&tmp, OpenMode::Create)
            .map_err(|e| LogError::io("create", &tmp, e))?;
        file.set_len(0)
            .map_err(|e| LogError::io("truncate", &tmp, e))?;
        let old = std::mem::replace(&mut self.file, file);
        let old_path = std::mem::replace(&mut self.path, tmp.clone());
        self.size = 0;
        self.positions.clear();
        let rewrite = self
            .append_entries(&entries)
            .and_then(|_| self.write_hard_state(&hs))
            .and_then(|_| self.sync());
        if let Err(e) = rewrite {
            self.file = old;
            self.path = old_path;
            return Err(e);
        }
        self.disk
            .rename(&tmp, &old_path)
            .map_err(|e| LogError::io("rename", &tmp, e))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io("fsync directory", &self.dir, e))?;
        self.path = old_path;
        store
            .mem
            .wl()
            .compact(index)
            .map_err(|e| corrupt(&self.path, 0, format!("compact: {e}")))?;
        Ok(())
    }

    pub fn size_bytes(&self) -> u64 {
        self.size
    }
}

fn read_file(disk: &dyn Disk, path: &Path) -> Result<Vec<u8>, LogError> {
    crate::disk::read_all(disk, path).map_err(|e| LogError::io("read", path, e))
}
