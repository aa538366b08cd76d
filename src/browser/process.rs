//! Chromium's OS processes: spawned so that they die with the daemon (a parent-death signal, set
//! from a thread that lives as long as the process), each launch dir marked with its owner, the
//! processes of a launch found by its dirs, and the start-up sweep that ends the launches of
//! owners that died without cleaning up (SIGKILL, OOM kill).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Name prefix of a launch dir (profile + TMPDIR) under the temp root.
pub(super) const DIR_PREFIX: &str = "warmer-chromium-";
/// The file in a launch dir naming the process that owns the launch.
const OWNER_FILE: &str = "owner";

/// The process that owns a launch. The start time (clock ticks after boot) tells a live owner
/// from a later process that got its pid; the boot id, a launch of an earlier boot; the pid
/// namespace, a launch of another container sharing the temp dir (not ours to judge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owner {
    pid: u32,
    start: u64,
    boot: String,
    pidns: String,
}

impl Owner {
    /// This process.
    pub(super) fn me() -> io::Result<Self> {
        let pid = std::process::id();
        Ok(Self {
            pid,
            start: start_time(pid).ok_or_else(|| io::Error::other("reading /proc/self/stat"))?,
            boot: boot_id(),
            pidns: pid_namespace(),
        })
    }

    /// Writes the owner file of `dir` (write, then rename: a reader sees all of it or nothing).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub(super) fn write(&self, dir: &Path) -> io::Result<()> {
        let text = format!(
            "pid={}\nstart={}\nboot={}\npidns={}\n",
            self.pid, self.start, self.boot, self.pidns
        );
        let tmp = dir.join(format!("{OWNER_FILE}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(OWNER_FILE))
    }

    fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Self {
            pid: field("pid")?.parse().ok()?,
            start: field("start")?.parse().ok()?,
            boot: field("boot")?,
            pidns: field("pidns")?,
        })
    }

    fn state(&self, me: &Owner) -> OwnerState {
        if self.pidns != me.pidns {
            return OwnerState::Unknown;
        }
        if self.boot != me.boot {
            return OwnerState::Dead;
        }
        let alive = start_time(self.pid) == Some(self.start)
            && process_state(self.pid).is_some_and(|s| s != 'Z' && s != 'X');
        if alive {
            OwnerState::Alive
        } else {
            OwnerState::Dead
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum OwnerState {
    Alive,
    Dead,
    /// No (readable) owner file, or an owner in another pid namespace.
    Unknown,
}

/// `/proc/<pid>/stat` fields after the command name (`state` is the first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time of `pid` in clock ticks after boot (field 22 of `/proc/<pid>/stat`).
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn process_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// A spawn to run on the spawner thread.
struct SpawnRequest {
    cmd: Command,
    runtime: tokio::runtime::Handle,
    reply: tokio::sync::oneshot::Sender<io::Result<Child>>,
}

/// The spawner thread's queue. The thread runs until the process exits: the parent-death
/// signal fires when the *thread* that forked the child exits, so Chromium must not be forked
/// from a tokio thread that may end before the daemon (blocking-pool threads idle out after
/// 10 s; a worker thread that ran `block_in_place` becomes one).
fn spawner() -> Option<&'static mpsc::Sender<SpawnRequest>> {
    static QUEUE: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnRequest>();
            std::thread::Builder::new()
                .name("browser-spawner".into())
                .spawn(move || {
                    for req in rx {
                        // The child's pipes and reaping belong to the caller's runtime.
                        let _rt = req.runtime.enter();
                        let mut cmd = req.cmd;
                        let _ = req.reply.send(cmd.spawn());
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// Spawns `cmd` so that it gets SIGKILL when this process dies, however it dies: the parent-death
/// signal is set between fork and exec, from the spawner thread (see [`spawner`]). A Chromium
/// browser process that dies takes its zygotes, renderers, utility processes and crashpad
/// handlers with it (measured with Chromium 156: all gone 0.1 s after a SIGKILL of the browser
/// process; in the kill-restart drill, a SIGKILLed daemon's whole browser within 216 ms).
///
/// # Errors
/// When the spawner thread cannot start or the spawn fails.
pub(super) async fn spawn_tied_to_this_process(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.kill_on_drop(true);
    let queue = spawner().ok_or_else(|| io::Error::other("cannot start the spawner thread"))?;
    let (reply, rx) = tokio::sync::oneshot::channel();
    queue
        .send(SpawnRequest {
            cmd,
            runtime: tokio::runtime::Handle::current(),
            reply,
        })
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    rx.await
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}

/// True when `hay` (a `/proc/<pid>/cmdline`) has `arg` as a whole argument: separated by NULs,
/// or by spaces (the zygote rewrites its children's command line into one string).
fn has_arg(hay: &[u8], arg: &[u8]) -> bool {
    let sep = |b: Option<&u8>| b.is_none_or(|b| *b == 0 || *b == b' ');
    hay.windows(arg.len()).enumerate().any(|(i, w)| {
        w == arg && sep(i.checked_sub(1).and_then(|j| hay.get(j))) && sep(hay.get(i + arg.len()))
    })
}

/// Every live process of the browser launched under `root` (its profile dir + TMPDIR):
/// matched by `--user-data-dir=<root>/profile` on the command line (renderers, zygotes, GPU and
/// utility processes carry it; the zygote's children have it inside one space-separated string)
/// or by `TMPDIR=<root>/tmp` in the environment (crashpad handlers have no `--user-data-dir`).
/// Zombies have an empty command line and environment: they are not counted.
pub fn processes_of(root: &Path) -> Vec<u32> {
    // No launch has an empty root; an empty one must not match stray relative paths.
    if root.as_os_str().is_empty() {
        return Vec::new();
    }
    let flag = format!("--user-data-dir={}", root.join("profile").display());
    let env = format!("TMPDIR={}", root.join("tmp").display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let in_env = || {
            std::fs::read(e.path().join("environ"))
                .map(|b| b.split(|c| *c == 0).any(|kv| kv == env.as_bytes()))
                .unwrap_or(false)
        };
        if has_arg(&cmdline, flag.as_bytes()) || in_env() {
            found.push(pid);
        }
    }
    found
}

/// SIGKILLs every process of the launch under `root` until none is left (at most `within`);
/// how many were signalled.
pub(super) async fn kill_all_of(root: &Path, within: Duration) -> usize {
    let end = Instant::now() + within;
    let mut killed = std::collections::BTreeSet::new();
    loop {
        let left = processes_of(root);
        if left.is_empty() || Instant::now() >= end {
            break;
        }
        for pid in left {
            // SAFETY: kill(2) on processes of a launch of ours (matched by its dirs).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed.insert(pid);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    killed.len()
}

/// Removes `dir`, retrying a few times while exiting processes still write into it.
///
/// # Errors
/// The last error, when it is still there after the retries.
pub(super) async fn remove_dir(dir: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for attempt in 0..6 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Err(e),
        }
    }
    last
}

/// What the start-up sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Launches of dead owners ended: their processes killed and dirs removed.
    pub launches: usize,
    /// Processes of those launches that were still alive and got SIGKILL.
    pub processes: usize,
    /// Launches whose owner is alive (another daemon or test): untouched.
    pub live: usize,
    /// Launches with no owner file (an older version's, or one being created) or an owner in
    /// another pid namespace: untouched.
    pub unknown: usize,
    /// Dirs of dead owners that could not be removed.
    pub failed: usize,
}

/// Launch dirs directly under `root`.
fn launch_dirs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(DIR_PREFIX))
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Ends the launches under `root` whose owner is dead: kills their processes and removes their
/// dirs. Never touches a launch whose owner is alive, or whose owner it cannot tell.
pub async fn sweep(root: &Path) -> Swept {
    let mut swept = Swept::default();
    let Ok(me) = Owner::me() else {
        return swept;
    };
    for dir in launch_dirs(root) {
        let state = Owner::read(&dir).map_or(OwnerState::Unknown, |o| o.state(&me));
        match state {
            OwnerState::Alive => swept.live += 1,
            OwnerState::Unknown => swept.unknown += 1,
            OwnerState::Dead => {
                swept.processes += kill_all_of(&dir, Duration::from_secs(5)).await;
                match remove_dir(&dir).await {
                    Ok(()) => swept.launches += 1,
                    Err(e) => {
                        swept.failed += 1;
                        tracing::warn!(error = %crate::logging::chain(&e), dir = %dir.display(), "removing a dead owner's browser dir");
                    }
                }
            }
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_is_found_whole_in_nul_or_space_separated_command_lines() {
        let arg = b"--user-data-dir=/tmp/a/profile";
        assert!(has_arg(
            b"chromium\0--user-data-dir=/tmp/a/profile\0--x",
            arg
        ));
        assert!(has_arg(
            b"chromium --type=renderer --user-data-dir=/tmp/a/profile --x",
            arg
        ));
        assert!(has_arg(b"--user-data-dir=/tmp/a/profile", arg));
        assert!(!has_arg(
            b"chromium\0--user-data-dir=/tmp/a/profile2\0",
            arg
        ));
        assert!(!has_arg(
            b"chromium\0x--user-data-dir=/tmp/a/profile\0",
            arg
        ));
        assert!(!has_arg(b"", arg));
    }

    #[test]
    fn an_owner_round_trips_and_is_alive_only_while_its_process_is() {
        let dir = tempfile::tempdir().unwrap();
        let me = Owner::me().unwrap();
        me.write(dir.path()).unwrap();
        let read = Owner::read(dir.path()).unwrap();
        assert_eq!(read, me);
        assert_eq!(read.state(&me), OwnerState::Alive);
        // Same pid, another start time: a later process that got the pid.
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.state(&me), OwnerState::Dead);
        let earlier_boot = Owner {
            boot: "another boot".into(),
            ..me.clone()
        };
        assert_eq!(earlier_boot.state(&me), OwnerState::Dead);
        let other_ns = Owner {
            pidns: "pid:[1]".into(),
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(other_ns.state(&me), OwnerState::Unknown);
    }

    #[tokio::test]
    async fn the_sweep_removes_dead_owners_dirs_only() {
        let root = tempfile::tempdir().unwrap();
        let me = Owner::me().unwrap();
        let mk = |name: &str, owner: Option<Owner>| {
            let d = root.path().join(format!("{DIR_PREFIX}{name}"));
            std::fs::create_dir_all(d.join("profile")).unwrap();
            if let Some(o) = owner {
                o.write(&d).unwrap();
            }
            d
        };
        let live = mk("live", Some(me.clone()));
        let dead = mk(
            "dead",
            Some(Owner {
                start: me.start + 1,
                ..me.clone()
            }),
        );
        let unknown = mk("unknown", None);
        let other = root.path().join("something-else");
        std::fs::create_dir_all(&other).unwrap();
        let swept = sweep(root.path()).await;
        assert_eq!(
            swept,
            Swept {
                launches: 1,
                live: 1,
                unknown: 1,
                ..Swept::default()
            }
        );
        assert!(live.exists() && unknown.exists() && other.exists());
        assert!(!dead.exists());
    }
}
