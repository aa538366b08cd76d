//! `[browser]`: which Chromium, how many contexts, CDP timeouts and the memory guard.

use super::duration::duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which Chromium build to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// Debian's full `chromium` in headless mode.
    Chromium,
    /// Debian's `chromium-headless-shell`: about 3x cheaper per context.
    HeadlessShell,
}

/// `[browser]`: the Chromium supervisor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserConfig {
    /// Chromium binary. Default: auto-detected for the flavour.
    pub executable: Option<PathBuf>,
    /// Default: `chromium`.
    pub flavor: Flavor,
    /// Contexts with their page open at once per browser: warms, account checks and logins.
    /// An account's context between checks is parked (page closed) and takes no slot.
    /// Default: 10.
    pub max_contexts: usize,
    /// Timeout of one navigation. Default: 30 s.
    #[serde(deserialize_with = "duration")]
    pub navigation_timeout: Duration,
    /// Timeout of any other CDP call. Default: 10 s.
    #[serde(deserialize_with = "duration")]
    pub cdp_timeout: Duration,
    /// Timeout of a browser launch. Default: 20 s.
    #[serde(deserialize_with = "duration")]
    pub launch_timeout: Duration,
    /// Directory with `profiles.json` and `locales.json`. Default: the embedded data.
    pub fingerprints_dir: Option<PathBuf>,
    /// Memory guard: the browser (whole process tree, PSS) is recycled above this, make-before-
    /// break. 0 turns it off. Default: 2048 MiB.
    pub max_pss_mib: u64,
    /// How often the memory guard looks. Default: 30 s.
    #[serde(deserialize_with = "duration")]
    pub memory_check_every: Duration,
    /// Keep one context (with its blank page) open ahead of the next warm, so opening it is off
    /// that warm's critical path (it is opened while the current warm dwells). Made only after
    /// two warms in a row with the same proxy, only while no other warm is under way, only
    /// while at least one other context slot stays free, and counted against `max_contexts`;
    /// disposed when unused for 10 s. Default: true.
    pub spare_context: bool,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            executable: None,
            flavor: Flavor::Chromium,
            max_contexts: 10,
            navigation_timeout: Duration::from_secs(30),
            cdp_timeout: Duration::from_secs(10),
            launch_timeout: Duration::from_secs(20),
            fingerprints_dir: None,
            max_pss_mib: 2048,
            memory_check_every: Duration::from_secs(30),
            spare_context: true,
        }
    }
}

impl BrowserConfig {
    /// The executable to launch: the configured one, else the flavour's Debian path.
    /// The headless shell is launched directly: the `/usr/bin` wrapper does not `exec`.
    pub fn resolved_executable(&self) -> PathBuf {
        if let Some(p) = &self.executable {
            return p.clone();
        }
        match self.flavor {
            Flavor::Chromium => {
                let direct = Path::new("/usr/lib/chromium/chromium");
                if direct.exists() {
                    direct.to_path_buf()
                } else {
                    PathBuf::from("/usr/bin/chromium")
                }
            }
            Flavor::HeadlessShell => PathBuf::from("/usr/lib/chromium/chromium-headless-shell"),
        }
    }
}
