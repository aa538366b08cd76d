//! A caller's own User-Agent (seed 002's `browser.userAgent`): the session is earned and served
//! with exactly that string, and its client hints must not contradict it.
//!
//! - A **desktop Chrome UA of the running major** (Chrome's own shape, on Windows, macOS or
//!   Linux) keeps client hints: the fingerprint takes the UA's OS (a profile of that OS, so
//!   `navigator.platform`, `Sec-CH-UA-Platform`, screen and WebGL agree), the brands of the
//!   running major, and a full-version list of the UA's own full version when it states one.
//! - **Anything else** (another browser, a mobile UA, another major, a string like "Custom
//!   Agent") cannot be backed by coherent hints, so none are claimed: no `sec-ch-ua*` header is
//!   served, the browser is given the UA without client-hint metadata (Chromium then sends
//!   none and `navigator.userAgentData` has no brands), and the fingerprint is *custom*.
//!
//! Whether a fingerprint is custom is a property of the fingerprint itself ([`is_custom`]): its
//! UA is not the desktop Chrome UA of its own OS and major. A sampled fingerprint never is, so
//! no stored record changes meaning and no field needs storing.

use rand::Rng;

use super::{chrome_brands, BrowserVersion, Fingerprint, FingerprintSource, Locale, Os};

/// What a User-Agent string says about the browser, as far as client hints are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAgentClass {
    /// Google Chrome's own desktop UA shape.
    DesktopChrome {
        /// The OS of its platform token.
        os: Os,
        /// The major version it claims.
        major: u32,
        /// Its full version when it states one (`156.0.8078.73`); `None` for the reduced form
        /// (`156.0.0.0`) Chrome itself sends.
        full: Option<String>,
    },
    /// Anything else: no client hints can be coherent with it.
    Other,
}

/// The platform token of a desktop Chrome UA, mapped to its OS. Chrome's reduced UA freezes
/// these tokens; Windows and Linux must be exactly Chrome's, macOS may carry any
/// `10_x_y` version.
fn platform_os(token: &str) -> Option<Os> {
    if token == Os::Windows.ua_token() {
        return Some(Os::Windows);
    }
    if token == Os::Linux.ua_token() {
        return Some(Os::Linux);
    }
    let mac = token.strip_prefix("Macintosh; Intel Mac OS X ")?;
    (!mac.is_empty() && mac.chars().all(|c| c.is_ascii_digit() || c == '_')).then_some(Os::Macos)
}

/// Classifies `ua`: `Mozilla/5.0 (<platform>) AppleWebKit/537.36 (KHTML, like Gecko)
/// Chrome/<a.b.c.d> Safari/537.36`, nothing before or after, is desktop Chrome (Edge, Opera,
/// headless Chrome and mobile UAs add tokens and are not).
pub fn classify(ua: &str) -> UserAgentClass {
    let parse = || -> Option<UserAgentClass> {
        let rest = ua.strip_prefix("Mozilla/5.0 (")?;
        let (platform, rest) =
            rest.split_once(") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/")?;
        let version = rest.strip_suffix(" Safari/537.36")?;
        let os = platform_os(platform)?;
        let parts: Vec<&str> = version.split('.').collect();
        if parts.len() != 4
            || parts
                .iter()
                .any(|p| p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let major: u32 = parts[0].parse().ok()?;
        let reduced = parts[1..].iter().all(|p| p.bytes().all(|b| b == b'0'));
        Some(UserAgentClass::DesktopChrome {
            os,
            major,
            full: (!reduced).then(|| version.to_string()),
        })
    };
    parse().unwrap_or(UserAgentClass::Other)
}

/// Whether `fp` is custom: its User-Agent is not a desktop Chrome UA of its own OS and major,
/// so it is served without `sec-ch-ua*` headers and applied without client-hint metadata.
pub fn is_custom(fp: &Fingerprint) -> bool {
    !matches!(
        classify(&fp.user_agent),
        UserAgentClass::DesktopChrome { os, major, .. } if os == fp.os && major == fp.major()
    )
}

/// The identity headers to serve with `fp`: [`Fingerprint::headers`], without the `sec-ch-ua*`
/// ones when it is custom.
pub fn headers(fp: &Fingerprint) -> Vec<(&'static str, String)> {
    let custom = is_custom(fp);
    fp.headers()
        .into_iter()
        .filter(|(name, _)| !(custom && name.starts_with("sec-ch-ua")))
        .collect()
}

impl FingerprintSource {
    /// A weighted profile of `os`, when the data has one.
    fn sample_profile<R: Rng + ?Sized>(&self, rng: &mut R, os: Os) -> Option<super::Profile> {
        let (_, _, profiles) = self.os.iter().find(|(o, _, _)| *o == os)?;
        profiles
            .get(super::pick(rng, profiles.iter().map(|p| p.weight)))
            .cloned()
    }

    /// Samples a fingerprint for the running browser `version` worn with the caller's `ua`
    /// ([`with_user_agent`] on a fresh sample).
    pub fn sample_for_user_agent<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        version: &BrowserVersion,
        ua: &str,
    ) -> Fingerprint {
        let fp = self.sample(rng, version);
        with_user_agent(fp, ua, self, rng)
    }
}

/// `fp` (a sampled fingerprint) worn with the caller's `ua`, exactly as given:
///
/// - a desktop Chrome UA of `fp`'s (the running) major: on the UA's OS (a profile of it from
///   `source` when `fp`'s OS differs; locale and timezone kept), brands of that major, the
///   full-version list of the UA's full version when it states one. Not custom.
/// - any other UA (or an OS `source` has no profile of): `fp` with that UA; custom
///   ([`is_custom`]), so no client hints are claimed.
pub fn with_user_agent<R: Rng + ?Sized>(
    fp: Fingerprint,
    ua: &str,
    source: &FingerprintSource,
    rng: &mut R,
) -> Fingerprint {
    let UserAgentClass::DesktopChrome { os, major, full } = classify(ua) else {
        return Fingerprint {
            user_agent: ua.to_string(),
            ..fp
        };
    };
    if major != fp.major() {
        return Fingerprint {
            user_agent: ua.to_string(),
            ..fp
        };
    }
    let running = BrowserVersion {
        major,
        full: fp.browser_version.clone(),
    };
    let mut out = if os == fp.os {
        fp
    } else {
        let Some(profile) = source.sample_profile(rng, os) else {
            return Fingerprint {
                user_agent: ua.to_string(),
                ..fp
            };
        };
        let locale = Locale {
            locale: fp.locale.clone(),
            languages: fp.languages.clone(),
            accept_language: fp.accept_language.clone(),
            weight: 1.0,
            timezones: Vec::new(),
        };
        Fingerprint::new(os, profile, &locale, &fp.timezone, &running)
    };
    out.user_agent = ua.to_string();
    out.brands = chrome_brands(&running, false);
    out.full_version_list = match full {
        Some(full) => chrome_brands(&BrowserVersion { major, full }, true),
        None => chrome_brands(&running, true),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn version() -> BrowserVersion {
        BrowserVersion::from_product("HeadlessChrome/156.0.8078.73").unwrap()
    }

    fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(seed)
    }

    const WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
    const MAC_FULL: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.99 Safari/537.36";
    const LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

    #[test]
    fn classifies_chromes_desktop_shape_only() {
        assert_eq!(
            classify(WIN),
            UserAgentClass::DesktopChrome {
                os: Os::Windows,
                major: 156,
                full: None
            }
        );
        assert_eq!(
            classify(MAC_FULL),
            UserAgentClass::DesktopChrome {
                os: Os::Macos,
                major: 156,
                full: Some("156.0.8078.99".into())
            }
        );
        assert!(matches!(
            classify(LINUX),
            UserAgentClass::DesktopChrome { os: Os::Linux, .. }
        ));
        for other in [
            "Custom Agent",
            "",
            // Edge, Opera, headless, mobile, Firefox, Safari.
            &format!("{WIN} Edg/156.0.0.0"),
            &format!("{WIN} OPR/120.0.0.0"),
            &WIN.replace("Chrome/", "HeadlessChrome/"),
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
            // Platforms Chrome no longer sends, malformed versions.
            &WIN.replace("Windows NT 10.0", "Windows NT 6.1"),
            &WIN.replace("156.0.0.0", "156.0.0"),
            &WIN.replace("156.0.0.0", "156.x.0.0"),
            &format!(" {WIN}"),
        ] {
            assert_eq!(classify(other), UserAgentClass::Other, "{other:?}");
        }
    }

    #[test]
    fn sampled_fingerprints_are_never_custom() {
        let src = FingerprintSource::embedded();
        for seed in 0..200 {
            let fp = src.sample(&mut rng(seed), &version());
            assert!(!is_custom(&fp), "{}", fp.user_agent);
            assert_eq!(headers(&fp), fp.headers());
        }
    }

    #[test]
    fn a_chrome_ua_of_the_running_major_keeps_coherent_client_hints() {
        let src = FingerprintSource::embedded();
        for (seed, ua, os) in [
            (1, WIN, Os::Windows),
            (2, MAC_FULL, Os::Macos),
            (3, LINUX, Os::Linux),
        ] {
            for s in seed..seed + 20 {
                let fp = src.sample_for_user_agent(&mut rng(s), &version(), ua);
                assert_eq!(fp.user_agent, ua, "exactly the caller's UA");
                assert_eq!(fp.os, os, "{ua}");
                assert!(!is_custom(&fp), "{ua}");
                let expected_platform = match os {
                    Os::Windows => "Windows",
                    Os::Macos => "macOS",
                    Os::Linux => "Linux",
                };
                assert_eq!(fp.profile.ch_platform, expected_platform);
                let h: BTreeMap<_, _> = headers(&fp).into_iter().collect();
                assert_eq!(h["User-Agent"], ua);
                assert!(h["sec-ch-ua"].contains("\"Google Chrome\";v=\"156\""));
                assert_eq!(h["sec-ch-ua-platform"], format!("\"{expected_platform}\""));
                let full = fp
                    .full_version_list
                    .iter()
                    .find(|b| b.brand == "Google Chrome")
                    .unwrap();
                if ua == MAC_FULL {
                    assert_eq!(full.version, "156.0.8078.99", "the UA's own full version");
                } else {
                    assert_eq!(full.version, "156.0.8078.73", "the running full version");
                }
            }
        }
    }

    #[test]
    fn the_os_changes_with_the_ua_and_keeps_locale_and_timezone() {
        let src = FingerprintSource::embedded();
        let fp = (0..100)
            .map(|s| src.sample(&mut rng(s), &version()))
            .find(|f| f.os != Os::Linux)
            .unwrap();
        let out = with_user_agent(fp.clone(), LINUX, &src, &mut rng(9));
        assert_eq!(out.os, Os::Linux);
        assert_eq!(out.profile.platform, "Linux x86_64");
        assert_eq!(out.locale, fp.locale);
        assert_eq!(out.timezone, fp.timezone);
        assert_eq!(out.accept_language, fp.accept_language);
        assert_eq!(out.browser_version, fp.browser_version);
        assert!(!is_custom(&out));
    }

    #[test]
    fn any_other_ua_is_custom_and_served_without_client_hints() {
        let src = FingerprintSource::embedded();
        let other_major = WIN.replace("Chrome/156", "Chrome/150");
        for ua in [
            "Custom Agent",
            other_major.as_str(),
            &format!("{WIN} Edg/156.0.0.0"),
        ] {
            let fp = src.sample_for_user_agent(&mut rng(4), &version(), ua);
            assert_eq!(fp.user_agent, ua);
            assert!(is_custom(&fp), "{ua}");
            let names: Vec<&str> = headers(&fp).into_iter().map(|(k, _)| k).collect();
            assert_eq!(names, ["User-Agent", "Accept-Language"], "{ua}");
        }
        // A Chrome UA of the right major worn on a fingerprint of another OS (a record
        // edited by hand) is custom too: its hints would contradict it.
        let mut fp = src.sample(&mut rng(5), &version());
        fp.user_agent = if fp.os == Os::Windows { LINUX } else { WIN }.to_string();
        assert!(is_custom(&fp));
    }
}
