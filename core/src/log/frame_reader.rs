//! Reading frames off a file in large blocks: the one reader that recovery scans,
//! reads, the damage resync and the Raft WAL share.

use super::error::{LogError, Result};
use super::frame::{self, Decoded};
use crate::disk::DiskFile;
use std::path::Path;

/// Scans read blocks of this many bytes, so scanning a segment costs one syscall per
/// block rather than one per frame.
pub const SCAN_BLOCK: usize = 1 << 20;

/// Reads consecutive frames of a file from a start position up to an end position.
pub struct FrameReader<'a> {
    file: &'a dyn DiskFile,
    path: &'a Path,
    /// Position of the next frame.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_start: u64,
    block: usize,
}

/// A frame found by [`FrameReader::next_frame`].
pub struct FrameAt<'b> {
    pub position: u64,
    pub payload: &'b [u8],
}

/// Why a reader stopped before `end`.
#[derive(Debug)]
pub enum Stop {
    /// The bytes end inside a frame.
    Torn {
        position: u64,
    },
    Corrupt {
        position: u64,
        reason: String,
    },
}

impl<'a> FrameReader<'a> {
    /// A reader of `[start, end)` that reads `block` bytes at a time (more only for
    /// a frame larger than that).
    pub fn new(file: &'a dyn DiskFile, path: &'a Path, start: u64, end: u64, block: usize) -> Self {
        FrameReader {
            file,
            path,
            pos: start,
            end,
            buf: Vec::new(),
            buf_start: start,
            block,
        }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next whole frame whose checksum matches, `Ok(Err(stop))` where the bytes
    /// stop being valid frames, `Ok(Ok(None))` at `end`.
    #[allow(clippy::type_complexity)]
    pub fn next_frame(&mut self) -> Result<std::result::Result<Option<FrameAt<'_>>, Stop>> {
        if self.pos >= self.end {
            return Ok(Ok(None));
        }
        loop {
            let offset_in_buf = (self.pos - self.buf_start) as usize;
            match frame::decode(&self.buf, offset_in_buf) {
                Decoded::Frame { start, end } => {
                    let position = self.pos;
                    self.pos = self.buf_start + end as u64;
                    if self.pos > self.end {
                        return Ok(Err(Stop::Torn { position }));
                    }
                    return Ok(Ok(Some(FrameAt {
                        position,
                        payload: &self.buf[start..end],
                    })));
                }
                Decoded::Corrupt(reason) => {
                    return Ok(Err(Stop::Corrupt {
                        position: self.pos,
                        reason,
                    }))
                }
                Decoded::Incomplete { needed } => {
                    let available = self.end - self.pos;
                    if (needed as u64) > available {
                        return Ok(Err(Stop::Torn { position: self.pos }));
                    }
                    let want = needed.max(self.block).min(available as usize);
                    self.buf.resize(want, 0);
                    let got = self
                        .file
                        .read_full_at(&mut self.buf, self.pos)
                        .map_err(|e| LogError::io("read", self.path, e))?;
                    self.buf.truncate(got);
                    self.buf_start = self.pos;
                    if got < needed {
                        return Ok(Err(Stop::Torn { position: self.pos }));
                    }
                }
            }
        }
    }
}
