//! The demo site's axum router and handlers.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{ConnectInfo, OriginalUri, Path, Query, State},
    http::{
        header::{
            CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION, RETRY_AFTER,
            SET_COOKIE, USER_AGENT,
        },
        HeaderMap, HeaderValue, StatusCode,
    },
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Form, Json, Router,
};
use serde::Deserialize;
use serde_json::json;
use tracing::debug;

use super::{
    catalog,
    challenge::{self, ChallengeError},
    conn::ConnHandle,
    pages::{self, EventExtra, EventOptions},
    readiness::{Asset, TokenDelay},
    state::{self, Counter, SiteState},
    Fault,
};

/// Shared state as handlers see it.
type St = State<Arc<SiteState>>;

/// The whole site.
pub(crate) fn router(state: Arc<SiteState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/event/{id}", get(event_page))
        .route("/api/event/{id}", get(event_api))
        .route("/login", get(login_form).post(login_submit))
        .route("/account", get(account))
        .route("/api/me", get(me))
        .route("/__demo/fault", get(get_fault).post(post_fault))
        .route("/__demo/revoke", post(revoke))
        .route("/__demo/stats", get(stats))
        .route("/__demo/stall", get(stall))
        .route("/__demo/redirect", get(redirect_to))
        .route("/__demo/asset/{name}", get(asset))
        .route("/__demo/assets", get(asset_hits))
        .route("/__demo/token", post(http_token))
        .with_state(state)
}

/// The value of cookie `name` in the request, if sent (any `Cookie` header, first match).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` header value; ids are hex so they are always valid header text.
fn set_cookie(value: String) -> HeaderValue {
    HeaderValue::try_from(value).expect("cookie built from hex ids is a valid header value")
}

/// An HTML page that must not be cached (so every visit reaches the server).
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(body),
    )
        .into_response()
}

/// A JSON `{"error": message}` with `status`.
fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A redirect with an explicit status (axum's helpers only offer 303/307/308).
fn redirect(status: StatusCode, location: &str) -> Response {
    let location = HeaderValue::try_from(location).unwrap_or(HeaderValue::from_static("/"));
    (status, [(LOCATION, location)]).into_response()
}

/// Query string of `/__demo/redirect`.
#[derive(Debug, Deserialize)]
struct RedirectQuery {
    to: String,
}

/// A 302 to wherever `to` says: the open redirect many real sites have, for testing that a
/// session's browser does not follow one out of its target.
async fn redirect_to(Query(q): Query<RedirectQuery>) -> Response {
    redirect(StatusCode::FOUND, &q.to)
}

/// `GET /`: the catalogue page linking every demo event.
async fn index() -> Response {
    html(StatusCode::OK, pages::index())
}

/// Query string of `/event/{id}`.
#[derive(Debug, Deserialize)]
struct EventQuery {
    /// Per-request fault; overrides the global one.
    fault: Option<String>,
    /// `MS` or `LO-HI`: when the script sets its token (see `readiness`).
    token_delay: Option<String>,
    /// `1`: the delay fetches the HttpOnly `http_token` instead.
    token_http: Option<String>,
    /// `1`: an image, a stylesheet, a font and a video.
    assets: Option<String>,
}

/// Whether a flag parameter is on (`1`, `true`, `yes`, or present and empty).
fn flag(v: Option<&str>) -> bool {
    matches!(v, Some("" | "1" | "true" | "yes"))
}

/// `GET /event/{id}`: the page a session warms on.
///
/// Sets a `visitor` cookie and embeds that visitor's nonce; the page's script solves the
/// challenge into a `challenge` cookie, which [`event_api`] later checks. A fault (the
/// `fault` query, else the global one set via `/__demo/fault`) replaces or degrades the page
/// to exercise the warmer's error paths: 503/429 with `Retry-After`, a download, a reset
/// connection, a hang, a redirect loop, a slow, large or never-loading page.
///
/// Answers 404 for an unknown event and 400 for a bad `fault` or `token_delay`.
async fn event_page(
    State(st): St,
    Path(id): Path<String>,
    Query(query): Query<EventQuery>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    st.count(Counter::EventVisits);
    let Some(event) = catalog::find(&id) else {
        return html(StatusCode::NOT_FOUND, pages::not_found());
    };
    let fault = match query.fault.as_deref() {
        Some(name) => match name.parse::<Fault>() {
            Ok(f) => Some(f),
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        None => st.fault(),
    };
    if let Some(fault) = fault {
        debug!(event = event.id, %fault, "demo: serving event page with fault");
    }
    let token_delay = match query.token_delay.as_deref().map(str::parse::<TokenDelay>) {
        None => None,
        Some(Ok(d)) => Some(d.pick(&mut rand::thread_rng())),
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let options = EventOptions {
        token_delay,
        token_http: flag(query.token_http.as_deref()),
        assets: flag(query.assets.as_deref()),
    };
    let extra = match fault {
        None => EventExtra::None,
        Some(Fault::ServerError) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(RETRY_AFTER, HeaderValue::from_static("5"))],
                "Service temporarily unavailable",
            )
                .into_response();
        }
        Some(Fault::TooManyRequests) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, HeaderValue::from_static("10"))],
                "Too many requests",
            )
                .into_response();
        }
        Some(Fault::Download) => {
            return (
                StatusCode::OK,
                [
                    (
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    ),
                    (
                        CONTENT_DISPOSITION,
                        HeaderValue::from_static("attachment; filename=\"tickets.bin\""),
                    ),
                ],
                vec![0u8; 1024],
            )
                .into_response();
        }
        Some(Fault::Reset) => {
            conn.reset();
            // Never written: the connection fails on hyper's first write.
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(Fault::Hang) => {
            st.shutdown.cancelled().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Some(Fault::RedirectLoop) => {
            let here = uri.path_and_query().map_or("/", |pq| pq.as_str());
            return redirect(StatusCode::FOUND, here);
        }
        Some(Fault::Slow(delay)) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => EventExtra::None,
                _ = st.shutdown.cancelled() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        Some(Fault::LargePage) => EventExtra::Large,
        Some(Fault::NeverLoad) => EventExtra::NeverLoad,
    };

    let (visitor, nonce) = st.visitor_for(cookie(&headers, "visitor"), Instant::now());
    let mut response = html(
        StatusCode::OK,
        pages::event(event, &nonce, st.js_delay, extra, options),
    );
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(format!(
            "visitor={visitor}; Path=/; Max-Age=7200; HttpOnly; SameSite=Lax"
        )),
    );
    response
}

/// `GET /api/event/{id}`: the JSON a scraper wants, only for a warmed browser.
///
/// Requires the `visitor` cookie of a known visitor and a `challenge` cookie that verifies
/// against its nonce and the request's `User-Agent`; so a session replayed with another UA
/// fails. Answers 403 with the reason otherwise (counted as denied), 404 for unknown events.
async fn event_api(State(st): St, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(event) = catalog::find(&id) else {
        return json_error(StatusCode::NOT_FOUND, "unknown event");
    };
    let ua = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let checked = (|| {
        let visitor = cookie(&headers, "visitor").ok_or(ChallengeError::MissingVisitor)?;
        let nonce = st
            .nonce_for(visitor, Instant::now())
            .ok_or(ChallengeError::UnknownVisitor)?;
        let challenge = cookie(&headers, "challenge").ok_or(ChallengeError::MissingChallenge)?;
        challenge::verify(challenge, &nonce, ua)?;
        Ok::<_, ChallengeError>(visitor)
    })();
    match checked {
        Ok(visitor) => {
            st.count(Counter::ApiOk);
            Json(json!({
                "event": event.id,
                "title": event.title,
                "price": event.price(),
                "currency": "EUR",
                "visitor": &visitor[..visitor.len().min(8)],
            }))
            .into_response()
        }
        Err(reason) => {
            st.count(Counter::ApiDenied);
            debug!(event = event.id, %reason, "demo: API request refused");
            json_error(StatusCode::FORBIDDEN, &reason.to_string())
        }
    }
}

/// Query string of `GET /login`.
#[derive(Debug, Deserialize)]
struct LoginQuery {
    /// Present after a failed attempt.
    error: Option<String>,
}

/// `GET /login`: the sign-in form, with an error notice after a failed attempt.
async fn login_form(Query(query): Query<LoginQuery>) -> Response {
    html(StatusCode::OK, pages::login(query.error.is_some()))
}

/// The sign-in form's fields; missing ones count as wrong credentials.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: checks the credentials; on success opens a login and sets the `sid` cookie,
/// then 303 to `/account`. A wrong password is a 303 back to `/login?error=1`, like real sites,
/// so the warmer must detect failure from where it lands, not from the status.
async fn login_submit(State(st): St, Form(form): Form<LoginForm>) -> Response {
    if !st.check_password(&form.username, &form.password) {
        st.count(Counter::LoginFailures);
        debug!("demo: sign-in refused");
        return redirect(StatusCode::SEE_OTHER, "/login?error=1");
    }
    st.count(Counter::Logins);
    debug!(user = %form.username, "demo: signed in");
    let sid = st.open_login(&form.username, Instant::now());
    let mut response = redirect(StatusCode::SEE_OTHER, "/account");
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(format!("sid={sid}; Path=/; HttpOnly; SameSite=Lax")),
    );
    response
}

/// `Set-Cookie` that removes a lapsed `sid` from the browser.
fn clear_sid() -> HeaderValue {
    HeaderValue::from_static("sid=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
}

/// `GET /account`: the signed-in page a login keep-alive visits; touching it extends the
/// login. Without a live `sid` it redirects (302) to `/login`, clearing a lapsed cookie.
async fn account(State(st): St, headers: HeaderMap) -> Response {
    st.count(Counter::AccountHits);
    let sid = cookie(&headers, "sid");
    match sid.and_then(|sid| st.touch_login(sid, Instant::now())) {
        Some(user) => html(StatusCode::OK, pages::account(&user)),
        None => {
            let mut response = redirect(StatusCode::FOUND, "/login");
            if sid.is_some() {
                response.headers_mut().append(SET_COOKIE, clear_sid());
            }
            response
        }
    }
}

/// `GET /api/me`: the signed-in user as JSON, or 401 when the `sid` is missing, expired or
/// revoked. Like `/account`, a hit extends the login.
async fn me(State(st): St, headers: HeaderMap) -> Response {
    let Some(sid) = cookie(&headers, "sid") else {
        return json_error(StatusCode::UNAUTHORIZED, "not signed in");
    };
    match st.touch_login(sid, Instant::now()) {
        Some(user) => Json(json!({ "user": user })).into_response(),
        None => json_error(StatusCode::UNAUTHORIZED, "session expired or unknown"),
    }
}

/// Body of `POST /__demo/fault`.
#[derive(Debug, Deserialize)]
struct FaultBody {
    /// A fault name, or null/absent to clear.
    #[serde(default)]
    fault: Option<String>,
}

/// `{"fault": name-or-null}`.
fn fault_json(fault: Option<Fault>) -> Response {
    Json(json!({ "fault": fault.map(|f| f.name()) })).into_response()
}

/// `GET /__demo/fault`: the global fault now applied to event pages.
async fn get_fault(State(st): St) -> Response {
    fault_json(st.fault())
}

/// `POST /__demo/fault`: sets (or with null clears) the global fault for later event pages;
/// 400 for an unknown fault name.
async fn post_fault(State(st): St, Json(body): Json<FaultBody>) -> Response {
    let fault = match body.fault.as_deref().map(str::parse::<Fault>).transpose() {
        Ok(f) => f,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    st.set_fault(fault);
    fault_json(fault)
}

/// `POST /__demo/revoke`: forgets every visitor and ends every login at once, so warmed
/// sessions start failing: tests that validation and keep-alive notice a server-side revoke.
async fn revoke(State(st): St) -> Response {
    st.revoke_all();
    Json(json!({ "revoked": true })).into_response()
}

/// `GET /__demo/stats`: the site's counters (visits, API ok/denied, logins), for tests.
async fn stats(State(st): St) -> Response {
    Json(st.stats()).into_response()
}

/// `GET /__demo/asset/{name}`: one of the `assets=1` page's resources, counted.
async fn asset(State(st): St, Path(name): Path<String>) -> Response {
    let Some(asset) = Asset::by_name(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    st.readiness.hit(asset);
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type())),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        asset.body(),
    )
        .into_response()
}

/// `GET /__demo/assets`: requests received per asset kind.
async fn asset_hits(State(st): St) -> Response {
    Json(st.readiness.hits()).into_response()
}

/// `POST /__demo/token`: sets the HttpOnly `http_token` (what `token_http=1` pages fetch) and
/// records when.
async fn http_token(State(st): St) -> Response {
    let at = st.readiness.issue_http_token();
    let mut response = Json(json!({ "set_at_ms": at })).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(format!(
            "http_token={}; Path=/; Max-Age=7200; HttpOnly; SameSite=Lax",
            state::random_id()
        )),
    );
    response
}

/// Never answers (until shutdown): the image that keeps `never-load` pages from loading.
async fn stall(State(st): St) -> Response {
    st.shutdown.cancelled().await;
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
    )
        .into_response()
}
