//! The memory guard: the browser's whole process tree measured by PSS (`/proc/<pid>/
//! smaps_rollup`), and the decision to recycle it, make-before-break, above
//! `browser.max_pss_mib`.

use std::time::Instant;

use super::{processes_of, Supervisor};

impl Supervisor {
    /// Proportional memory (PSS) of the current browser's whole process tree, in bytes; `None`
    /// without a browser, and for a remote one.
    pub fn pss_bytes(&self) -> Option<u64> {
        let info = self.current()?;
        // A remote browser's processes are not on this machine's /proc (or not ours).
        if info.endpoint.is_some() {
            return None;
        }
        Some(tree_pss_kib(&info.profile_dir) * 1024)
    }

    /// Whether the current browser is above `browser.max_pss_mib` (0: never) and may be
    /// recycled now: not within ten checks of the last recycle (`last_recycle`), so a limit below
    /// a fresh browser's size does not recycle in a loop.
    pub(super) fn above_memory_limit(&self, last_recycle: Option<Instant>) -> bool {
        let check_every = self.inner.config.memory_check_every;
        let limit_kib = self.inner.config.max_pss_mib * 1024;
        if limit_kib == 0 {
            return false;
        }
        let info = self.current();
        let used = info.map(|i| tree_pss_kib(&i.profile_dir)).unwrap_or(0);
        let settled = last_recycle.is_none_or(|t| t.elapsed() >= check_every * 10);
        if used > limit_kib && settled {
            tracing::warn!(
                pss_mib = used / 1024,
                limit_mib = limit_kib / 1024,
                "browser above its memory limit; recycling"
            );
            true
        } else {
            false
        }
    }
}

/// Sum of `Pss` (KiB) over every process of the browser launched under `root`.
pub fn tree_pss_kib(root: &std::path::Path) -> u64 {
    processes_of(root)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .map(|rollup| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}
