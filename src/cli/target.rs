//! Which configured target a command means: the one `--target NAME` names, or, without a
//! name, the only one there is. Every command resolves its target here, so they all accept the
//! same names and say the same things when a name is wrong or missing.

use crate::config::{Config, TargetConfig};

/// Which of the configured targets a command can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Any target (`warm`, `events`, `sessions export --all`).
    Any,
    /// Only targets with a `[targets.login]` section (`accounts`, `login`).
    Login,
}

impl Kind {
    /// Whether `t` is a target of this kind.
    fn admits(self, t: &TargetConfig) -> bool {
        match self {
            Kind::Any => true,
            Kind::Login => t.login.is_some(),
        }
    }

    /// How the message names a target of this kind ("target" or "login target").
    fn noun(self) -> &'static str {
        match self {
            Kind::Any => "target",
            Kind::Login => "login target",
        }
    }
}

/// Why no target was found; the caller may still have a fallback (`warm --url` warms on an
/// ad-hoc target), else it returns this as the error.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unresolved {
    /// `--target NAME` names no target of the kind.
    #[error("--target: unknown {} {name:?} (configured: {})", kind.noun(), list(known))]
    Unknown {
        /// The name given.
        name: String,
        /// Which kind of target was looked for.
        kind: Kind,
        /// The names of the configured targets of that kind.
        known: Vec<String>,
    },
    /// No target of the kind is configured and no name was given.
    #[error("{}", none_configured(*kind))]
    NoneConfigured {
        /// Which kind of target was looked for.
        kind: Kind,
    },
    /// Several targets of the kind are configured and no name was given.
    #[error("--target: several {}s configured ({}); name one", kind.noun(), list(known))]
    Several {
        /// Which kind of target was looked for.
        kind: Kind,
        /// Their names.
        known: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn none_configured(kind: Kind) -> &'static str {
    match kind {
        Kind::Any => "no target configured: add a [[targets]] section to the config",
        Kind::Login => "no login target configured ([targets.login] with accounts_dir)",
    }
}

/// The target of `kind` that `name` names, or without a name the only target of that kind.
///
/// # Errors
/// [`Unresolved`]: the name is unknown (the message lists the known ones), or no name was given
/// and there is not exactly one target of the kind.
pub(super) fn resolve<'a>(
    config: &'a Config,
    name: Option<&str>,
    kind: Kind,
) -> Result<&'a TargetConfig, Unresolved> {
    let mut candidates = config.targets.iter().filter(|t| kind.admits(t));
    let known = || {
        config
            .targets
            .iter()
            .filter(|t| kind.admits(t))
            .map(|t| t.name.clone())
            .collect()
    };
    match name {
        Some(n) => candidates
            .find(|t| t.name == n)
            .ok_or_else(|| Unresolved::Unknown {
                name: n.to_string(),
                kind,
                known: known(),
            }),
        None => match (candidates.next(), candidates.next()) {
            (Some(only), None) => Ok(only),
            (None, _) => Err(Unresolved::NoneConfigured { kind }),
            (Some(_), Some(_)) => Err(Unresolved::Several {
                kind,
                known: known(),
            }),
        },
    }
}

/// The `accounts_dir` of a login target.
///
/// # Errors
/// When the target has none.
pub(super) fn accounts_dir(t: &TargetConfig) -> anyhow::Result<std::path::PathBuf> {
    t.accounts_dir
        .clone()
        .ok_or_else(|| anyhow::anyhow!("target {:?} has no accounts_dir", t.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: &[(&str, bool)]) -> Config {
        let mut c = Config::default();
        for (name, login) in targets {
            let mut t = TargetConfig::ad_hoc(name, "http://127.0.0.1:1/e/{event}");
            if *login {
                let toml = "url = 'http://127.0.0.1:1/login'\nsteps = []\n\
                            [check]\nurl = 'http://127.0.0.1:1/me'\nselector = '#me'\n";
                t.login = Some(toml::from_str(toml).expect("a login section"));
            }
            c.targets.push(t);
        }
        c
    }

    #[test]
    fn a_name_or_the_only_target_resolves() {
        let c = config(&[("a", false), ("b", true)]);
        assert_eq!(resolve(&c, Some("a"), Kind::Any).unwrap().name, "a");
        assert_eq!(resolve(&c, None, Kind::Login).unwrap().name, "b");
        let one = config(&[("a", false)]);
        assert_eq!(resolve(&one, None, Kind::Any).unwrap().name, "a");
    }

    #[test]
    fn what_does_not_resolve_says_why() {
        let c = config(&[("a", false), ("b", true)]);
        let e = resolve(&c, Some("nope"), Kind::Any)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--target: unknown target \"nope\" (configured: a, b)");
        // A target that exists but has no login is not a login target.
        let e = resolve(&c, Some("a"), Kind::Login).unwrap_err().to_string();
        assert_eq!(e, "--target: unknown login target \"a\" (configured: b)");
        let e = resolve(&c, None, Kind::Any).unwrap_err().to_string();
        assert_eq!(e, "--target: several targets configured (a, b); name one");
        let none = config(&[("a", false)]);
        assert!(matches!(
            resolve(&none, None, Kind::Login),
            Err(Unresolved::NoneConfigured { kind: Kind::Login })
        ));
    }
}
