//! The body of `POST /api/v1/sessions`, as today's clients send it and as seed 002 documents
//! it (`{"adapter": "redis", "ttl": 3600, "browser": {"userAgent": "Custom Agent",
//! "viewport": {"width": 1280, "height": 800}}}`), parsed into one [`CreateSpec`].
//!
//! - `adapter` names a storage backend (`sled`, `memory`, `redis`, `mongodb`). A daemon has
//!   one, chosen in its config (`store.backend`), so the field is accepted when it names that
//!   one and refused with 400 otherwise, saying which backend is configured.
//! - `ttl` is seconds when a number (seed 002's `defaultTTL: 1800`), a duration when a
//!   string (`"30m"`); 1 s to 24 h either way.
//! - `browser.userAgent` is the User-Agent the session is earned and served with (see
//!   `fingerprint::custom` for what that does to client hints); `browser.viewport` the window
//!   size the page sees.

use axum::http::StatusCode;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use utoipa::ToSchema;

use super::ApiError;

/// The storage backends an `adapter` may name (seed 002's adapters and warmer's own).
pub const ADAPTERS: [&str; 4] = ["sled", "memory", "redis", "mongodb"];

/// The longest `ttl` a caller may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Longest `browser.userAgent` accepted (real ones are under 300 characters).
pub const MAX_USER_AGENT: usize = 512;

/// A session's lifetime as sent: seconds (`3600`) or a duration (`"30m"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ttl {
    /// A JSON number: whole seconds.
    Seconds(u64),
    /// A JSON string: a duration as `humantime` reads it (`30m`, `1h 30m`, `90s`).
    Duration(String),
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TtlVisitor;
        impl Visitor<'_> for TtlVisitor {
            type Value = Ttl;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds as a whole number, or a duration string such as \"30m\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ttl, E> {
                Ok(Ttl::Seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ttl, E> {
                u64::try_from(v)
                    .map(Ttl::Seconds)
                    .map_err(|_| E::custom("ttl: seconds must not be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ttl, E> {
                if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
                    Ok(Ttl::Seconds(v as u64))
                } else {
                    Err(E::custom(
                        "ttl: seconds must be a whole, non-negative number",
                    ))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ttl, E> {
                Ok(Ttl::Duration(v.to_string()))
            }
        }
        d.deserialize_any(TtlVisitor)
    }
}

impl utoipa::PartialSchema for Ttl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(MAX_TTL.as_secs()))
                    .description(Some("seconds")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("a duration, e.g. 30m")),
            )
            .into()
    }
}

impl ToSchema for Ttl {}

impl Ttl {
    /// The lifetime, 1 s to [`MAX_TTL`].
    ///
    /// # Errors
    /// [`Seed002Error::Ttl`] when out of range or not a duration.
    pub fn duration(&self) -> Result<Duration, Seed002Error> {
        let d = match self {
            Ttl::Seconds(s) => Duration::from_secs(*s),
            Ttl::Duration(text) => humantime::parse_duration(text.trim()).map_err(|_| {
                Seed002Error::Ttl(format!(
                    "invalid duration {text:?}: use seconds (3600) or a duration (\"30m\")"
                ))
            })?,
        };
        if d.is_zero() || d > MAX_TTL {
            return Err(Seed002Error::Ttl("must be between 1s and 24h".into()));
        }
        Ok(d)
    }
}

/// `browser.viewport`: the window's inner size the page sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewportBody {
    /// CSS pixels, 320 to 7680.
    #[schema(minimum = 320, maximum = 7680)]
    pub width: u32,
    /// CSS pixels, 240 to 4320.
    #[schema(minimum = 240, maximum = 4320)]
    pub height: u32,
}

/// `browser`: how the session's browser presents itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrowserBody {
    /// The User-Agent to earn and serve the session with. A desktop Chrome UA of the running
    /// major keeps client hints coherent with it; any other is served without `sec-ch-ua*`
    /// and the fingerprint says `custom: true`.
    #[schema(max_length = 512)]
    pub user_agent: Option<String>,
    /// The viewport (default: the sampled profile's).
    pub viewport: Option<ViewportBody>,
}

/// A session to create now: today's fields and seed 002's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    /// Target name (default: the only/first target).
    #[schema(
        pattern = r"^(\.?[A-Za-z0-9_:-])*\.?$",
        min_length = 1,
        max_length = 200
    )]
    pub target: Option<String>,
    /// Event to warm on (default: a random event of the target).
    #[schema(
        pattern = r"^(\.?[A-Za-z0-9_:-])*\.?$",
        min_length = 1,
        max_length = 200
    )]
    pub event: Option<String>,
    /// Lifetime: seconds as a number (`3600`) or a duration string (`"30m"`); 1 s to 24 h
    /// (default: the target's max_age).
    pub ttl: Option<Ttl>,
    /// How the browser presents itself.
    pub browser: Option<BrowserBody>,
    /// Proxy for this session (http, https, socks4, socks5); only when the daemon's
    /// `server.allow_custom_proxies` is on (else 403).
    pub proxy: Option<String>,
    /// Seed 002's storage adapter: accepted when it names this daemon's `store.backend`
    /// (`sled`, `memory`, `redis`, `mongodb`), else 400 naming the configured one.
    #[schema(pattern = "^(sled|memory|redis|mongodb)$")]
    pub adapter: Option<String>,
}

/// What a valid body asks for, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateSpec {
    /// Target name, unchecked against the config (the handler does that).
    pub target: Option<String>,
    /// Event id, unchecked (the handler does that).
    pub event: Option<String>,
    /// Lifetime, 1 s to 24 h.
    pub ttl: Option<Duration>,
    /// The caller's User-Agent: printable ASCII, at most [`MAX_USER_AGENT`].
    pub user_agent: Option<String>,
    /// Inner window size (width, height), in range.
    pub viewport: Option<(u32, u32)>,
    /// A proxy URL of a supported scheme.
    pub proxy: Option<String>,
}

/// Why a body was refused (beyond serde's own shape errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Seed002Error {
    /// `adapter` names another backend than the configured one (or none known).
    #[error("adapter: {given:?} is not this daemon's store backend; it is configured with \"{configured}\" (store.backend){}",
        if ADAPTERS.contains(&given.to_ascii_lowercase().trim()) { String::new() } else { format!("; adapters are {}", ADAPTERS.join(", ")) })]
    Adapter {
        /// What the body said.
        given: String,
        /// `store.backend`.
        configured: String,
    },
    /// `ttl` out of range or unreadable.
    #[error("ttl: {0}")]
    Ttl(String),
    /// `browser.viewport` out of range.
    #[error("browser.viewport: {width}x{height} is out of range (320-7680 x 240-4320)")]
    Viewport {
        /// As sent.
        width: u32,
        /// As sent.
        height: u32,
    },
    /// `browser.userAgent` empty, too long or not printable ASCII.
    #[error("browser.userAgent: {0}")]
    UserAgent(String),
    /// `proxy` not a usable proxy URL.
    #[error("proxy: {0}")]
    Proxy(String),
}

impl From<Seed002Error> for ApiError {
    /// A wrong `adapter` is 400 (`adapter_not_configured`), as seed 002's clients expect of a
    /// bad request; out-of-range values are 422 like today's other body errors.
    fn from(e: Seed002Error) -> Self {
        match e {
            Seed002Error::Adapter { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "adapter_not_configured",
                e.to_string(),
            ),
            other => ApiError::unprocessable(other.to_string()),
        }
    }
}

/// Seed 002's adapter rule: `given` must name `configured` (case and surrounding blanks do
/// not matter).
///
/// # Errors
/// [`Seed002Error::Adapter`], naming the configured backend.
pub fn check_adapter(given: &str, configured: &str) -> Result<(), Seed002Error> {
    let name = given.trim().to_ascii_lowercase();
    if ADAPTERS.contains(&name.as_str()) && name == configured {
        Ok(())
    } else {
        Err(Seed002Error::Adapter {
            given: given.to_string(),
            configured: configured.to_string(),
        })
    }
}

/// Checks a caller's User-Agent: not blank, at most [`MAX_USER_AGENT`] characters, printable
/// ASCII only (it goes into a header and a CDP override).
///
/// # Errors
/// [`Seed002Error::UserAgent`].
pub fn check_user_agent(ua: &str) -> Result<(), Seed002Error> {
    if ua.trim().is_empty() {
        return Err(Seed002Error::UserAgent("must not be empty".into()));
    }
    if ua.len() > MAX_USER_AGENT {
        return Err(Seed002Error::UserAgent(format!(
            "at most {MAX_USER_AGENT} characters"
        )));
    }
    if !ua.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Seed002Error::UserAgent(
            "printable ASCII only (no control characters)".into(),
        ));
    }
    Ok(())
}

impl CreateSessionBody {
    /// Checks the body against the daemon's `store.backend` (`configured_backend`, e.g.
    /// `"sled"`) and returns what it asks for.
    ///
    /// # Errors
    /// The first [`Seed002Error`] found: adapter, ttl, browser, proxy.
    pub fn into_spec(self, configured_backend: &str) -> Result<CreateSpec, Seed002Error> {
        if let Some(a) = &self.adapter {
            check_adapter(a, configured_backend)?;
        }
        let ttl = self.ttl.as_ref().map(Ttl::duration).transpose()?;
        let (user_agent, viewport) = match self.browser {
            Some(b) => {
                if let Some(ua) = &b.user_agent {
                    check_user_agent(ua)?;
                }
                let viewport = b
                    .viewport
                    .map(|v| {
                        if (320..=7680).contains(&v.width) && (240..=4320).contains(&v.height) {
                            Ok((v.width, v.height))
                        } else {
                            Err(Seed002Error::Viewport {
                                width: v.width,
                                height: v.height,
                            })
                        }
                    })
                    .transpose()?;
                (b.user_agent, viewport)
            }
            None => (None, None),
        };
        if let Some(p) = &self.proxy {
            crate::config::check_proxy(p).map_err(|e| Seed002Error::Proxy(e.to_string()))?;
        }
        Ok(CreateSpec {
            target: self.target,
            event: self.event,
            ttl,
            user_agent,
            viewport,
            proxy: self.proxy,
        })
    }
}

/// A JSON body as seed 002's documented `curl ... -d '{...}'` sends it: curl's `-d` labels
/// the body `application/x-www-form-urlencoded` unless told otherwise, so for the seed's
/// routes (`POST /api/v1/sessions`, `POST /api/scrape`) a body labelled so (or not labelled)
/// is read as JSON too. A body labelled anything else goes through [`AppJson`]'s rules
/// (`415` unless JSON). Cross-site form posts stay refused: the edge answers a foreign
/// `Origin` with 403 before any handler (`api::edge`).
///
/// [`AppJson`]: super::extract::AppJson
#[derive(Debug, Clone, Copy, Default)]
pub struct SeedJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for SeedJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let curl_default = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes())
            .is_none_or(|v| {
                v.len() >= 33 && v[..33].eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
            });
        if !curl_default {
            let super::extract::AppJson(v) =
                super::extract::AppJson::<T>::from_request(req, state).await?;
            return Ok(Self(v));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    e.body_text(),
                )
            })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Ok(v) if de.end().is_ok() => Ok(Self(v)),
            Ok(_) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            )),
            Err(e) if e.inner().is_data() => Err(ApiError::unprocessable(format!(
                "Failed to deserialize the JSON body into the target type: {e}"
            ))),
            Err(_) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<CreateSessionBody, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn seed_002s_body_as_written_parses() {
        let b = parse(
            r#"{"adapter": "redis", "ttl": 3600, "browser": {"userAgent": "Custom Agent", "viewport": {"width": 1280, "height": 800}}}"#,
        )
        .unwrap();
        assert_eq!(b.adapter.as_deref(), Some("redis"));
        assert_eq!(b.ttl, Some(Ttl::Seconds(3600)));
        let spec = b.clone().into_spec("redis").unwrap();
        assert_eq!(spec.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(spec.user_agent.as_deref(), Some("Custom Agent"));
        assert_eq!(spec.viewport, Some((1280, 800)));
        assert_eq!(spec.target, None);
        // The same body against a sled daemon: 400, naming the configured backend.
        let e = b.into_spec("sled").unwrap_err();
        assert!(matches!(e, Seed002Error::Adapter { .. }));
        let api = ApiError::from(e.clone());
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert_eq!(api.code, "adapter_not_configured");
        assert!(
            api.message.contains("\"sled\"") && api.message.contains("\"redis\""),
            "{}",
            api.message
        );
    }

    #[test]
    fn todays_body_still_parses() {
        let b = parse(
            r#"{"target": "tickets", "event": "123", "ttl": "30m", "browser": {"viewport": {"width": 1024, "height": 700}}, "proxy": "socks5://127.0.0.1:1080"}"#,
        )
        .unwrap();
        let spec = b.into_spec("sled").unwrap();
        assert_eq!(spec.target.as_deref(), Some("tickets"));
        assert_eq!(spec.event.as_deref(), Some("123"));
        assert_eq!(spec.ttl, Some(Duration::from_secs(1800)));
        assert_eq!(spec.viewport, Some((1024, 700)));
        assert_eq!(spec.proxy.as_deref(), Some("socks5://127.0.0.1:1080"));
        assert_eq!(spec.user_agent, None);
        assert_eq!(
            parse("{}").unwrap().into_spec("sled").unwrap(),
            CreateSpec::default()
        );
    }

    #[test]
    fn the_adapter_must_name_the_configured_backend() {
        for backend in ADAPTERS {
            assert_eq!(check_adapter(backend, backend), Ok(()));
            assert_eq!(
                check_adapter(&format!(" {} ", backend.to_uppercase()), backend),
                Ok(())
            );
        }
        let e = check_adapter("memory", "sled").unwrap_err().to_string();
        assert!(e.contains("configured with \"sled\""), "{e}");
        assert!(
            !e.contains("adapters are"),
            "a known adapter needs no list: {e}"
        );
        let e = check_adapter("postgres", "sled").unwrap_err().to_string();
        assert!(
            e.contains("\"postgres\"") && e.contains("sled, memory, redis, mongodb"),
            "{e}"
        );
        assert!(check_adapter("", "sled").is_err());
    }

    #[test]
    fn ttl_is_seconds_as_a_number_and_a_duration_as_a_string() {
        let ttl = |json: &str| {
            parse(&format!("{{\"ttl\": {json}}}"))
                .map_err(|e| e.to_string())
                .and_then(|b| b.into_spec("sled").map_err(|e| e.to_string()))
                .map(|s| s.ttl.unwrap())
        };
        assert_eq!(ttl("1800"), Ok(Duration::from_secs(1800)));
        assert_eq!(ttl("1800.0"), Ok(Duration::from_secs(1800)));
        assert_eq!(ttl("\"90s\""), Ok(Duration::from_secs(90)));
        assert_eq!(ttl("\"1h 30m\""), Ok(Duration::from_secs(5400)));
        assert_eq!(ttl("86400"), Ok(MAX_TTL));
        for bad in ["0", "86401", "\"0s\"", "\"25h\"", "\"soon\""] {
            let e = ttl(bad).unwrap_err();
            assert!(e.starts_with("ttl: "), "{bad}: {e}");
        }
        for bad in ["-5", "1.5", "true", "[1]"] {
            assert!(ttl(bad).is_err(), "{bad}");
        }
        let e = ttl("-5").unwrap_err();
        assert!(e.contains("negative"), "{e}");
    }

    #[test]
    fn browser_fields_are_checked() {
        let spec = |json: &str| parse(json).unwrap().into_spec("sled");
        let e = spec(r#"{"browser": {"viewport": {"width": 100, "height": 800}}}"#).unwrap_err();
        assert_eq!(
            e,
            Seed002Error::Viewport {
                width: 100,
                height: 800
            }
        );
        assert_eq!(ApiError::from(e).status, StatusCode::UNPROCESSABLE_ENTITY);
        for ua in ["", "   ", "Agent\r\nX-Evil: 1", "é-agent"] {
            let body = serde_json::json!({"browser": {"userAgent": ua}}).to_string();
            assert!(
                matches!(spec(&body), Err(Seed002Error::UserAgent(_))),
                "{ua:?}"
            );
        }
        let long = serde_json::json!({"browser": {"userAgent": "a".repeat(MAX_USER_AGENT + 1)}});
        assert!(spec(&long.to_string()).is_err());
        assert!(matches!(
            spec(r#"{"proxy": "ftp://x"}"#),
            Err(Seed002Error::Proxy(_))
        ));
        // Unknown fields stay refused (typos are not silently ignored), in every object.
        assert!(parse(r#"{"adaptor": "sled"}"#).is_err());
        assert!(parse(r#"{"browser": {"useragent": "x"}}"#).is_err());
        assert!(
            parse(r#"{"browser": {"viewport": {"width": 1, "height": 1, "dpr": 2}}}"#).is_err()
        );
    }

    #[test]
    fn the_schema_offers_both_ttl_shapes() {
        let schema = serde_json::to_value(<Ttl as utoipa::PartialSchema>::schema()).unwrap();
        let kinds: Vec<&str> = schema["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["integer", "string"]);
    }
}
