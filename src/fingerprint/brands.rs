//! Version fields of a fingerprint, derived from the running browser: the reduced UA string and
//! Chromium's own GREASE brand list for that major. Nothing here is stored; it is recomputed
//! from `Browser.getVersion` so a session never claims a version other than the one running.

use serde::{Deserialize, Serialize};

/// A `Browser.getVersion` product string without the `name/major.minor...` shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Nothing after the last `/`.
    #[error("unexpected browser product {0:?}")]
    Product(String),
    /// The version does not start with a numeric major.
    #[error("unexpected browser version {0:?}")]
    Version(String),
}

/// The running browser's version, parsed from `Browser.getVersion`'s `product`
/// (e.g. `HeadlessChrome/156.0.8078.73` or `Chrome/156.0.8078.73`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserVersion {
    /// Major version, e.g. 156.
    pub major: u32,
    /// Full dotted version, e.g. `156.0.8078.73`.
    pub full: String,
}

impl BrowserVersion {
    /// Parses the `product` field of `Browser.getVersion`.
    ///
    /// # Errors
    /// [`VersionError`] when the product has no `name/major.minor...` shape.
    pub fn from_product(product: &str) -> Result<Self, VersionError> {
        let full = product
            .rsplit('/')
            .next()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| VersionError::Product(product.to_string()))?;
        let major = full
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| VersionError::Version(full.to_string()))?;
        Ok(Self {
            major,
            full: full.to_string(),
        })
    }
}

/// One `brand`/`version` pair as in `navigator.userAgentData.brands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    /// Brand name, e.g. `Chromium`, `Google Chrome` or a GREASE brand like `Not/A)Brand`.
    pub brand: String,
    /// Its version: the major in `Sec-CH-UA`, the full version in the full version list.
    pub version: String,
}

const GREASE_CHARS: [&str; 11] = [" ", "(", ":", "-", ".", "/", ")", ";", "=", "?", "_"];
const GREASE_VERSIONS: [&str; 3] = ["8", "99", "24"];
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// The brand list Google Chrome of this major sends, by Chromium's rule
/// (`GenerateBrandVersionList` seeded with the major). With `full`, versions are full
/// (`Sec-CH-UA-Full-Version-List`); otherwise majors (`Sec-CH-UA`).
pub fn chrome_brands(version: &BrowserVersion, full: bool) -> Vec<Brand> {
    let seed = version.major as usize;
    let grease_brand = format!(
        "Not{}A{}Brand",
        GREASE_CHARS[seed % GREASE_CHARS.len()],
        GREASE_CHARS[(seed + 1) % GREASE_CHARS.len()]
    );
    let grease_major = GREASE_VERSIONS[seed % GREASE_VERSIONS.len()];
    let (grease_version, real) = if full {
        (format!("{grease_major}.0.0.0"), version.full.clone())
    } else {
        (grease_major.to_string(), version.major.to_string())
    };
    let entries = [
        Brand {
            brand: grease_brand,
            version: grease_version,
        },
        Brand {
            brand: "Chromium".into(),
            version: real.clone(),
        },
        Brand {
            brand: "Google Chrome".into(),
            version: real,
        },
    ];
    let order = ORDERS[seed % ORDERS.len()];
    let mut out: Vec<Option<Brand>> = vec![None, None, None];
    for (entry, slot) in entries.into_iter().zip(order) {
        out[slot] = Some(entry);
    }
    out.into_iter().flatten().collect()
}

/// The `Sec-CH-UA` header value for a brand list.
pub fn sec_ch_ua(brands: &[Brand]) -> String {
    brands
        .iter()
        .map(|b| format!("\"{}\";v=\"{}\"", b.brand, b.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reduced User-Agent string Chrome sends on `os_token`'s platform.
pub fn reduced_user_agent(os_token: &str, major: u32) -> String {
    format!(
        "Mozilla/5.0 ({os_token}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32) -> BrowserVersion {
        BrowserVersion {
            major,
            full: format!("{major}.0.1234.5"),
        }
    }

    #[test]
    fn parses_product() {
        let b = BrowserVersion::from_product("HeadlessChrome/156.0.8078.73").unwrap();
        assert_eq!(b.major, 156);
        assert_eq!(b.full, "156.0.8078.73");
        assert!(BrowserVersion::from_product("garbage").is_err());
    }

    #[test]
    fn grease_brand_matches_chromium_156() {
        // Headless Chromium 156 itself reports "Not:A-Brand" v8 first.
        let b = chrome_brands(&v(156), false);
        assert_eq!(b[0].brand, "Not:A-Brand");
        assert_eq!(b[0].version, "8");
        assert_eq!(b[1].brand, "Chromium");
        assert_eq!(b[2].brand, "Google Chrome");
    }

    #[test]
    fn known_recorded_chrome_lists() {
        // Chrome 120: "Not_A Brand";v="8", "Chromium";v="120", "Google Chrome";v="120"
        assert_eq!(
            sec_ch_ua(&chrome_brands(&v(120), false)),
            r#""Not_A Brand";v="8", "Chromium";v="120", "Google Chrome";v="120""#
        );
        // Chrome 124: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"
        assert_eq!(
            sec_ch_ua(&chrome_brands(&v(124), false)),
            r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#
        );
    }

    #[test]
    fn full_version_list_uses_full_versions() {
        let b = chrome_brands(&v(156), true);
        assert_eq!(b[0].version, "8.0.0.0");
        assert_eq!(b[2].version, "156.0.1234.5");
    }

    #[test]
    fn reduced_ua() {
        assert_eq!(
            reduced_user_agent("X11; Linux x86_64", 156),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
        );
    }
}
