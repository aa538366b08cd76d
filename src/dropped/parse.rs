//! The three formats a dropped session file may be in, parsed into cookies and localStorage:
//! Playwright's `storageState` JSON, a Netscape `cookies.txt` (curl's `#HttpOnly_` lines
//! included) and warmer's own session record (`warmer sessions export --format json`).
//!
//! Nothing here prints a cookie value: errors name the file, the field or the line, never
//! what it held.

use serde::Deserialize;
use serde_json::Value;

use super::{DroppedError, DroppedFormat};
use crate::session::{Cookie, OriginStorage, Session};

/// What a file held, before the target's domains are checked.
pub(super) struct Parsed {
    /// Which of the three formats it was.
    pub format: DroppedFormat,
    /// Every cookie, expired ones included.
    pub cookies: Vec<Cookie>,
    /// localStorage per origin (none in a cookies.txt).
    pub origins: Vec<OriginStorage>,
    /// The whole record, for warmer's own format (fingerprint, proxy, URL).
    pub record: Option<Box<Session>>,
}

/// Parses `text` (the contents of `path`, which only names it in errors). A `.json` file, or
/// any file whose first non-blank character is `{`, is JSON; anything else is read as
/// `cookies.txt`.
///
/// # Errors
/// [`DroppedError::NotJson`], [`DroppedError::Unrecognised`] or
/// [`DroppedError::BadCookiesTxt`], naming the file.
pub(super) fn parse(path: &str, text: &str, json_extension: bool) -> Result<Parsed, DroppedError> {
    if json_extension || text.trim_start().starts_with('{') {
        parse_json(path, text)
    } else {
        parse_cookies_txt(path, text)
    }
}

/// Playwright's cookie (`storageState.cookies[]`): `expires` in seconds, -1 for a session
/// cookie; `sameSite` `Strict`, `Lax` or `None`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaywrightCookie {
    name: String,
    value: String,
    domain: String,
    #[serde(default = "root_path")]
    path: String,
    /// Seconds since 1970; `-1` (or absent) means a session cookie, mapped to `None`.
    #[serde(default)]
    expires: Option<f64>,
    #[serde(default)]
    http_only: bool,
    #[serde(default)]
    secure: bool,
    /// Kept as written (`Strict`, `Lax`, `None`); not validated here.
    #[serde(default)]
    same_site: Option<String>,
}

impl From<PlaywrightCookie> for Cookie {
    /// An empty path is the whole site; Playwright's `-1` (a session cookie) is no expiry.
    fn from(c: PlaywrightCookie) -> Self {
        let PlaywrightCookie {
            name,
            value,
            domain,
            path,
            expires,
            http_only,
            secure,
            same_site,
        } = c;
        Cookie {
            name,
            value,
            domain,
            path: if path.is_empty() { root_path() } else { path },
            expires: expires.filter(|e| *e > 0.0),
            http_only,
            secure,
            same_site,
        }
    }
}

/// The default cookie path when a file leaves it out or empty: the whole site.
fn root_path() -> String {
    "/".to_string()
}

/// One `localStorage` item of a Playwright origin.
#[derive(Deserialize)]
struct PlaywrightItem {
    name: String,
    value: String,
}

/// One origin of `storageState.origins[]`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaywrightOrigin {
    /// `scheme://host[:port]` the items belong to.
    origin: String,
    /// Its items in the order Playwright wrote them.
    #[serde(default)]
    local_storage: Vec<PlaywrightItem>,
}

/// Playwright's `storageState` (what `context.storageState({ path })` writes).
#[derive(Deserialize)]
struct StorageState {
    /// Required: a JSON object without `cookies` is not taken for a storageState.
    cookies: Vec<PlaywrightCookie>,
    /// localStorage per origin; older Playwright files may leave it out.
    #[serde(default)]
    origins: Vec<PlaywrightOrigin>,
}

/// A serde error at a path, without echoing a value that might be a secret (serde_json's
/// "invalid type" messages quote what they found).
fn field_error(path: &str, e: serde_path_to_error::Error<serde_json::Error>) -> DroppedError {
    let at = e.path().to_string();
    let inner = e.into_inner();
    let secret =
        at.ends_with("value") || at.contains("local_storage") || at.contains("localStorage");
    let message = if secret {
        format!("{at}: not a string (value not shown)")
    } else if at.is_empty() || at == "." {
        inner.to_string()
    } else {
        format!("{at}: {inner}")
    };
    DroppedError::Unrecognised {
        path: path.to_string(),
        message,
    }
}

/// Parses a JSON file as warmer's own record (told apart by its `fingerprint` and `target`
/// keys) or else as Playwright's `storageState`, which must have `cookies`.
///
/// # Errors
/// [`DroppedError::NotJson`] if it is not JSON at all, [`DroppedError::Unrecognised`] for a
/// non-object, a missing `cookies` or a field of the wrong type (via [`field_error`]).
fn parse_json(path: &str, text: &str) -> Result<Parsed, DroppedError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DroppedError::NotJson {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    let Some(obj) = value.as_object() else {
        return Err(DroppedError::Unrecognised {
            path: path.to_string(),
            message: "expected a JSON object".into(),
        });
    };
    // warmer's record always has its fingerprint and target; storageState never does.
    if obj.contains_key("fingerprint") && obj.contains_key("target") {
        let record: Session =
            serde_path_to_error::deserialize(value).map_err(|e| field_error(path, e))?;
        return Ok(Parsed {
            format: DroppedFormat::WarmerJson,
            cookies: record.cookies.clone(),
            origins: record.origins.clone(),
            record: Some(Box::new(record)),
        });
    }
    if !obj.contains_key("cookies") {
        return Err(DroppedError::Unrecognised {
            path: path.to_string(),
            message:
                "neither a Playwright storageState ({\"cookies\": [...], \"origins\": [...]}) \
                      nor a warmer session record (warmer sessions export --format json)"
                    .into(),
        });
    }
    let state: StorageState =
        serde_path_to_error::deserialize(value).map_err(|e| field_error(path, e))?;
    let cookies = state.cookies.into_iter().map(Cookie::from).collect();
    let origins = state
        .origins
        .into_iter()
        .map(|o| OriginStorage {
            origin: o.origin,
            local_storage: o
                .local_storage
                .into_iter()
                .map(|i| (i.name, i.value))
                .collect(),
        })
        .collect();
    Ok(Parsed {
        format: DroppedFormat::StorageState,
        cookies,
        origins,
        record: None,
    })
}

/// curl's prefix of an HttpOnly cookie's domain field.
const HTTP_ONLY_PREFIX: &str = "#HttpOnly_";

/// Reads a Netscape `cookies.txt`: tab-separated `domain, include-subdomains, path, secure,
/// expires, name, value`; `#` lines are comments except curl's `#HttpOnly_` prefix. Expiry
/// `0` or empty is a session cookie. A cookie listed twice (warmer's own export writes session
/// cookies twice, for curl and for Python) is kept once, the later line winning.
fn parse_cookies_txt(path: &str, text: &str) -> Result<Parsed, DroppedError> {
    let bad = |line: usize, message: &str| DroppedError::BadCookiesTxt {
        path: path.to_string(),
        line,
        message: message.to_string(),
    };
    let mut cookies: Vec<Cookie> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        let (line, http_only) = match line.strip_prefix(HTTP_ONLY_PREFIX) {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        if line.trim().is_empty() || (!http_only && line.starts_with('#')) {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        // A cookie with an empty value may lose its trailing tab to an editor.
        let (domain, sub, cpath, secure, expires, name, value) = match fields.as_slice() {
            [d, s, p, sec, e, n, v] => (*d, *s, *p, *sec, *e, *n, *v),
            [d, s, p, sec, e, n] => (*d, *s, *p, *sec, *e, *n, ""),
            _ => {
                return Err(bad(
                    line_no,
                    &format!(
                        "expected 7 tab-separated fields (domain, include-subdomains, path, \
                         secure, expires, name, value), found {}",
                        fields.len()
                    ),
                ))
            }
        };
        let flag = |v: &str, what: &str| match v.to_ascii_uppercase().as_str() {
            "TRUE" => Ok(true),
            "FALSE" => Ok(false),
            _ => Err(bad(line_no, &format!("{what}: expected TRUE or FALSE"))),
        };
        let include_subdomains = flag(sub, "include-subdomains")?;
        let secure = flag(secure, "secure")?;
        if domain.is_empty() || name.is_empty() {
            return Err(bad(line_no, "empty domain or name"));
        }
        let expires = match expires.trim() {
            "" | "0" => None,
            e => match e.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Some(v),
                Ok(_) => None,
                Err(_) => return Err(bad(line_no, "expires: expected seconds since 1970")),
            },
        };
        // The flag says whether subdomains get it, which the record spells as a leading dot.
        let domain = if include_subdomains && !domain.starts_with('.') {
            format!(".{domain}")
        } else {
            domain.to_string()
        };
        let cookie = Cookie {
            name: name.to_string(),
            value: value.to_string(),
            domain,
            path: if cpath.is_empty() {
                root_path()
            } else {
                cpath.to_string()
            },
            expires,
            http_only,
            secure,
            same_site: None,
        };
        match cookies
            .iter_mut()
            .find(|c| c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path)
        {
            Some(same) => *same = cookie,
            None => cookies.push(cookie),
        }
    }
    Ok(Parsed {
        format: DroppedFormat::CookiesTxt,
        cookies,
        origins: Vec::new(),
        record: None,
    })
}
