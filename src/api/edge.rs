//! The edge rules every request meets before its handler: which `Host` may be addressed and
//! which foreign `Origin` may call the API (with CORS for those only), and the listener that
//! turns hyper's own bodiless parse errors (a 100 kB path: 414) into the JSON error shape.
//!
//! - Without a token, a `Host` that is not loopback (`127.0.0.0/8`, `localhost`, `[::1]`) or
//!   listed in `server.allowed_hosts` gets 421: a page on another name (DNS rebinding) cannot
//!   read the API through the operator's browser.
//! - A request with an `Origin` other than the daemon's own (`http://` + its `Host`) gets 403
//!   unless the origin is listed in `server.allowed_origins`; listed ones get CORS headers and
//!   their preflights answered, nobody else gets CORS headers. `Origin: null` is foreign.
//!
//! The checks compare bytes in place: nothing is allocated per request.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ApiError;
use crate::config::ServerConfig;

/// Which hosts and origins the API accepts besides loopback ones and its own.
#[derive(Debug, Default)]
pub struct EdgePolicy {
    /// `server.allowed_hosts`, lowercased: name (brackets kept for IPv6) and optional port.
    hosts: Box<[(Box<str>, Option<u16>)]>,
    /// `server.allowed_origins` as browsers serialise them (`http://dash.example:8080`).
    origins: Box<[HeaderValue]>,
}

/// What the edge decided about a request.
pub enum Verdict {
    /// No foreign origin: answer as usual, no CORS headers.
    Pass,
    /// A listed foreign origin: answer, echoing it in `Access-Control-Allow-Origin`.
    Cors(HeaderValue),
    /// Send this instead (421, 403, or a listed origin's preflight answered: 204).
    Answer(Response),
}

/// Methods and request headers a listed origin may use (its preflight's answer).
const CORS_METHODS: &str = "GET, POST, DELETE";
/// Request headers a listed origin may send: the bearer token, JSON bodies, and the session
/// id header of the v1 API. Anything else fails the browser's preflight.
const CORS_HEADERS: &str = "authorization, content-type, x-session-id";

impl EdgePolicy {
    /// The policy of `[server]` (validated by the config: bad entries never get here).
    pub fn new(server: &ServerConfig) -> Self {
        let hosts = server
            .allowed_hosts
            .iter()
            .filter_map(|h| {
                let (name, port) = split_host(h.trim())?;
                Some((name.to_ascii_lowercase().into_boxed_str(), port))
            })
            .collect();
        let origins = server
            .allowed_origins
            .iter()
            .filter_map(|o| url::Url::parse(o.trim()).ok())
            .filter_map(|u| HeaderValue::from_str(&u.origin().ascii_serialization()).ok())
            .collect();
        Self { hosts, origins }
    }

    /// Whether `host` (a `Host` value) is loopback or listed.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        is_loopback_name(name)
            || self.hosts.iter().any(|(n, p)| {
                n.eq_ignore_ascii_case(name) && p.is_none_or(|p| p == port.unwrap_or(80))
            })
    }

    /// The listed origin equal to `origin`, if any.
    fn listed(&self, origin: &HeaderValue) -> Option<&HeaderValue> {
        let o = origin.as_bytes();
        self.origins
            .iter()
            .find(|v| v.as_bytes().eq_ignore_ascii_case(o))
    }

    /// Applies the rules to a request (the `Host` rule when `host_rule`).
    pub fn check(&self, host_rule: bool, req: &Request) -> Verdict {
        let headers = req.headers();
        let host = request_host(req);
        if host_rule && !host.is_some_and(|h| self.host_allowed(h)) {
            return Verdict::Answer(
                ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "host_not_allowed",
                    "this Host is not served: use a loopback address or add the name to \
                 server.allowed_hosts",
                )
                .into_response(),
            );
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Verdict::Pass;
        };
        if host.is_some_and(|h| is_own_origin(origin.as_bytes(), h)) {
            return Verdict::Pass;
        }
        let Some(listed) = self.listed(origin) else {
            return Verdict::Answer(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "requests from this Origin are not allowed: add it to server.allowed_origins",
                )
                .into_response(),
            );
        };
        if req.method() == Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, listed.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(CORS_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(CORS_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
            return Verdict::Answer(resp);
        }
        Verdict::Cors(listed.clone())
    }
}

/// Adds the CORS headers of a listed origin to its answer.
pub fn add_cors(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
}

/// The host the request addresses: the URI's authority (HTTP/2, absolute form), else `Host`.
fn request_host(req: &Request) -> Option<&str> {
    match req.uri().authority() {
        Some(a) => Some(a.as_str()),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok()),
    }
}

/// `name[:port]` → name and port; IPv6 names keep their brackets. `None` when malformed.
fn split_host(h: &str) -> Option<(&str, Option<u16>)> {
    let (name, rest) = if h.starts_with('[') {
        let end = h.find(']')?;
        (&h[..=end], &h[end + 1..])
    } else {
        match h.find(':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, ""),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match rest {
        "" => None,
        r => Some(r.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    Some((name, port))
}

/// `localhost`, an address in 127.0.0.0/8, or `[::1]` (also `[::ffff:127.x.y.z]`).
fn is_loopback_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|a| {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        });
    }
    name.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// Whether `origin` is `http://` + `host` (ports compared with 80 as the default).
fn is_own_origin(origin: &[u8], host: &str) -> bool {
    const SCHEME: &[u8] = b"http://";
    if origin.len() < SCHEME.len() || !origin[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return false;
    }
    let Ok(rest) = std::str::from_utf8(&origin[SCHEME.len()..]) else {
        return false;
    };
    match (split_host(rest), split_host(host)) {
        (Some((on, op)), Some((hn, hp))) => {
            on.eq_ignore_ascii_case(hn) && op.unwrap_or(80) == hp.unwrap_or(80)
        }
        _ => false,
    }
}

/// A connection whose bodiless error answers from hyper itself (a request line or headers it
/// cannot parse: 400, a URI over 64 KiB: 414, headers too large: 431), which never reach the
/// router, are rewritten into the JSON error shape. Every other byte passes untouched; the
/// check is a prefix comparison on the first buffer of a write.
pub struct JsonErrorsIo<T> {
    inner: T,
    /// The replacement answer still to write, and how far it got.
    pending: Option<(Vec<u8>, usize)>,
    /// Set once replaced: hyper closes the connection after such an answer; anything more it
    /// writes is dropped.
    replaced: bool,
}

impl<T> JsonErrorsIo<T> {
    /// Wraps an accepted connection.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
            replaced: false,
        }
    }
}

/// The JSON answer replacing hyper's bodiless error `head`, if it is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let (status, code, message) = if head.starts_with(b"HTTP/1.1 414 ") {
        (
            "414 URI Too Long",
            "uri_too_long",
            "the request URI is longer than 64 KiB",
        )
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            "headers_too_large",
            "the request headers are too large",
        )
    } else if head.starts_with(b"HTTP/1.1 400 ") {
        ("400 Bad Request", "bad_request", "malformed HTTP request")
    } else {
        return None;
    };
    // hyper's own error answers have no body; the router's always have a content type.
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let lower = head[..end].to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"\r\ncontent-type:") || !has(b"\r\ncontent-length: 0") {
        return None;
    }
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> JsonErrorsIo<T> {
    /// Writes what is left of the replacement.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Whether this write is hyper's bodiless error answer; if so it is swapped.
    fn intercept(&mut self, first: &[u8]) -> bool {
        if self.replaced {
            return true;
        }
        if !first.starts_with(b"HTTP/1.1 4") {
            return false;
        }
        match replacement(first) {
            Some(r) => {
                self.pending = Some((r, 0));
                self.replaced = true;
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrorsIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrorsIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.drive(cx))?;
        if this.intercept(buf) {
            std::task::ready!(this.drive(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.drive(cx))?;
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        if this.intercept(first) {
            std::task::ready!(this.drive(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP listener for `axum::serve` whose connections are [`JsonErrorsIo`].
pub struct JsonErrorsListener(pub tokio::net::TcpListener);

impl axum::serve::Listener for JsonErrorsListener {
    type Io = JsonErrorsIo<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (JsonErrorsIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], origins: &[&str]) -> EdgePolicy {
        EdgePolicy::new(&ServerConfig {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        })
    }

    #[test]
    fn loopback_and_listed_hosts() {
        let p = policy(&["warmer.lan", "Dash.Example:8080"], &[]);
        for ok in [
            "127.0.0.1:3000",
            "127.9.8.7",
            "localhost",
            "LOCALHOST:1",
            "[::1]:3000",
            "[::1]",
            "[::ffff:127.0.0.1]:80",
            "warmer.lan:9",
            "dash.example:8080",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "128.0.0.1",
            "localhost.evil.example",
            "dash.example:8081",
            "dash.example",
            "[::2]",
            "127.0.0.1:notaport",
            "",
            ":3000",
            "127.0.0.1:3000:1",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn own_origin_is_http_plus_host() {
        assert!(is_own_origin(b"http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(is_own_origin(b"HTTP://LocalHost:3000", "localhost:3000"));
        assert!(is_own_origin(b"http://localhost", "localhost:80"));
        assert!(!is_own_origin(b"http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!is_own_origin(b"https://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(!is_own_origin(b"null", "127.0.0.1:3000"));
        assert!(!is_own_origin(b"http://127.0.0.1:3000/x", "127.0.0.1:3000"));
    }

    #[test]
    fn only_hypers_bodiless_errors_are_replaced() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let r = String::from_utf8(replacement(hyper).unwrap()).unwrap();
        assert!(
            r.contains("\r\n\r\n{\"error\":{\"code\":\"uri_too_long\""),
            "{r}"
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     content-length: 0\r\n\r\n";
        assert!(replacement(ours).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
