//! `frame_reader`: the reader that recovery, reads, the damage resync and the Raft
//! WAL share, over arbitrary file bytes; `raft_wal`: the metadata Raft log's
//! recovery over arbitrary records.

use crate::alloc::{self, assert_within};
use chronik_core::consensus::{RaftStore, RaftWal};
use chronik_core::disk::{Disk, DiskFile, MemDisk, OpenMode};
use chronik_core::log::frame::{self, Decoded, FRAME_HEADER_LEN};
use chronik_core::log::frame_reader::{FrameReader, Stop};
use raft::eraftpb::{Entry, HardState};
use raft::{GetEntriesContext, Storage};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A read-only file over the fuzzer's bytes.
#[derive(Debug)]
struct SliceFile(Vec<u8>);

impl DiskFile for SliceFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let start = usize::try_from(pos).map_or(self.0.len(), |p| p.min(self.0.len()));
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::other("read-only"))
    }

    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::Error::other("read-only"))
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    Torn(u64),
    Corrupt(u64),
}

/// Input: two bytes choosing the read block (1 to 65536 bytes), then the file.
/// Checks: no panic; every frame yielded has a header whose length and CRC match
/// its payload, and the frames tile the file from 0; the block-by-block reader
/// agrees frame for frame, and in where and why it stops, with decoding the whole
/// file at once; it reserves no more than the file (twice: its buffer and the copies kept
/// here) and one block.
pub fn frame_reader(data: &[u8]) {
    let (block, file) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])) + 1, rest),
        _ => return,
    };
    let expected = whole_file(file);
    let file = SliceFile(file.to_vec());
    let (found, usage) = alloc::measure(|| by_blocks(&file, block));
    let cap = 2 * file.0.len() + block + (64 << 10);
    assert_within(
        "frame reader reserved",
        usage.reserved_peak,
        cap,
        file.0.len(),
    );
    assert_eq!(
        found, expected,
        "block reader disagrees with whole-file decode (block {block})"
    );
}

type Frames = (Vec<(u64, Vec<u8>)>, End);

fn by_blocks(file: &SliceFile, block: usize) -> Frames {
    let path = Path::new("fuzz.log");
    let len = file.0.len() as u64;
    let mut reader = FrameReader::new(file, path, 0, len, block);
    let mut frames = Vec::new();
    loop {
        match reader.next_frame() {
            Ok(Ok(Some(f))) => {
                check_frame(&file.0, f.position, f.payload);
                frames.push((f.position, f.payload.to_vec()));
            }
            Ok(Ok(None)) => return (frames, End::Clean),
            Ok(Err(Stop::Torn { position })) => return (frames, End::Torn(position)),
            Ok(Err(Stop::Corrupt { position, .. })) => return (frames, End::Corrupt(position)),
            Err(e) => panic!("a read of an in-memory file failed: {e}"),
        }
    }
}

/// The frame's own header, at its position in the file, vouches for its payload.
fn check_frame(file: &[u8], position: u64, payload: &[u8]) {
    let at = position as usize;
    let mut header = [0u8; FRAME_HEADER_LEN];
    header.copy_from_slice(&file[at..at + FRAME_HEADER_LEN]);
    let (len, crc) = frame::parse_header(&header);
    assert_eq!(len as usize, payload.len(), "payload length at {position}");
    assert_eq!(crc, frame::checksum(payload), "CRC at {position}");
    assert_eq!(
        &file[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + payload.len()],
        payload
    );
}

/// The reference: `frame::decode` over the whole file, frame after frame.
fn whole_file(file: &[u8]) -> Frames {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < file.len() {
        match frame::decode(file, pos) {
            Decoded::Frame { start, end } => {
                frames.push((pos as u64, file[start..end].to_vec()));
                pos = end;
            }
            Decoded::Incomplete { .. } => return (frames, End::Torn(pos as u64)),
            Decoded::Corrupt(_) => return (frames, End::Corrupt(pos as u64)),
        }
    }
    (frames, End::Clean)
}

/// rust-protobuf 2 reserves a length-delimited field's stated length up front, up
/// to 10 MB (its READ_RAW_BYTES_MAX_ALLOC).
const PROTOBUF_SLACK: usize = 10_000_000;

/// Input: a switch byte (bit 0: the first record is `snapshot.bin` instead; bit 1:
/// three voters, so damage is cut for a repair instead of refused), then
/// records `[kind][length u16][body]` that the harness frames with valid CRCs (so the
/// fuzzer reaches the protobuf and the recovery logic), and any bytes left over as an
/// unframed tail. Checks: `RaftWal::open` never panics; reservations bounded by the
/// input and protobuf's cap; a log it opens is one raft-rs can use: every index from
/// first to last has an entry of that index and a term, the hard state commits
/// nothing past the last entry; and opening the recovered directory again gives the
/// same log and hard state (recovery is idempotent).
pub fn raft_wal(data: &[u8]) {
    let Some((&switches, rest)) = data.split_first() else {
        return;
    };
    let disk = Arc::new(MemDisk::new());
    let dir = Path::new("raft");
    write_wal(&disk, dir, switches & 1 != 0, rest);
    // Bit 1: a node of a three-voter cluster, which cuts damage and repairs from its
    // peers (R-RECOVER-9) where a single node refuses (R-RECOVER-6).
    let voters: &[u64] = if switches & 2 != 0 { &[1, 2, 3] } else { &[1] };
    let (opened, usage) = alloc::measure(|| RaftWal::open(disk.clone(), dir, voters));
    let cap = (1 << 20) + PROTOBUF_SLACK + 64 * data.len();
    assert_within(
        "Raft WAL recovery reserved",
        usage.reserved_peak,
        cap,
        data.len(),
    );
    let Ok((wal, store)) = opened else {
        return;
    };
    let first = usable_log(&store);
    drop(wal);
    let (_, again) = RaftWal::open(disk, dir, voters).expect("a recovered WAL opens again");
    assert_eq!(usable_log(&again), first, "recovery is not idempotent");
}

fn write_wal(disk: &Arc<MemDisk>, dir: &Path, snapshot_first: bool, mut rest: &[u8]) {
    let mut wal = Vec::new();
    let mut snapshot = None;
    while let [kind, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(body) = tail.get(..len) else {
            break;
        };
        let payload = [&[*kind][..], body].concat();
        let framed = [&frame_header(&payload)[..], &payload].concat();
        if snapshot_first && snapshot.is_none() && wal.is_empty() {
            snapshot = Some([&frame_header(body)[..], body].concat());
        } else {
            wal.extend(framed);
        }
        rest = &tail[len..];
    }
    wal.extend_from_slice(rest);
    let write = |name: &str, bytes: &[u8]| {
        let _ = disk.create_dir_all(dir);
        let file = disk
            .open_file(&dir.join(name), OpenMode::Create)
            .expect("mem file");
        file.write_at(bytes, 0).expect("mem write");
        file.sync_data().expect("mem sync");
    };
    write("wal.log", &wal);
    if let Some(snapshot) = snapshot {
        write("snapshot.bin", &snapshot);
    }
}

fn frame_header(payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [0u8; FRAME_HEADER_LEN];
    frame::write_header(&mut header, payload);
    header
}

/// The log as raft-rs will read it, checked to be contiguous.
fn usable_log(store: &RaftStore) -> (Vec<Entry>, HardState) {
    let state = store.initial_state().expect("initial state");
    let first = store.first_index().expect("first index");
    let last = store.last_index().expect("last index");
    assert!(
        first <= last + 1,
        "first index {first} past last {last} + 1"
    );
    assert!(state.hard_state.commit <= last, "commit past the log");
    if first > last {
        // raft-rs's MemStorage indexes its first entry even for an empty range.
        return (Vec::new(), state.hard_state);
    }
    let entries = store
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .expect("entries of the whole log");
    for (index, entry) in (first..).zip(&entries) {
        assert_eq!(entry.index, index, "log not contiguous");
        assert_eq!(store.term(index).expect("term"), entry.term);
    }
    (entries, state.hard_state)
}
