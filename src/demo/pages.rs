//! The demo site's HTML: index, event page (with its inline challenge script), login form,
//! account page. Plain strings; the only dynamic text is escaped.

use std::{sync::OnceLock, time::Duration};

use super::catalog::{self, Event};

/// Target size of the `large` fault's page.
const LARGE_PAGE_BYTES: usize = 5 * 1024 * 1024;

/// The event page's script. It reads the event id and nonce from `<body data-*>`, waits
/// `__DELAY__` ms, then sets the UA-bound `challenge` cookie and two localStorage keys, and only
/// then marks the page ready. `fnv` must stay identical to `challenge::fnv1a32`.
/// `__AFTER_COOKIE__` is empty on a plain page; the delayed-token page puts [`TOKEN_MARK`]
/// there.
const EVENT_SCRIPT: &str = r#"(function () {
  var b = document.body, id = b.dataset.event, nonce = b.dataset.nonce;
  function fnv(s) {
    var d = new TextEncoder().encode(s), h = 0x811c9dc5;
    for (var i = 0; i < d.length; i++) { h ^= d[i]; h = Math.imul(h, 0x01000193); }
    return (h >>> 0).toString(16).padStart(8, "0");
  }
  setTimeout(function () {
    document.cookie = "challenge=" + nonce + "." + fnv(navigator.userAgent + nonce) + "; path=/; max-age=7200";__AFTER_COOKIE__
    localStorage.setItem("demo:last_event", id);
    var n = parseInt(localStorage.getItem("demo:visits") || "0", 10) || 0;
    localStorage.setItem("demo:visits", String(n + 1));
    b.dataset.ready = "1";
    document.getElementById("status").textContent = "ready";
  }, __DELAY__);
})();"#;

/// Runs right after the delayed-token page sets its cookie: the time it did (epoch ms) and the
/// `#app-ready` marker.
const TOKEN_MARK: &str = r#"
    b.dataset.tokenAt = String(performance.timeOrigin + performance.now());
    var ready = document.createElement("div");
    ready.id = "app-ready";
    ready.textContent = "app ready";
    b.appendChild(ready);"#;

/// The `token_http=1` page's extra script: after `__DELAY__` ms it only asks for the HttpOnly
/// `http_token` (no DOM change, no script-visible cookie).
const HTTP_TOKEN_SCRIPT: &str = r#"setTimeout(function () {
  fetch("/__demo/token", { method: "POST", credentials: "same-origin" });
}, __DELAY__);"#;

/// The readiness knobs of one event page load (see `readiness`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EventOptions {
    /// `token_delay`, as picked for this load.
    pub token_delay: Option<Duration>,
    /// `token_http=1`: the delay fetches the HttpOnly token instead of setting the cookie.
    pub token_http: bool,
    /// `assets=1`: one image, stylesheet, font and video.
    pub assets: bool,
}

/// What to add to an event page for a fault that still serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventExtra {
    /// The plain page.
    None,
    /// Pad to about 5 MB.
    Large,
    /// Add an image that never finishes loading.
    NeverLoad,
}

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps a body in the common document shell.
fn document(title: &str, body_attrs: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{} - Demo Tickets</title>\n</head>\n<body{body_attrs}>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

/// `GET /`: links to every event and to the login page.
pub(crate) fn index() -> String {
    let mut body = String::from("<h1>Demo Tickets</h1>\n<ul id=\"events\">\n");
    for e in catalog::all() {
        body.push_str(&format!(
            "<li><a href=\"/event/{id}\">{title}</a> ({price})</li>\n",
            id = e.id,
            title = escape(e.title),
            price = e.price_label()
        ));
    }
    body.push_str("</ul>\n<p><a href=\"/login\">Sign in</a></p>");
    document("Events", "", &body)
}

/// `GET /event/{id}`: the event page for `event`, embedding the visitor's `nonce`.
pub(crate) fn event(
    event: &Event,
    nonce: &str,
    js_delay: Duration,
    extra: EventExtra,
    options: EventOptions,
) -> String {
    // The cookie comes after `token_delay` (with the marker) unless the delay is the HttpOnly
    // token's, which a second script fetches.
    let (delay, after_cookie) = match options.token_delay {
        Some(d) if !options.token_http => (d, TOKEN_MARK),
        _ => (js_delay, ""),
    };
    let mut script = EVENT_SCRIPT
        .replace("__DELAY__", &delay.as_millis().to_string())
        .replace("__AFTER_COOKIE__", after_cookie);
    if let (Some(d), true) = (options.token_delay, options.token_http) {
        script.push('\n');
        script.push_str(&HTTP_TOKEN_SCRIPT.replace("__DELAY__", &d.as_millis().to_string()));
    }
    let stall = match extra {
        EventExtra::NeverLoad => "<img src=\"/__demo/stall\" alt=\"\" width=\"1\" height=\"1\">\n",
        _ => "",
    };
    let assets = if options.assets {
        super::readiness::ASSETS_HTML
    } else {
        ""
    };
    let filler = match extra {
        EventExtra::Large => large_filler(),
        _ => "",
    };
    let body = format!(
        "<h1 id=\"title\">{title}</h1>\n<p id=\"price\">{price}</p>\n\
         <p id=\"status\">loading</p>\n{stall}{assets}<script>\n{script}\n</script>\n{filler}",
        title = escape(event.title),
        price = event.price_label(),
    );
    let mut attrs = format!(
        " data-event=\"{}\" data-nonce=\"{}\"",
        escape(event.id),
        escape(nonce)
    );
    if let Some(d) = options.token_delay {
        attrs.push_str(&format!(" data-token-delay=\"{}\"", d.as_millis()));
    }
    document(event.title, &attrs, &body)
}

/// About 5 MB of hidden paragraphs, built once.
fn large_filler() -> &'static str {
    static FILLER: OnceLock<String> = OnceLock::new();
    FILLER.get_or_init(|| {
        const LINE: &str = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do \
                            eiusmod tempor incididunt ut labore et dolore magna aliqua.</p>\n";
        let mut s = String::with_capacity(LARGE_PAGE_BYTES + 64);
        s.push_str("<div id=\"filler\" hidden>\n");
        while s.len() < LARGE_PAGE_BYTES {
            s.push_str(LINE);
        }
        s.push_str("</div>\n");
        s
    })
}

/// `GET /login`: the sign-in form, with the error line when `error` is set.
pub(crate) fn login(error: bool) -> String {
    let error = if error {
        "<p id=\"error\" role=\"alert\">Wrong username or password</p>\n"
    } else {
        ""
    };
    let body = format!(
        "<h1>Sign in</h1>\n{error}<form method=\"post\" action=\"/login\">\n\
         <label for=\"username\">Username</label>\n\
         <input id=\"username\" name=\"username\" autocomplete=\"username\">\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">\n\
         <button type=\"submit\">Sign in</button>\n</form>"
    );
    document("Sign in", "", &body)
}

/// `GET /account`: the signed-in page for `user`.
pub(crate) fn account(user: &str) -> String {
    let body = format!(
        "<h1>Your account</h1>\n<div id=\"account\">Signed in as {}</div>\n\
         <p><a href=\"/\">Events</a></p>",
        escape(user)
    );
    document("Account", "", &body)
}

/// 404 page.
pub(crate) fn not_found() -> String {
    document(
        "Not found",
        "",
        "<h1>Not found</h1>\n<p><a href=\"/\">Events</a></p>",
    )
}
