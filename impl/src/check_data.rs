//! `chronik check-data`: reads every partition log of a stopped broker, checking
//! every checksum, and reports each damaged range (R-LOG-13); with `--quarantine`,
//! on the operator's word, gives them up (R-LOG-17). Meant for a partition whose only
//! copy is damaged: a replicated partition repairs itself from its replicas while the
//! broker runs (R-REPL-4).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::broker::{data_dir_lock, BrokerConfig};
use crate::disk::{Disk, RealDisk};
use crate::log::quarantine::{self, DamagedRange};

/// What a check found, and what it gave up.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub partitions: usize,
    pub damaged: Vec<(String, DamagedRange)>,
    pub quarantined: usize,
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
    }
    let lost: u64 = report
        .damaged
        .iter()
        .map(|(_, r)| r.damage.end_offset - r.damage.first_offset)
        .sum();
    writeln!(
        out,
        "checked {} partition logs under {}: {} damaged ranges holding {lost} offsets{}",
        report.partitions,
        root.display(),
        report.damaged.len(),
        if quarantine { ", all quarantined" } else { "" },
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
