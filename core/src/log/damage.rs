//! Damaged ranges of a segment and how the log finds its way past them (R-LOG-13).
//!
//! A checksum cannot tell a torn write from corruption; position can. Only bytes
//! after the last durable point can be torn, and a torn write is always the end of
//! the file. So a bad frame with a valid frame after it, or a bad frame below the
//! durable point, is corruption: its range is fenced and reported, and the valid
//! frames around it stay readable.

use super::batch::{BatchHeader, HEADER_LEN};
use super::error::{LogError, Result};
use super::frame::{FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD};
use super::frame_reader::{FrameReader, Stop, SCAN_BLOCK};
use crate::disk::DiskFile;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes `[position, end_position)` of a segment hold no valid frame; the offsets
/// `[first_offset, end_offset)` lived there. An empty offset range means the bytes
/// were garbage between frames and no record is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub position: u64,
    pub end_position: u64,
    pub first_offset: u64,
    pub end_offset: u64,
    pub reason: String,
}

impl Damage {
    pub fn to_error(&self, path: &Path) -> LogError {
        LogError::Damaged {
            path: path.to_path_buf(),
            position: self.position,
            end_position: self.end_position,
            first_offset: self.first_offset,
            end_offset: self.end_offset,
            reason: self.reason.clone(),
        }
    }

    pub fn holds_offset(&self, offset: u64) -> bool {
        (self.first_offset..self.end_offset).contains(&offset)
    }
}

static DAMAGED_RANGES_FOUND: AtomicU64 = AtomicU64::new(0);

/// How many damaged ranges this process has found in partition logs (each counted
/// once per open log), for the broker's metrics.
pub fn damaged_ranges_found() -> u64 {
    DAMAGED_RANGES_FOUND.load(Ordering::Relaxed)
}

/// Counts a newly found damaged range and says so at ERROR level: an operator must
/// learn of it, and a replica or the repair command can fix it.
pub fn report(path: &Path, damage: &Damage) {
    DAMAGED_RANGES_FOUND.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        segment = %path.display(),
        position = damage.position,
        end_position = damage.end_position,
        first_offset = damage.first_offset,
        end_offset = damage.end_offset,
        reason = %damage.reason,
        "corrupt log data: these offsets answer KAFKA_STORAGE_ERROR; the records around them stay readable"
    );
}

/// The smallest frame that can hold a batch.
const MIN_FRAME: usize = FRAME_HEADER_LEN + HEADER_LEN;

/// The first position in `[from, end)` where a frame with a matching checksum holds
/// a batch whose base offset lies in `[min_base, max_base)`, with that base offset.
///
/// Every byte position is tried: the length field of the damaged frame may itself
/// be the damaged byte, so skipping by it could jump over good frames. A candidate
/// whose successor is a valid but discontiguous frame or bad bytes is passed over
/// (a frame-shaped run of bytes inside a record value is not a boundary) unless no
/// better one follows: then the first valid frame is taken, so good frames are never
/// written off for want of a perfect chain. One pass either way.
pub fn find_next_frame(
    file: &dyn DiskFile,
    path: &Path,
    from: u64,
    end: u64,
    min_base: u64,
    max_base: u64,
) -> Result<Option<(u64, u64)>> {
    let bases = (min_base, max_base);
    let mut fallback = None;
    let mut pos = from;
    let mut buf = Vec::new();
    while pos + MIN_FRAME as u64 <= end {
        let want = (SCAN_BLOCK as u64).min(end - pos) as usize;
        buf.resize(want, 0);
        let got = file
            .read_full_at(&mut buf, pos)
            .map_err(|e| LogError::io("read", path, e))?;
        if got < MIN_FRAME {
            break;
        }
        let candidates = got - MIN_FRAME + 1;
        for i in 0..candidates {
            let at = pos + i as u64;
            if !plausible(&buf[i..i + MIN_FRAME], end - at, bases) {
                continue;
            }
            match confirm(file, path, at, end, bases)? {
                Some((base, true)) => return Ok(Some((at, base))),
                Some((base, false)) => {
                    fallback.get_or_insert((at, base));
                }
                None => {}
            }
        }
        pos += candidates as u64;
    }
    Ok(fallback)
}

/// Cheap checks on a frame header and batch header before any checksum is computed.
fn plausible(head: &[u8], remaining: u64, (min_base, max_base): (u64, u64)) -> bool {
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(HEADER_LEN..=MAX_FRAME_PAYLOAD).contains(&len)
        || (FRAME_HEADER_LEN + len) as u64 > remaining
    {
        return false;
    }
    let batch = &head[FRAME_HEADER_LEN..];
    let batch_length = i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]);
    let mut base = [0; 8];
    base.copy_from_slice(&batch[..8]);
    let base = i64::from_be_bytes(base);
    batch[16] == 2
        && batch_length as i64 + 12 == len as i64
        && base >= 0
        && (min_base..max_base).contains(&(base as u64))
}

/// The base offset of the frame at `at` if it is whole and checks, and whether it is
/// followed by the end, a torn tail, or a frame continuing its offsets.
fn confirm(
    file: &dyn DiskFile,
    path: &Path,
    at: u64,
    end: u64,
    (min_base, max_base): (u64, u64),
) -> Result<Option<(u64, bool)>> {
    let mut reader = FrameReader::new(file, path, at, end, 64 * 1024);
    let (header, next) = match reader.next_frame()? {
        Ok(Some(f)) => match BatchHeader::parse(f.payload) {
            Ok(h) => (h, f.position + (FRAME_HEADER_LEN + f.payload.len()) as u64),
            Err(_) => return Ok(None),
        },
        _ => return Ok(None),
    };
    let base = header.base_offset as u64;
    if !(min_base..max_base).contains(&base) {
        return Ok(None);
    }
    if next >= end {
        return Ok(Some((base, true)));
    }
    let continues = match reader.next_frame()? {
        Ok(Some(f)) => BatchHeader::parse(f.payload)
            .is_ok_and(|h| h.base_offset as u64 == base + header.offset_count()),
        Ok(None) | Err(Stop::Torn { .. }) => true,
        Err(Stop::Corrupt { .. }) => false,
    };
    Ok(Some((base, continues)))
}
