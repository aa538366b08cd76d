//! The demo site's readiness knobs, for `ready_when` and `block`: an event page whose token
//! arrives when its script decides (`?token_delay=`), an HttpOnly token fetched by script
//! (`?token_http=1`), and pages that pull an image, a stylesheet, a font and a video
//! (`?assets=1`) from counted routes, so a test or the bench sees what a browser asked for.
//!
//! # Query parameters of `GET /event/{id}`
//! - `token_delay=MS` or `token_delay=LO-HI` (milliseconds): the page's script sets its
//!   UA-bound `challenge` cookie (the token the protected API needs) after that delay, a fixed
//!   one or one picked at random in `LO..=HI` for each load, instead of the site's `js_delay`;
//!   at the same moment it appends `<div id="app-ready">` and records the time it set the cookie
//!   in `<body data-token-at>` (epoch milliseconds, sub-millisecond precision). The delay
//!   picked is in `<body data-token-delay>`.
//! - `token_http=1` (with `token_delay`): after the delay the script only calls
//!   `POST /__demo/token`, whose answer sets the HttpOnly cookie `http_token`; the page's DOM
//!   and script-visible cookies do not change, so only the response can tell a watcher.
//! - `assets=1`: the page links `/__demo/asset/style.css`, shows `/__demo/asset/pic.png`, uses
//!   a font from `/__demo/asset/font.woff2` (declared inline, so it does not depend on the
//!   stylesheet) and preloads the video `/__demo/asset/clip.webm`.

use std::{
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Longest `token_delay` a page accepts: a minute is already far beyond any warm-up.
pub const MAX_TOKEN_DELAY: Duration = Duration::from_secs(60);

/// When the delayed-token page's script sets its token: `token_delay=400` or
/// `token_delay=200-4000` (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDelay {
    /// Always this long after the script starts.
    Fixed(Duration),
    /// Uniformly at random in `lo..=hi`, picked for each page load.
    Range(Duration, Duration),
}

/// A `token_delay` value that is not `MS` or `LO-HI` with `LO <= HI <= 60000`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token_delay {0:?}: expected milliseconds (400) or a range (200-4000), at most 60000")]
pub struct BadTokenDelay(pub String);

impl FromStr for TokenDelay {
    type Err = BadTokenDelay;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadTokenDelay(s.to_owned());
        let ms = |v: &str| -> Result<Duration, BadTokenDelay> {
            let n: u64 = v.trim().parse().map_err(|_| bad())?;
            let d = Duration::from_millis(n);
            (d <= MAX_TOKEN_DELAY).then_some(d).ok_or_else(bad)
        };
        match s.split_once('-') {
            None => Ok(TokenDelay::Fixed(ms(s)?)),
            Some((lo, hi)) => {
                let (lo, hi) = (ms(lo)?, ms(hi)?);
                if lo > hi {
                    return Err(bad());
                }
                Ok(TokenDelay::Range(lo, hi))
            }
        }
    }
}

impl TokenDelay {
    /// The delay of one page load.
    pub fn pick(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            TokenDelay::Fixed(d) => d,
            TokenDelay::Range(lo, hi) => {
                let ms = rng.gen_range(lo.as_millis() as u64..=hi.as_millis() as u64);
                Duration::from_millis(ms)
            }
        }
    }
}

/// A resource of the `assets=1` page, served by `GET /__demo/asset/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asset {
    /// `pic.png`: a 1×1 PNG.
    Image,
    /// `style.css`.
    Stylesheet,
    /// `font.woff2`: a few bytes that are not a font (the request is what counts).
    Font,
    /// `clip.webm`: a few bytes that are not a video.
    Media,
}

/// A valid 1×1 transparent PNG.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

impl Asset {
    /// The asset served under `name`.
    pub(crate) fn by_name(name: &str) -> Option<Asset> {
        match name {
            "pic.png" => Some(Asset::Image),
            "style.css" => Some(Asset::Stylesheet),
            "font.woff2" => Some(Asset::Font),
            "clip.webm" => Some(Asset::Media),
            _ => None,
        }
    }

    /// Its `Content-Type`.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Asset::Image => "image/png",
            Asset::Stylesheet => "text/css",
            Asset::Font => "font/woff2",
            Asset::Media => "video/webm",
        }
    }

    /// Its body.
    pub(crate) fn body(self) -> &'static [u8] {
        match self {
            Asset::Image => PIXEL_PNG,
            Asset::Stylesheet => b"#title { color: #234; }\n",
            Asset::Font => b"not a font",
            Asset::Media => b"not a video",
        }
    }
}

/// The HTML the `assets=1` page adds to its `<body>`: one resource of each kind.
pub(crate) const ASSETS_HTML: &str = "<link rel=\"stylesheet\" href=\"/__demo/asset/style.css\">\n\
<style>@font-face { font-family: DemoFont; src: url(/__demo/asset/font.woff2) format(\"woff2\"); }\n\
#price { font-family: DemoFont, sans-serif; }</style>\n\
<img id=\"pic\" src=\"/__demo/asset/pic.png\" alt=\"\" width=\"1\" height=\"1\">\n\
<video id=\"clip\" src=\"/__demo/asset/clip.webm\" preload=\"auto\" muted width=\"1\" height=\"1\"></video>\n";

/// Requests the demo site received for each asset kind (`GET /__demo/assets`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetHits {
    /// `pic.png` requests.
    pub image: u64,
    /// `style.css` requests.
    pub stylesheet: u64,
    /// `font.woff2` requests.
    pub font: u64,
    /// `clip.webm` requests.
    pub media: u64,
}

/// The counters and times behind these knobs, part of the site's state.
#[derive(Default)]
pub(crate) struct ReadinessState {
    image: AtomicU64,
    stylesheet: AtomicU64,
    font: AtomicU64,
    media: AtomicU64,
    /// When the last `http_token` was issued, in epoch milliseconds.
    http_token_at: Mutex<Option<f64>>,
}

/// Now, in milliseconds since the epoch (sub-millisecond precision, as the page's
/// `performance.timeOrigin + performance.now()`).
pub fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl ReadinessState {
    /// Counts one request for `asset`.
    pub(crate) fn hit(&self, asset: Asset) {
        let cell = match asset {
            Asset::Image => &self.image,
            Asset::Stylesheet => &self.stylesheet,
            Asset::Font => &self.font,
            Asset::Media => &self.media,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the asset counters.
    pub(crate) fn hits(&self) -> AssetHits {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AssetHits {
            image: get(&self.image),
            stylesheet: get(&self.stylesheet),
            font: get(&self.font),
            media: get(&self.media),
        }
    }

    /// Records that an `http_token` is being issued now; returns the time recorded.
    pub(crate) fn issue_http_token(&self) -> f64 {
        let now = epoch_ms();
        *self
            .http_token_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(now);
        now
    }

    /// When the last `http_token` was issued (epoch milliseconds).
    pub(crate) fn http_token_at(&self) -> Option<f64> {
        *self
            .http_token_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn token_delays_parse_as_fixed_or_a_range() {
        let ms = Duration::from_millis;
        assert_eq!("400".parse(), Ok(TokenDelay::Fixed(ms(400))));
        assert_eq!("0".parse(), Ok(TokenDelay::Fixed(ms(0))));
        assert_eq!("200-4000".parse(), Ok(TokenDelay::Range(ms(200), ms(4000))));
        for bad in ["", "x", "-5", "400-200", "1-2-3", "60001", "0-60001", "4.5"] {
            assert!(bad.parse::<TokenDelay>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_range_picks_within_its_bounds_and_spreads() {
        let d: TokenDelay = "200-4000".parse().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let picks: Vec<Duration> = (0..200).map(|_| d.pick(&mut rng)).collect();
        assert!(picks
            .iter()
            .all(|p| (Duration::from_millis(200)..=Duration::from_millis(4000)).contains(p)));
        assert!(picks.iter().any(|p| *p < Duration::from_millis(1000)));
        assert!(picks.iter().any(|p| *p > Duration::from_millis(3000)));
        let fixed = TokenDelay::Fixed(Duration::from_millis(400));
        assert_eq!(fixed.pick(&mut rng), Duration::from_millis(400));
    }

    #[test]
    fn assets_are_found_by_name_and_counted() {
        let s = ReadinessState::default();
        for name in ["pic.png", "style.css", "font.woff2", "clip.webm", "pic.png"] {
            s.hit(Asset::by_name(name).unwrap());
        }
        assert_eq!(Asset::by_name("other.js"), None);
        assert_eq!(
            s.hits(),
            AssetHits {
                image: 2,
                stylesheet: 1,
                font: 1,
                media: 1
            }
        );
        assert_eq!(s.http_token_at(), None);
        let at = s.issue_http_token();
        assert_eq!(s.http_token_at(), Some(at));
    }
}
