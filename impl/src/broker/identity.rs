//! `<data-dir>/identity`: the node id and the voter ids this data directory was first
//! started with (R-START-5). A later start with another id or another voter set is
//! refused before anything is written: a node restarted with `--voters` naming only
//! itself elected itself a one-voter group, fenced its peers, took writes no peer
//! ever saw, and stayed a cluster of its own when started again with the right list;
//! one started under another node's id served another broker's partitions as its own
//! (exploratory testing, 2026-12-07). Kafka refuses a start whose node id differs from
//! the one in `meta.properties` the same way.

use crate::disk::{read_all, write_atomically, Disk};
use std::path::Path;

const FILE: &str = "identity";

/// Who a data directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node_id: i32,
    /// Sorted.
    pub voters: Vec<u64>,
}

impl Identity {
    pub fn new(node_id: i32, voters: &[u64]) -> Self {
        let mut voters = voters.to_vec();
        voters.sort_unstable();
        voters.dedup();
        Identity { node_id, voters }
    }

    fn text(&self) -> String {
        let voters: Vec<String> = self.voters.iter().map(u64::to_string).collect();
        format!("node.id={}\nvoters={}\n", self.node_id, voters.join(","))
    }

    fn parse(text: &str) -> Option<Self> {
        let mut node_id = None;
        let mut voters = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("node.id", v)) => node_id = v.trim().parse::<i32>().ok(),
                Some(("voters", v)) => {
                    let ids: Result<Vec<u64>, _> =
                        v.split(',').map(|id| id.trim().parse::<u64>()).collect();
                    voters = ids.ok();
                }
                _ => {}
            }
        }
        Some(Identity::new(node_id?, &voters?))
    }
}

/// Refuses a start whose identity differs from the one `data_dir` was first started
/// with; the first start (or the first with this version) writes it.
pub fn check(disk: &dyn Disk, data_dir: &Path, started: &Identity) -> anyhow::Result<()> {
    let path = data_dir.join(FILE);
    if !disk.exists(&path) {
        disk.create_dir_all(data_dir)?;
        return write_atomically(disk, &path, started.text().as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()));
    }
    let bytes =
        read_all(disk, &path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let Some(stored) = Identity::parse(&text) else {
        anyhow::bail!(
            "{} is damaged ({text:?}); it should read \"node.id=N\" and \"voters=A,B,C\" as \
             this directory was first started",
            path.display()
        );
    };
    if stored == *started {
        return Ok(());
    }
    anyhow::bail!(
        "{} belongs to node {} of the voters {:?}, and this start is node {} of the voters \
         {:?}. Started so, it would form a metadata group of its own, apart from its peers, \
         or serve another node's partitions. Start it with --node-id {} and --voters naming \
         exactly the nodes {:?}; a new node needs an empty data directory of its own",
        data_dir.display(),
        stored.node_id,
        stored.voters,
        started.node_id,
        started.voters,
        stored.node_id,
        stored.voters
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronik_core::disk::MemDisk;

    #[test]
    fn r_start_5_a_start_with_another_id_or_voter_set_is_refused() {
        let disk = MemDisk::new();
        let dir = Path::new("/data");
        let first = Identity::new(1, &[3, 1, 2]);
        assert!(
            check(&disk, dir, &first).is_ok(),
            "the first start writes it"
        );
        assert!(check(&disk, dir, &Identity::new(1, &[1, 2, 3])).is_ok());
        let alone = check(&disk, dir, &Identity::new(1, &[1]))
            .unwrap_err()
            .to_string();
        assert!(alone.contains("node 1 of the voters [1, 2, 3]"), "{alone}");
        assert!(check(&disk, dir, &Identity::new(7, &[1, 2, 3])).is_err());
        assert!(check(&disk, dir, &Identity::new(1, &[1, 2, 4])).is_err());
    }

    #[test]
    fn r_start_5_a_damaged_identity_is_refused_with_what_it_should_say() {
        let disk = MemDisk::new();
        let dir = Path::new("/data");
        disk.create_dir_all(dir).unwrap();
        write_atomically(&disk, &dir.join(FILE), b"node.id=x\n").unwrap();
        let err = check(&disk, dir, &Identity::new(1, &[1]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
