//! Which configured target a command means (`--target`, or the only one).

use anyhow::{anyhow, bail, Result};

use crate::config::{Config, TargetConfig};

pub(super) fn pick_target(
    config: &Config,
    name: Option<&str>,
    url: Option<&str>,
) -> Result<TargetConfig> {
    let base = match name {
        Some(n) => Some(config.target(n).cloned().ok_or_else(|| {
            let known: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
            anyhow!(
                "--target: unknown target {n:?} (configured: {})",
                known.join(", ")
            )
        })?),
        None if config.targets.len() == 1 => Some(config.targets[0].clone()),
        None => None,
    };
    match (base, url) {
        (Some(mut t), Some(u)) => {
            t.event_url = Some(u.to_string());
            Ok(t)
        }
        (Some(t), None) => Ok(t),
        (None, Some(u)) => Ok(TargetConfig::ad_hoc("adhoc", u)),
        (None, None) if config.targets.is_empty() => {
            bail!("no target configured: pass --url URL or add a [[targets]] section to the config")
        }
        (None, None) => bail!("several targets configured: pass --target NAME"),
    }
}

pub(super) fn login_target<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a TargetConfig> {
    let logins: Vec<&TargetConfig> = config
        .targets
        .iter()
        .filter(|t| t.login.is_some())
        .collect();
    match name {
        Some(n) => logins
            .into_iter()
            .find(|t| t.name == n)
            .ok_or_else(|| anyhow!("--target: no login target {n:?} in the config")),
        None => match logins.as_slice() {
            [one] => Ok(one),
            [] => bail!("no login target configured ([targets.login] with accounts_dir)"),
            _ => bail!("--target: several login targets; name one"),
        },
    }
}
