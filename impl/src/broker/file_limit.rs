//! The open-file limit (R-WIRE-12, issue 12 item 5). Every connection, partition log
//! segment and index the broker has open is a file descriptor; at the defaults
//! (`max_connections` 1024, `max_broker_partitions` 2,000) that is more than the soft
//! limit of 1,024 many systems start a process with, and running out means failed
//! appends and refused connections. The soft limit is raised to the hard limit at
//! start, as servers commonly do, and a hard limit below what the configured bounds
//! need is named in a warning instead of surfacing later as EMFILE.

/// Descriptors the broker needs beyond connections and one active segment per
/// partition: sealed segments, index and checkpoint files, the Raft WAL, peers.
const HEADROOM: u64 = 1_024;

/// What the configured bounds need at least.
pub fn needed(max_connections: usize, max_broker_partitions: u64) -> u64 {
    (max_connections as u64)
        .saturating_add(max_broker_partitions)
        .saturating_add(HEADROOM)
}

/// Linux refuses a soft limit above `fs.nr_open` (2^20 by default), even under an
/// unlimited hard limit.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

fn most() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NR_OPEN_DEFAULT)
}

/// How many sealed segment files may stay open: the configured bound, lowered to
/// what the open-file limit leaves after what `needed` counts (at least 64, so
/// reads work even under a tiny limit; R-LOG-19).
pub fn segment_files(configured: u64, limit: u64, needed: u64) -> usize {
    let left = limit.saturating_sub(needed);
    usize::try_from(configured.min(left).max(64)).unwrap_or(usize::MAX)
}

/// Raises the soft open-file limit to the hard one and returns the limit now in
/// force; warns when it is below `needed`.
pub fn raise_to_hard_limit(needed: u64) -> std::io::Result<u64> {
    let (soft, hard) = current()?;
    let target = hard.min(most()).max(soft);
    let now = if soft < target {
        set_soft(target)?;
        tracing::info!(from = soft, to = target, "raised the open-file limit");
        target
    } else {
        soft
    };
    if now < needed {
        tracing::warn!(
            limit = now,
            needed,
            "the open-file limit is below what max_connections and max_broker_partitions \
             allow; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower those bounds"
        );
    }
    Ok(now)
}

fn current() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

fn set_soft(soft: u64) -> std::io::Result<()> {
    let (_, hard) = current()?;
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_wire_12_the_soft_open_file_limit_is_raised_to_the_hard_limit() -> std::io::Result<()> {
        // Not lowered first: other tests of this process open files meanwhile.
        let (_, hard) = current()?;
        let now = raise_to_hard_limit(0)?;
        let (soft_after, hard_after) = current()?;
        assert_eq!(now, soft_after);
        assert_eq!(soft_after, hard.min(most()).max(soft_after));
        assert_eq!(hard_after, hard, "the hard limit is left as it was");
        Ok(())
    }
}
