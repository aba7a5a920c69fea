//! The `topic_id` file in a partition directory: which topic the directory was
//! created for (R-RECOVER-8). A stamp decides whether a directory is removed as a
//! deleted topic's, so a damaged one must be told from another topic's: a flipped
//! bit once made a live topic's stamp name an unknown id, and the broker removed the
//! directory with every acknowledged record in it as a deleted topic's leftover.
//!
//! A stamp is the id and its CRC-32 on a second line. Stamps written before the
//! checksum are the bare id; the broker only ever wrote UUIDs there, 36 bytes long,
//! while a checksummed stamp is at least 10 bytes longer, so no damage that keeps a
//! file's length can turn the one into the other.

use crate::disk::{read_all, write_atomically, Disk};
use std::io;
use std::path::Path;

/// The file in a partition directory that names the topic id it belongs to.
pub const TOPIC_ID_FILE: &str = "topic_id";

/// What a partition directory's stamp says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// The id, its checksum verified.
    Verified(String),
    /// A bare UUID from before the checksum: taken as written (rewritten with its
    /// checksum once it is claimed for that topic).
    Unchecked(String),
    /// Neither: the stamp was damaged, and says nothing about the directory.
    Damaged,
}

impl Stamp {
    /// The topic id the stamp names, if it can be read.
    pub fn id(&self) -> Option<&str> {
        match self {
            Stamp::Verified(id) | Stamp::Unchecked(id) => Some(id),
            Stamp::Damaged => None,
        }
    }

    /// What the bytes of a stamp file say.
    pub fn parse(bytes: &[u8]) -> Stamp {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Stamp::Damaged;
        };
        if let Some((id, sum)) = text.strip_suffix('\n').and_then(|t| t.split_once('\n')) {
            // Compared as text: a flipped case bit still parses as the same number.
            return if !id.is_empty() && sum == checksum(id) {
                Stamp::Verified(id.to_string())
            } else {
                Stamp::Damaged
            };
        }
        if is_uuid(text) {
            Stamp::Unchecked(text.to_string())
        } else {
            Stamp::Damaged
        }
    }
}

/// The bytes of a stamp naming `topic_id`.
pub fn stamp_bytes(topic_id: &str) -> Vec<u8> {
    format!("{topic_id}\n{}\n", checksum(topic_id)).into_bytes()
}

fn checksum(topic_id: &str) -> String {
    format!("{:08x}", crc32fast::hash(topic_id.as_bytes()))
}

/// The stamp of the partition directory `dir`; `None` if it has none.
pub fn read_stamp(disk: &dyn Disk, dir: &Path) -> io::Result<Option<Stamp>> {
    let path = dir.join(TOPIC_ID_FILE);
    if !disk.exists(&path) {
        return Ok(None);
    }
    read_all(disk, &path).map(|bytes| Some(Stamp::parse(&bytes)))
}

/// Stamps `dir` as `topic_id`'s, atomically.
pub fn write_stamp(disk: &dyn Disk, dir: &Path, topic_id: &str) -> io::Result<()> {
    write_atomically(disk, &dir.join(TOPIC_ID_FILE), &stamp_bytes(topic_id))
}

/// A hyphenated UUID as `Uuid::to_string` writes it: what the broker stamped before
/// stamps carried a checksum.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = groups.iter().map(|g| g.len()).collect::<Vec<_>>();
    lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f8e3a52-6f5c-4b3e-9d51-2a7c1e9b4d60";

    #[test]
    fn r_recover_8_a_stamp_reads_back_as_written() {
        assert_eq!(
            Stamp::parse(&stamp_bytes(ID)),
            Stamp::Verified(ID.to_string())
        );
        assert_eq!(
            Stamp::parse(&stamp_bytes("t-id")),
            Stamp::Verified("t-id".to_string())
        );
        assert_eq!(
            Stamp::parse(ID.as_bytes()),
            Stamp::Unchecked(ID.to_string())
        );
    }

    /// Every single-bit flip anywhere in a checksummed stamp, and in the bare
    /// stamps of old, is either found or names a well-formed id: a checksummed one
    /// is always found.
    #[test]
    fn r_recover_8_every_flipped_bit_of_a_stamp_is_found() {
        let good = stamp_bytes(ID);
        for byte in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[byte] ^= 1 << bit;
                assert_eq!(
                    Stamp::parse(&bad),
                    Stamp::Damaged,
                    "byte {byte} bit {bit} went unnoticed"
                );
            }
        }
        assert_eq!(Stamp::parse(b""), Stamp::Damaged);
        assert_eq!(Stamp::parse(b"not-a-uuid"), Stamp::Damaged);
        assert_eq!(Stamp::parse(&[0xff, 0xfe]), Stamp::Damaged);
    }
}
