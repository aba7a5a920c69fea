//! The per-partition checkpoint: log start offset and high watermark, written
//! atomically (temp file, fsync, rename, directory fsync) so a crash leaves either
//! the old or the new one (R-LOG-6).

use super::error::{LogError, Result};
use crate::disk::{write_atomically, Disk, OpenMode};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const CHECKPOINT_FILE: &str = "checkpoint.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub log_start_offset: u64,
    pub high_watermark: u64,
    /// A lower bound of what of the active segment was fsynced when this was
    /// written. Optional so that checkpoints written before it existed still decode
    /// (they name no durable point, and recovery then assumes none: R-LOG-13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<DurablePoint>,
    /// Recovery cut a bad tail from this offset on that it could not tell from a
    /// torn write: records from here may have been acknowledged, and the copy must
    /// not be counted on for them until its repair (R-REPL-4). Written before the
    /// cut, so a crash in between cannot lose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_from: Option<u64>,
}

/// How far a segment was known to be fsynced: its first `bytes` bytes, holding the
/// offsets below `end_offset`. Recovery treats a bad frame below it as corruption,
/// never as a torn write (R-LOG-13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurablePoint {
    pub segment_base: u64,
    pub bytes: u64,
    pub end_offset: u64,
}

impl Checkpoint {
    pub fn new(log_start_offset: u64, high_watermark: u64) -> Self {
        Checkpoint {
            version: VERSION,
            log_start_offset,
            high_watermark,
            durable: None,
            lost_from: None,
        }
    }

    pub fn with_durable(self, durable: DurablePoint) -> Self {
        Checkpoint {
            durable: Some(durable),
            ..self
        }
    }

    pub fn with_lost_from(self, lost_from: Option<u64>) -> Self {
        Checkpoint { lost_from, ..self }
    }
}

/// The checkpoint in `dir`, None if there is none yet. A file that exists but does
/// not decode is an error: guessing would move the log start or the high watermark.
pub fn read(disk: &dyn Disk, dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT_FILE);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let file = disk
        .open_file(&path, OpenMode::Existing)
        .map_err(|e| LogError::io("open", &path, e))?;
    let len = file.len().map_err(|e| LogError::io("stat", &path, e))?;
    if len > 64 * 1024 {
        return Err(LogError::CorruptCheckpoint {
            path,
            reason: format!("{len} bytes is too large for a checkpoint"),
        });
    }
    let mut bytes = vec![0; len as usize];
    let n = file
        .read_full_at(&mut bytes, 0)
        .map_err(|e| LogError::io("read", &path, e))?;
    bytes.truncate(n);
    let checkpoint: Checkpoint =
        serde_json::from_slice(&bytes).map_err(|e| LogError::CorruptCheckpoint {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if checkpoint.version != VERSION {
        return Err(LogError::CorruptCheckpoint {
            path,
            reason: format!("unknown version {}", checkpoint.version),
        });
    }
    Ok(Some(checkpoint))
}

pub fn write(disk: &dyn Disk, dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes = serde_json::to_vec(checkpoint).map_err(|e| LogError::CorruptCheckpoint {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_atomically(disk, &path, &bytes).map_err(|e| LogError::io("write", &path, e))
}
