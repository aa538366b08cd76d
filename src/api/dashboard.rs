//! The dashboard (`GET /`): one static page, no data in it and no external assets. Its script
//! reads the JSON API every 3 s — `/api/sessions/stats` (per target: pool, back-off and why),
//! `/api/v1/sessions` (never with `reveal`: no cookie values), `/api/cookies/recent` (the
//! audit trail) and `/api/status` (daemons, browsers, warm outcomes) — sending the token kept
//! in the tab's `sessionStorage` when the daemon has one. Polling rather than server-sent
//! events: `EventSource` cannot send an `Authorization` header, and the token stays out of
//! URLs and cookies.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// The page; `{{AUTH}}` says whether the daemon has a token (`token`) or not (`none`), so the
/// page shows the token form at once instead of asking the API for a 401 first.
const PAGE: &str = include_str!("dashboard.html");

/// The page as served, for a daemon with (`token`) or without a token.
pub fn page(token: bool) -> String {
    PAGE.replace("{{AUTH}}", if token { "token" } else { "none" })
}

/// The dashboard: a page with no data in it. Its script asks the API, sending the token kept
/// in the tab's `sessionStorage`; with a token configured it first shows a form for it (kept
/// only in that tab, no cookie: so nothing for another site to ride).
#[utoipa::path(get, path = "/",
    responses((status = 200, description = "The dashboard (HTML, no data: its script calls \
        the API with the token given in its form)", content_type = "text/html")))]
pub async fn dashboard(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src data:; connect-src 'self'; form-action 'none'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page(state.token.is_some()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_says_only_whether_a_token_is_needed() {
        for token in [false, true] {
            let p = page(token);
            assert!(!p.contains("{{"), "placeholder left");
            assert!(p.contains(if token {
                "data-auth=\"token\""
            } else {
                "data-auth=\"none\""
            }));
            // No external asset: nothing loaded from another origin.
            for bad in [
                "src=http",
                "href=http",
                "src=\"http",
                "href=\"http",
                "@import",
                "url(",
            ] {
                assert!(!p.contains(bad), "{bad}");
            }
            // Never asks for cookie values.
            assert!(!p.contains("reveal"), "the page never asks for reveal");
            for api in [
                "/api/sessions/stats",
                "/api/v1/sessions",
                "/api/cookies/recent",
                "/api/status",
            ] {
                assert!(p.contains(api), "{api}");
            }
        }
    }
}
