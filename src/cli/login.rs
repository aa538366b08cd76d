//! `warmer login`: sign one account in by hand, with progress, and store the session.

use anyhow::{anyhow, bail, Result};
use std::process::ExitCode;

use super::engine::Engine;
use super::output::print_session;
use super::target::{self, Kind};
use crate::config::Config;
use crate::warm::account::SignIn;

pub(super) async fn login_by_hand(
    config: &Config,
    target: Option<&str>,
    account: &str,
) -> Result<ExitCode> {
    use crate::warm::login;
    let t = target::resolve(config, target, Kind::Login)?.clone();
    let login_cfg = t.login.clone().expect("login target");
    let dir = target::accounts_dir(&t)?;
    crate::accounts::check_id(account)?;
    let acc = crate::accounts::load_file(&dir.join(format!("{account}.toml")), &t.name)?;
    let backend = match super::backend::open_configured(&config.store).await {
        Ok(b) => b,
        Err(e) if super::backend::is_locked(&e) => bail!(
            "the daemon is running and keeps {account:?} signed in; use `warmer accounts refresh`"
        ),
        Err(e) => {
            return Err(e.context(format!(
                "opening store {}",
                super::backend::location(&config.store)
            )))
        }
    };
    let store = backend.records;
    let password = acc.password().map_err(|m| anyhow!("{account}: {m}"))?;
    let engine = Engine::start(config.browser.clone())?;
    let started = std::time::Instant::now();
    let say = |line: String| eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
    let creds = login::Credentials {
        username: acc.username.clone(),
        password,
    };
    let who = SignIn {
        target: &t.name,
        login: &login_cfg,
        account: &acc.id,
        proxy: acc.proxy.as_deref(),
        navigation_timeout: t
            .navigation_timeout
            .unwrap_or(config.browser.navigation_timeout),
        max_age: t.max_age,
    };
    let result = engine.warmer.sign_in(&who, &creds, &say).await;
    engine.stop().await;
    let session = result?;
    store.put_session(&session).await?;
    say(format!(
        "signed in; stored session {} ({} cookies)",
        session.id,
        session.cookies.len()
    ));
    print_session(&session);
    Ok(ExitCode::SUCCESS)
}
