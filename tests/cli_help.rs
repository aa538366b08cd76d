//! The command line's comfort: every command's `--help` ends with an example, `warmer
//! completions bash|zsh|fish` prints a script naming the commands (bash's passes `bash -n`),
//! and `warmer demo-site` serves the demo site alone until SIGTERM.

mod common;

use clap::CommandFactory as _;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn warmer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warmer"));
    c.env_remove("WARMER_CONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    c
}

/// Every command path of the CLI (`[]` is `warmer` itself), clap's own `help` excluded.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
    }
    let mut out = Vec::new();
    walk(&session_warmer::cli::Cli::command(), Vec::new(), &mut out);
    out
}

#[test]
fn every_commands_help_ends_with_an_example() {
    let paths = command_paths();
    // The walk finds the nested commands, the new ones included.
    for must in [
        vec!["serve"],
        vec!["demo-site"],
        vec!["completions"],
        vec!["sessions", "export"],
        vec!["store", "rekey"],
    ] {
        assert!(
            paths.iter().any(|p| p == &must),
            "{must:?} not among {paths:?}"
        );
    }
    let mut missing = Vec::new();
    for path in &paths {
        let out = warmer()
            .args(path)
            .arg("--help")
            .output()
            .expect("warmer runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let shown = format!("warmer {} --help", path.join(" "));
        assert!(out.status.success(), "{shown}: {:?}", out.status);
        // The example comes last: after the options, with at least one `warmer ...` line.
        let example = text.rfind("\nExample:\n");
        let options = text.rfind("\nOptions:\n").unwrap_or(0);
        match example {
            Some(at) if at > options => {
                let tail = &text[at + "\nExample:\n".len()..];
                let name = if path.is_empty() { "warmer" } else { &path[0] };
                assert!(
                    tail.lines().any(|l| l.trim_start().contains("warmer ")
                        && (path.is_empty() || l.contains(name))),
                    "{shown}: the example does not run this command:\n{tail}"
                );
            }
            _ => missing.push(shown),
        }
    }
    assert!(missing.is_empty(), "no example at the end of: {missing:#?}");
}

fn completion(shell: &str) -> String {
    let out = warmer()
        .args(["completions", shell])
        .output()
        .expect("warmer runs");
    assert!(
        out.status.success(),
        "completions {shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(!text.trim().is_empty(), "completions {shell}: empty");
    for word in [
        "serve",
        "demo-site",
        "sessions",
        "export",
        "completions",
        // The global option (fish spells it `-l config`).
        if shell == "fish" {
            "-l config"
        } else {
            "--config"
        },
    ] {
        assert!(
            text.contains(word),
            "completions {shell} does not mention {word}"
        );
    }
    text
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_commands() {
    let bash = completion("bash");
    let path = std::env::temp_dir().join(format!("warmer-completion-{}.bash", std::process::id()));
    std::fs::write(&path, &bash).unwrap();
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash is required for this test (it checks the script's syntax with bash -n)");
    std::fs::remove_file(&path).ok();
    assert!(
        checked.status.success(),
        "bash -n refuses the script: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(bash.contains("complete -F"), "a bash completion function");

    let zsh = completion("zsh");
    assert!(zsh.starts_with("#compdef warmer"), "{}", &zsh[..80]);
    let fish = completion("fish");
    assert!(fish.contains("complete -c warmer"), "{}", &fish[..200]);

    // A broken config does not stop it: completions read no config.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warmer.toml"), "[browser]\nmax_tabs = 3\n").unwrap();
    let out = warmer()
        .current_dir(dir.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // An unknown shell is refused, naming the choices.
    let out = warmer().args(["completions", "tcsh"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bash") && err.contains("fish"), "{err}");
}

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_site_serves_the_demo_alone_until_sigterm() {
    let mut child = Child(
        warmer()
            .args(["demo-site", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warmer runs"),
    );
    // Its first line says where it listens.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("warmer demo-site says where it listens within 20 s");
        if let Some(url) = line.strip_prefix("demo site") {
            break url.trim().to_string();
        }
    };
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let page = reqwest::get(format!("{base}/event/1001"))
        .await
        .expect("the demo site answers");
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("1001"), "{body}");
    // SIGTERM: a clean stop, exit 0.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = common::eventually("demo-site to exit", Duration::from_secs(10), || {
        let s = child.0.try_wait().ok().flatten();
        async move { s }
    })
    .await;
    assert!(status.success(), "{status:?}");
}
