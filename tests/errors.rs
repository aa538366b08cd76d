//! Errors as the `warmer` binary prints them: each names the phase that failed and says its
//! cause exactly once (a wrapping error does not repeat its source in its own message, and
//! `{:#}` adds the source once).

use std::path::Path;
use std::process::Command;

/// Runs `warmer args…` in `dir` with no config or log filter from the environment; returns the
/// exit code and stderr.
fn warmer(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warmer"))
        .current_dir(dir)
        .env_remove("WARMER_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("WARMER_LOG_FORMAT")
        .args(args)
        .output()
        .expect("running warmer");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that `err` has one `error:` line, that it starts with `prefix`, and that `cause`
/// occurs in it exactly once.
fn assert_once(err: &str, prefix: &str, cause: &str) {
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err:?}");
    assert!(
        lines[0].starts_with(prefix),
        "starts with {prefix:?}: {err:?}"
    );
    assert_eq!(
        err.matches(cause).count(),
        1,
        "{cause:?} is said exactly once: {err:?}"
    );
}

#[test]
fn a_missing_config_file_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = warmer(dir.path(), &["serve", "--config", "x.toml"]);
    assert_ne!(code, Some(0), "{err}");
    assert_once(
        &err,
        "error: reading config x.toml: ",
        "No such file or directory",
    );
}

#[test]
fn unparsable_fingerprint_data_says_the_file_and_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("fp");
    std::fs::create_dir(&fp).unwrap();
    std::fs::write(fp.join("profiles.json"), "{ not json").unwrap();
    std::fs::write(fp.join("locales.json"), "[]").unwrap();
    std::fs::write(
        dir.path().join("warmer.toml"),
        "[browser]\nfingerprints_dir = 'fp'\n",
    )
    .unwrap();
    let (code, err) = warmer(dir.path(), &["check"]);
    assert_ne!(code, Some(0), "{err}");
    // serde_json's message names the position in the file: said once, after the file.
    assert_once(&err, "error: parsing fp/profiles.json: ", "line 1 column 3");
}

#[test]
fn an_unreadable_fingerprint_file_says_the_file_and_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("fp");
    std::fs::create_dir(&fp).unwrap();
    std::fs::write(
        dir.path().join("warmer.toml"),
        "[browser]\nfingerprints_dir = 'fp'\n",
    )
    .unwrap();
    let (code, err) = warmer(dir.path(), &["check"]);
    assert_ne!(code, Some(0), "{err}");
    assert_once(
        &err,
        "error: reading fp/profiles.json: ",
        "No such file or directory",
    );
}
