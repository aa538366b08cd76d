//! `warmer store`: maintenance of the store: `rekey` (with the daemon stopped) and `copy`
//! between backends (`store_copy.rs`).

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::store_copy::{self, CopyArgs};
use crate::config::Config;
use crate::store::SledStore;

/// `warmer store`: maintenance of the store.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    #[command(
        after_help = "Example:\n  warmer store rekey --new-key-file new.key   # WARMER_KEY holds the old one, if any"
    )]
    /// Re-encrypt every session record under a new key (the old one comes from WARMER_KEY or
    /// store.key_file; with neither, a plaintext store is encrypted for the first time).
    Rekey {
        /// File with the new 32-byte key (64 hex characters or base64; mode 0600 or 0400).
        #[arg(long, value_name = "FILE", required_unless_present = "decrypt")]
        new_key_file: Option<PathBuf>,
        /// Decrypt every session record instead, turning encryption off.
        #[arg(long, conflicts_with = "new_key_file")]
        decrypt: bool,
    },
    #[command(after_help = store_copy::COPY_HELP)]
    /// Copy sessions, events and the audit trail from one store to another (sled <-> Redis),
    /// with progress; running it again copies nothing new.
    Copy(CopyArgs),
}

/// Runs `warmer store rekey|copy`.
///
/// # Errors
/// As [`rekey`] and [`store_copy::copy_cmd`].
pub(super) async fn store_cmd(
    config: &Config,
    config_path: Option<&Path>,
    command: StoreCommand,
) -> Result<ExitCode> {
    match command {
        StoreCommand::Rekey {
            new_key_file,
            decrypt,
        } => rekey(config, config_path, new_key_file, decrypt),
        StoreCommand::Copy(args) => store_copy::copy_cmd(&config.store, args).await,
    }
}

/// `warmer store rekey`: rewrites every session record under the new key (or decrypted), then
/// says what to change in the config. Refused while a daemon holds the store.
///
/// # Errors
/// No store at store.path, a bad key file, a locked store or a failed rewrite.
fn rekey(
    config: &Config,
    config_path: Option<&Path>,
    new_key_file: Option<PathBuf>,
    decrypt: bool,
) -> Result<ExitCode> {
    use crate::store::{StoreError, StoreKey};
    let path = &config.store.path;
    if !path.exists() {
        bail!("store.path: no store at {}", path.display());
    }
    let new = match (&new_key_file, decrypt) {
        (Some(f), false) => Some(StoreKey::read_file(f, "--new-key-file")?),
        (None, true) => None,
        _ => bail!("give either --new-key-file FILE or --decrypt"),
    };
    let new_id = new.as_ref().map(StoreKey::id);
    let old = StoreKey::from_env_or_file(&config.store)?;
    let mut store = match SledStore::open_with(path, old) {
        Ok(s) => s,
        Err(e @ StoreError::Locked { .. }) => {
            return Err(anyhow::Error::new(e).context("stop the daemon before rekeying"))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("opening store {}", path.display())))
        }
    };
    let old_id = store.key_id();
    let rewritten = store
        .rekey(new)
        .with_context(|| format!("rekeying store {}", path.display()))?;
    drop(store);

    let was = match old_id {
        Some(id) => format!("key id {id}"),
        None => "unencrypted".to_string(),
    };
    let (_, found) = Config::discover(config_path)?;
    let config_name = found
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the config file".into());
    let env_set = std::env::var(crate::store::KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    match (new_id, new_key_file) {
        (Some(id), Some(file)) => {
            println!(
                "re-encrypted {rewritten} session record(s) in {} under key id {id} (was: {was})",
                path.display()
            );
            if old_id == Some(id) {
                println!("Same key as before: nothing to change in the config.");
                return Ok(ExitCode::SUCCESS);
            }
            let file = std::fs::canonicalize(&file).unwrap_or(file);
            println!("Before starting the daemon, point it at the new key:");
            println!(
                "  in {config_name}:  [store] key_file = {:?}",
                file.display().to_string()
            );
            println!(
                "  or set WARMER_KEY to the file's contents (WARMER_KEY overrides store.key_file)"
            );
            if env_set {
                println!("WARMER_KEY is set here: change or unset it, or warmer keeps using the old key and fails.");
            }
            if old_id.is_some() {
                println!("Then destroy the old key: the store no longer opens with it.");
            }
        }
        _ => {
            println!(
                "decrypted {rewritten} session record(s) in {} (was: {was})",
                path.display()
            );
            println!(
                "Before starting the daemon, remove key_file from [store] in {config_name} and unset WARMER_KEY."
            );
            println!("The store now holds cookie values unencrypted; the daemon warns about it at start.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
