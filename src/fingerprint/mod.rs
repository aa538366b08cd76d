//! Fingerprints: load desktop Chrome profiles and locales (`fingerprints/`), sample one
//! (weighted, seedable), fill its version fields from the running browser, and project it to
//! CDP overrides and to the HTTP headers this browser sends.

mod brands;
pub mod custom;

pub use brands::{
    chrome_brands, reduced_user_agent, sec_ch_ua, Brand, BrowserVersion, VersionError,
};

use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Profiles shipped with the binary (derived by `scripts/derive-fingerprints`).
const EMBEDDED_PROFILES: &str = include_str!("../../fingerprints/profiles.json");
/// Locales shipped with the binary.
const EMBEDDED_LOCALES: &str = include_str!("../../fingerprints/locales.json");

/// Errors loading fingerprint data.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// A data file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Why (shown by `{:#}` and [`crate::logging::chain`], not in this message).
        source: std::io::Error,
    },
    /// A data file is not the JSON expected.
    #[error("parsing {path}")]
    Parse {
        /// The file.
        path: String,
        /// Where and why (shown by `{:#}`, not in this message).
        source: serde_json::Error,
    },
    /// The data parsed but cannot be used (no profiles, a weight of zero, ...).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Desktop operating systems a profile can claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// Windows 10/11 (the reduced UA says `Windows NT 10.0; Win64; x64`).
    Windows,
    /// macOS (the reduced UA always says `Intel Mac OS X 10_15_7`).
    Macos,
    /// Desktop Linux on x86-64.
    Linux,
}

impl Os {
    /// The platform token of the reduced UA string.
    pub fn ua_token(self) -> &'static str {
        match self {
            Os::Windows => "Windows NT 10.0; Win64; x64",
            Os::Macos => "Macintosh; Intel Mac OS X 10_15_7",
            Os::Linux => "X11; Linux x86_64",
        }
    }
}

/// Screen geometry of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screen {
    /// `screen.width` in CSS pixels.
    pub width: u32,
    /// `screen.height` in CSS pixels.
    pub height: u32,
    /// `screen.availWidth`: the width minus OS bars.
    pub avail_width: u32,
    /// `screen.availHeight`: the height minus OS bars (taskbar, menu bar).
    pub avail_height: u32,
    /// `screen.colorDepth` (24 on nearly every desktop).
    pub color_depth: u32,
    /// `window.devicePixelRatio` (1, 1.25, 1.5, 2, ...).
    pub device_pixel_ratio: f64,
}

/// One version-free desktop profile from `fingerprints/profiles.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Relative share of this profile within its OS when sampling.
    pub weight: f64,
    /// navigator.platform.
    pub platform: String,
    /// Client-hint platform (`Sec-CH-UA-Platform`).
    pub ch_platform: String,
    /// `Sec-CH-UA-Platform-Version` (e.g. `15.0.0` for Windows 11).
    pub platform_version: String,
    /// `Sec-CH-UA-Arch` (`x86`, `arm`).
    pub architecture: String,
    /// `Sec-CH-UA-Bitness` (`64`).
    pub bitness: String,
    /// The screen the page sees.
    pub screen: Screen,
    /// `navigator.hardwareConcurrency`.
    pub hardware_concurrency: u32,
    /// `navigator.deviceMemory` in GiB (Chrome rounds: 2, 4, 8).
    pub device_memory: f64,
    /// WebGL `UNMASKED_VENDOR_WEBGL` of the profile's GPU.
    pub webgl_vendor: String,
    /// WebGL `UNMASKED_RENDERER_WEBGL` of the profile's GPU.
    pub webgl_renderer: String,
}

#[derive(Debug, Clone, Deserialize)]
struct OsProfiles {
    weight: f64,
    profiles: Vec<Profile>,
}

#[derive(Debug, Clone, Deserialize)]
struct ProfilesFile {
    os: BTreeMap<Os, OsProfiles>,
}

/// A timezone with its weight within a locale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedTimezone {
    /// IANA name, e.g. `Europe/Berlin`.
    pub tz: String,
    /// Relative share within the locale.
    pub weight: f64,
}

/// A locale from `fingerprints/locales.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Locale {
    /// BCP 47 tag, e.g. `de-DE` (`navigator.language`).
    pub locale: String,
    /// `navigator.languages`, most preferred first.
    pub languages: Vec<String>,
    /// Plain comma list without q-values (Chrome adds them).
    pub accept_language: String,
    /// Relative share of this locale when sampling.
    pub weight: f64,
    /// Timezones a user of this locale plausibly has.
    pub timezones: Vec<WeightedTimezone>,
}

/// The complete identity a session is earned with and must be replayed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The OS the profile claims.
    pub os: Os,
    /// The `User-Agent` header and `navigator.userAgent`.
    pub user_agent: String,
    /// `Sec-CH-UA` brands (major versions).
    pub brands: Vec<Brand>,
    /// `Sec-CH-UA-Full-Version-List` brands.
    pub full_version_list: Vec<Brand>,
    /// The real browser version the fingerprint was filled from.
    pub browser_version: String,
    /// The hardware and platform profile sampled for it.
    pub profile: Profile,
    /// Window inner size the page sees.
    pub viewport: (u32, u32),
    /// BCP 47 locale (`navigator.language`, the CDP locale override).
    pub locale: String,
    /// `navigator.languages`.
    pub languages: Vec<String>,
    /// `Accept-Language` without q-values (Chrome adds them).
    pub accept_language: String,
    /// IANA timezone the page sees.
    pub timezone: String,
}

/// Profiles and locales, ready to sample from.
#[derive(Debug, Clone)]
pub struct FingerprintSource {
    os: Vec<(Os, f64, Vec<Profile>)>,
    locales: Vec<Locale>,
}

impl FingerprintSource {
    /// The data embedded in the binary.
    ///
    /// # Panics
    /// Never in a released build: the embedded files are checked by the tests.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_PROFILES, EMBEDDED_LOCALES, "embedded fingerprints")
            .expect("embedded fingerprint data is valid")
    }

    /// Loads `profiles.json` and `locales.json` from `dir`.
    ///
    /// # Errors
    /// When a file is missing, malformed, or has no usable profile.
    pub fn load_dir(dir: &Path) -> Result<Self, FingerprintError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| FingerprintError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Self::parse(
            &read("profiles.json")?,
            &read("locales.json")?,
            &dir.display().to_string(),
        )
    }

    fn parse(profiles: &str, locales: &str, origin: &str) -> Result<Self, FingerprintError> {
        let file: ProfilesFile =
            serde_json::from_str(profiles).map_err(|source| FingerprintError::Parse {
                path: format!("{origin}/profiles.json"),
                source,
            })?;
        let locales: Vec<Locale> =
            serde_json::from_str(locales).map_err(|source| FingerprintError::Parse {
                path: format!("{origin}/locales.json"),
                source,
            })?;
        let invalid = |message: String| FingerprintError::Invalid {
            path: origin.to_string(),
            message,
        };
        let os: Vec<(Os, f64, Vec<Profile>)> = file
            .os
            .into_iter()
            .filter(|(_, p)| p.weight > 0.0 && p.profiles.iter().any(|p| p.weight > 0.0))
            .map(|(os, p)| (os, p.weight, p.profiles))
            .collect();
        if os.is_empty() {
            return Err(invalid("no profile with a positive weight".into()));
        }
        if !locales
            .iter()
            .any(|l| l.weight > 0.0 && l.timezones.iter().any(|t| t.weight > 0.0))
        {
            return Err(invalid("no locale with a positive weight".into()));
        }
        Ok(Self { os, locales })
    }

    /// Number of profiles per OS.
    pub fn counts(&self) -> Vec<(Os, usize)> {
        self.os.iter().map(|(o, _, p)| (*o, p.len())).collect()
    }

    /// Samples a fingerprint for the running browser `version` (weighted by the data).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, version: &BrowserVersion) -> Fingerprint {
        let (os, _, profiles) = &self.os[pick(rng, self.os.iter().map(|o| o.1))];
        let profile = profiles[pick(rng, profiles.iter().map(|p| p.weight))].clone();
        let locale = &self.locales[pick(rng, self.locales.iter().map(|l| l.weight))];
        let tz = &locale.timezones[pick(rng, locale.timezones.iter().map(|t| t.weight))];
        Fingerprint::new(*os, profile, locale, &tz.tz, version)
    }
}

fn pick<R: Rng + ?Sized>(rng: &mut R, weights: impl Iterator<Item = f64>) -> usize {
    let w: Vec<f64> = weights.map(|w| w.max(0.0)).collect();
    WeightedIndex::new(&w).map(|d| d.sample(rng)).unwrap_or(0)
}

impl Fingerprint {
    /// Builds a fingerprint from a profile, a locale and the running browser's version.
    pub fn new(
        os: Os,
        profile: Profile,
        locale: &Locale,
        timezone: &str,
        version: &BrowserVersion,
    ) -> Self {
        // The inner window: the available screen less the browser's own toolbars.
        let viewport = (
            profile.screen.avail_width,
            profile.screen.avail_height.saturating_sub(85).max(500),
        );
        Self {
            os,
            user_agent: reduced_user_agent(os.ua_token(), version.major),
            brands: chrome_brands(version, false),
            full_version_list: chrome_brands(version, true),
            browser_version: version.full.clone(),
            profile,
            viewport,
            locale: locale.locale.clone(),
            languages: locale.languages.clone(),
            accept_language: locale.accept_language.clone(),
            timezone: timezone.to_string(),
        }
    }

    /// Major version claimed (always the running browser's).
    pub fn major(&self) -> u32 {
        self.browser_version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// Exactly the identity headers this browser sends with every request, in Chrome's order.
    /// A custom fingerprint (a caller's User-Agent that no client hints can back:
    /// [`custom::is_custom`]) has no `sec-ch-ua*` headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("sec-ch-ua", sec_ch_ua(&self.brands)),
            ("sec-ch-ua-mobile", "?0".to_string()),
            (
                "sec-ch-ua-platform",
                format!("\"{}\"", self.profile.ch_platform),
            ),
            ("User-Agent", self.user_agent.clone()),
            (
                "Accept-Language",
                accept_language_header(&self.accept_language),
            ),
        ];
        if custom::is_custom(self) {
            headers.retain(|(name, _)| !name.starts_with("sec-ch-ua"));
        }
        headers
    }

    /// The init script for what no CDP call sets (hardwareConcurrency, deviceMemory, WebGL).
    pub fn init_script(&self) -> String {
        let p = &self.profile;
        format!(
            r#"(() => {{
  const def = (o, k, v) => {{ try {{ Object.defineProperty(o, k, {{ get: () => v, configurable: true }}); }} catch (e) {{}} }};
  def(Navigator.prototype, 'hardwareConcurrency', {hc});
  def(Navigator.prototype, 'deviceMemory', {dm});
  const vendor = {vendor}, renderer = {renderer};
  for (const C of [self.WebGLRenderingContext, self.WebGL2RenderingContext]) {{
    if (!C) continue;
    const orig = C.prototype.getParameter;
    C.prototype.getParameter = function (p) {{
      if (p === 0x9245) return vendor;
      if (p === 0x9246) return renderer;
      return orig.call(this, p);
    }};
  }}
}})();"#,
            hc = p.hardware_concurrency,
            dm = p.device_memory,
            vendor = serde_json::to_string(&p.webgl_vendor).unwrap_or_default(),
            renderer = serde_json::to_string(&p.webgl_renderer).unwrap_or_default(),
        )
    }
}

/// The Accept-Language header Chrome derives from a plain list: `de-DE,de;q=0.9,en;q=0.8`.
pub fn accept_language_header(list: &str) -> String {
    list.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                let q = (10usize.saturating_sub(i)).max(1);
                format!("{l};q=0.{q}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn version() -> BrowserVersion {
        BrowserVersion::from_product("HeadlessChrome/156.0.8078.73").unwrap()
    }

    #[test]
    fn embedded_data_loads_and_is_coherent() {
        let src = FingerprintSource::embedded();
        for (os, profiles) in src.os.iter().map(|(o, _, p)| (o, p)) {
            assert!(!profiles.is_empty());
            for p in profiles {
                let (platform, ch) = match os {
                    Os::Windows => ("Win32", "Windows"),
                    Os::Macos => ("MacIntel", "macOS"),
                    Os::Linux => ("Linux x86_64", "Linux"),
                };
                assert_eq!(p.platform, platform);
                assert_eq!(p.ch_platform, ch);
                assert!(p.screen.width >= 1024 && p.screen.height >= 600);
                let r = p.webgl_renderer.to_lowercase();
                assert!(!r.contains("swiftshader") && !r.contains("llvmpipe"));
                assert!(!r.contains("basic render driver"));
            }
        }
    }

    #[test]
    fn sampling_is_seedable() {
        let src = FingerprintSource::embedded();
        let a = src.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7), &version());
        let b = src.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7), &version());
        assert_eq!(a, b);
        let distinct: std::collections::HashSet<String> = (0..50)
            .map(|s| {
                let f = src.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(s), &version());
                format!("{:?}{}{}", f.os, f.timezone, f.profile.screen.width)
            })
            .collect();
        assert!(distinct.len() > 5, "sampling gives variety");
    }

    #[test]
    fn headers_carry_the_running_version_and_os() {
        let src = FingerprintSource::embedded();
        let f = src.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1), &version());
        let h: BTreeMap<_, _> = f.headers().into_iter().collect();
        assert!(h["User-Agent"].contains("Chrome/156.0.0.0"));
        assert!(h["User-Agent"].contains(f.os.ua_token()));
        assert!(!h["User-Agent"].contains("Headless"));
        assert!(h["sec-ch-ua"].contains("\"Google Chrome\";v=\"156\""));
        assert_eq!(
            h["sec-ch-ua-platform"],
            format!("\"{}\"", f.profile.ch_platform)
        );
    }

    #[test]
    fn accept_language_gets_q_values() {
        assert_eq!(
            accept_language_header("de-DE,de,en"),
            "de-DE,de;q=0.9,en;q=0.8"
        );
        assert_eq!(accept_language_header("en-US"), "en-US");
    }
}
