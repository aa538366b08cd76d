//! What the commands print and write: a session for a person, private files.

use anyhow::{Context as _, Result};
use std::io::Write;
use std::path::Path;

use crate::session::Session;

pub(super) fn print_session(s: &Session) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "session   {}", s.id);
    let _ = writeln!(
        out,
        "target    {}  event {}",
        s.target,
        s.event.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "url       {}", crate::browser::redact_url(&s.url));
    let _ = writeln!(out, "identity  {}", s.fingerprint.user_agent);
    let _ = writeln!(
        out,
        "          {} · {}x{} · {} · {}",
        s.fingerprint.profile.ch_platform,
        s.fingerprint.viewport.0,
        s.fingerprint.viewport.1,
        s.fingerprint.locale,
        s.fingerprint.timezone
    );
    let names: Vec<String> = s
        .cookies
        .iter()
        .map(|c| {
            if c.http_only {
                format!("{} (HttpOnly)", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect();
    let _ = writeln!(out, "cookies   {}", names.join(", "));
    for o in &s.origins {
        let keys: Vec<&str> = o.local_storage.iter().map(|(k, _)| k.as_str()).collect();
        let _ = writeln!(out, "storage   {} : {}", o.origin, keys.join(", "));
    }
    if let Some(p) = &s.proxy {
        let _ = writeln!(out, "proxy     {}", crate::browser::redact_url(p));
    }
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

pub(super) fn write_private(path: &Path, body: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(body)?;
    Ok(())
}
