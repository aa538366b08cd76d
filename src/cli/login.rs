//! `warmer login`: sign one account in by hand, with progress, and store the session.

use anyhow::{anyhow, bail, Result};
use std::process::ExitCode;

use super::engine::Engine;
use super::output::print_session;
use super::target::login_target;
use crate::config::Config;
use crate::session::{now_ms, Session};
use crate::store::{SledStore, Store};

pub(super) async fn login_by_hand(
    config: &Config,
    target: Option<&str>,
    account: &str,
) -> Result<ExitCode> {
    use crate::warm::login;
    let t = login_target(config, target)?.clone();
    let login_cfg = t.login.clone().expect("login target");
    let dir = t
        .accounts_dir
        .clone()
        .ok_or_else(|| anyhow!("target {:?} has no accounts_dir", t.name))?;
    crate::accounts::check_id(account)?;
    let acc = crate::accounts::load_file(&dir.join(format!("{account}.toml")), &t.name)?;
    let store = match SledStore::open_configured(&config.store) {
        Ok(s) => s,
        Err(crate::store::StoreError::Locked { .. }) => bail!(
            "the daemon is running and keeps {account:?} signed in; use `warmer accounts refresh`"
        ),
        Err(e) => return Err(e.into()),
    };
    let password = acc.password().map_err(|m| anyhow!("{account}: {m}"))?;
    let engine = Engine::start(config.browser.clone())?;
    let started = std::time::Instant::now();
    let say = |line: String| eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
    let result = async {
        say("starting browser and opening a fresh context".into());
        let sup = engine.warmer.supervisor();
        let ctx = sup.new_context(acc.proxy.as_deref()).await?;
        let out = async {
            let fp = engine.warmer.sample_fingerprint().await?;
            ctx.apply_fingerprint(&fp).await?;
            say(format!(
                "signing in as {} at {}",
                acc.username,
                crate::browser::redact_url(&login_cfg.url)
            ));
            let nav = t
                .navigation_timeout
                .unwrap_or(config.browser.navigation_timeout);
            let creds = login::Credentials {
                username: acc.username.clone(),
                password,
            };
            login::run_steps(&ctx, &login_cfg, &creds, nav, &|l| say(l)).await?;
            say("checking the session".into());
            if !login::check(&ctx, &login_cfg.check, nav).await? {
                return Err(login::LoginError::StillSignedOut.into());
            }
            let (cookies, origins, observed) = crate::warm::capture(&ctx).await?;
            let now = now_ms();
            Ok::<_, anyhow::Error>(Session {
                id: Session::new_id(),
                target: t.name.clone(),
                event: None,
                account: Some(acc.id.clone()),
                url: login_cfg
                    .check
                    .url
                    .clone()
                    .unwrap_or_else(|| login_cfg.url.clone()),
                state: crate::session::SessionState::Ready,
                fingerprint: fp,
                proxy: acc.proxy.clone(),
                cookies,
                origins,
                observed: Some(observed),
                created_at: now,
                refreshed_at: now,
                expires_at: now + t.max_age.as_millis() as u64,
                health: Default::default(),
            })
        }
        .await;
        ctx.dispose().await;
        out
    }
    .await;
    engine.stop().await;
    let session = result?;
    store.put_session(&session)?;
    say(format!(
        "signed in; stored session {} ({} cookies)",
        session.id,
        session.cookies.len()
    ));
    print_session(&session);
    Ok(ExitCode::SUCCESS)
}
