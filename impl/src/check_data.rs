//! `chronik check-data`: reads every partition log of a stopped broker, checking
//! every checksum, and reports each damaged range (R-LOG-13); with `--quarantine`,
//! on the operator's word, gives them up (R-LOG-17). Meant for a partition whose only
//! copy is damaged: a replicated partition repairs itself from its replicas while the
//! broker runs (R-REPL-4). It also reports each tail that recovery cut as a torn write
//! and marked (R-REPL-4, a bad last frame): no damage is left on disk, but the records
//! cut may have been acknowledged.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::broker::{data_dir_lock, BrokerConfig};
use crate::disk::{Disk, RealDisk};
use crate::log::checkpoint;
use crate::log::quarantine::{self, DamagedRange};

/// What a check found, and what it gave up.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub partitions: usize,
    pub damaged: Vec<(String, DamagedRange)>,
    pub quarantined: usize,
    /// Partitions whose copy recovery cut at a bad last frame, and from which offset.
    pub cut_tails: Vec<(String, u64)>,
}

impl CheckReport {
    /// True when no damage is left on disk.
    pub fn is_clean(&self) -> bool {
        self.damaged.len() == self.quarantined
    }
}

/// Checks (and with `quarantine`, repairs) every partition log under the data
/// directory of `config`, writing one line per damaged range to `out`.
pub fn run(
    config: &BrokerConfig,
    quarantine: bool,
    out: &mut dyn Write,
) -> anyhow::Result<CheckReport> {
    // A mistyped path must not become a new, empty, "clean" data directory.
    if !config.data_dir.is_dir() {
        anyhow::bail!("no data directory at {}", config.data_dir.display());
    }
    let _lock = data_dir_lock::acquire(&config.data_dir)?;
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let root = config.data_dir.join("logs");
    let mut report = CheckReport::default();
    for dir in quarantine::partition_dirs(disk.as_ref(), &root)? {
        report.partitions += 1;
        let name = dir_name(&dir);
        let found = if quarantine {
            let done = quarantine::quarantine(Arc::clone(&disk), &dir, config.log_defaults())?;
            for (range, saved) in &done {
                writeln!(
                    out,
                    "quarantined {name} {}; its bytes are in {}",
                    describe(range),
                    saved.display()
                )?;
            }
            report.quarantined += done.len();
            done.into_iter().map(|(range, _)| range).collect()
        } else {
            let found = quarantine::find_damage(Arc::clone(&disk), &dir, config.log_defaults())?;
            for range in &found {
                writeln!(out, "damaged {name} {}", describe(range))?;
            }
            found
        };
        report
            .damaged
            .extend(found.into_iter().map(|r| (name.clone(), r)));
        // Recovery (above, in opening the log) writes the mark before it cuts.
        if let Some(from) = checkpoint::read(disk.as_ref(), &dir)?.and_then(|c| c.lost_from) {
            writeln!(
                out,
                "cut {name} from offset {from}: recovery took a bad last frame for a torn \
                 write; a replicated copy fetches those records back from its replicas once \
                 the broker runs, a sole copy has lost them"
            )?;
            report.cut_tails.push((name, from));
        }
    }
    let lost: u64 = report
        .damaged
        .iter()
        .map(|(_, r)| r.damage.end_offset - r.damage.first_offset)
        .sum();
    writeln!(
        out,
        "checked {} partition logs under {}: {} damaged ranges holding {lost} offsets{}, {} \
         tails cut and marked",
        report.partitions,
        root.display(),
        report.damaged.len(),
        if quarantine { ", all quarantined" } else { "" },
        report.cut_tails.len(),
    )?;
    Ok(report)
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn describe(range: &DamagedRange) -> String {
    let d = &range.damage;
    format!(
        "offsets [{}, {}) in {} bytes [{}, {}): {}",
        d.first_offset,
        d.end_offset,
        range.segment.display(),
        d.position,
        d.end_position,
        d.reason
    )
}
