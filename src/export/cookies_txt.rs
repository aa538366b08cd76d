//! Netscape `cookies.txt` (curl, yt-dlp, Python's `http.cookiejar`) and wget's variant
//! without the `#HttpOnly_` prefix; why session cookies are written twice is in the module
//! docs of [`crate::export`].

use crate::session::{Cookie, Session};

/// `None` for a session cookie (CDP reports those as -1).
fn expiry_secs(c: &Cookie) -> Option<i64> {
    c.expires.filter(|e| *e > 0.0).map(|e| (e as i64).max(1))
}

/// All cookies in Netscape `cookies.txt` format: one line per cookie with the fields domain,
/// include-subdomains, path, secure, expires (seconds), name and value, separated by tabs.
/// HttpOnly cookies carry curl's `#HttpOnly_` prefix on the domain. A session cookie is written
/// twice, with expiry `0` (curl, wget) and then with an empty one (Python's `http.cookiejar`):
/// see the module docs.
pub fn cookies_txt(s: &Session) -> String {
    netscape(s, true)
}

/// [`cookies_txt`] without the `#HttpOnly_` prefix, for wget (which skips prefixed lines).
pub fn cookies_txt_wget(s: &Session) -> String {
    netscape(s, false)
}

fn netscape(s: &Session, http_only_prefix: bool) -> String {
    let mut out = String::from(
        "# Netscape HTTP Cookie File\n\
         # Exported by session-warmer. Contains secrets: keep it private.\n\
         # Session cookies are listed twice: expiry 0 for curl and wget, empty for Python's\n\
         # http.cookiejar (MozillaCookieJar.load(ignore_discard=True)); each reads its own.\n\n",
    );
    let bool_field = |b: bool| if b { "TRUE" } else { "FALSE" };
    for c in &s.cookies {
        let domain_prefix = if http_only_prefix && c.http_only {
            "#HttpOnly_"
        } else {
            ""
        };
        let line = |expires: &str| {
            format!(
                "{domain_prefix}{}\t{}\t{}\t{}\t{expires}\t{}\t{}\n",
                c.domain,
                bool_field(c.domain.starts_with('.')),
                c.path,
                bool_field(c.secure),
                c.name,
                c.value,
            )
        };
        match expiry_secs(c) {
            Some(e) => out.push_str(&line(&e.to_string())),
            None => {
                out.push_str(&line("0"));
                out.push_str(&line(""));
            }
        }
    }
    out
}
