//! [`StoreKey`]: the 32-byte key that encrypts session records at rest — loaded from
//! `WARMER_KEY` or `store.key_file` (64 hex characters or base64), never printed, zeroized on
//! drop — and its [`KeyId`], a fingerprint safe to store and show.

use base64::Engine as _;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

use super::StoreError;
use crate::config::StoreConfig;

/// Environment variable holding the key; it overrides `store.key_file`.
pub const KEY_ENV: &str = "WARMER_KEY";
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// The nonce reserved for computing the [`KeyId`]; record nonces never take this value.
pub(super) const KEY_ID_NONCE: [u8; 12] = *b"warmer-keyid";
/// Associated data of the [`KeyId`] computation, separating it from any record.
const KEY_ID_AAD: &[u8] = b"session-warmer store key id v1";
/// Longest key file read: a key with whitespace fits many times over.
const MAX_KEY_FILE: u64 = 4096;

/// A key encrypting session records at rest. `Debug` prints `***`; the bytes are zeroed on drop.
pub struct StoreKey {
    /// The key itself.
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

/// Fingerprint of a [`StoreKey`]: 8 bytes of a Poly1305 tag computed under the key (a keyed
/// hash, so it reveals nothing about the key), shown as 16 hex characters. Recorded in the
/// store's `meta` tree and in every envelope so a wrong key is told from a damaged record.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub(super) [u8; 8]);

impl StoreKey {
    /// A key from its raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut bytes = bytes;
        let key = Self {
            bytes: Zeroizing::new(bytes),
        };
        bytes.zeroize();
        key
    }

    /// A new random key (from the operating system's generator).
    ///
    /// # Errors
    /// When the operating system's generator fails.
    pub fn generate() -> Result<Self, StoreError> {
        use rand::RngCore as _;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
        Ok(Self { bytes })
    }

    /// Parses a key written as 64 hex characters or as base64 of 32 bytes (standard or URL-safe
    /// alphabet, padded or not); surrounding whitespace is ignored. `origin` names where the text
    /// came from in errors (`WARMER_KEY`, `store.key_file /etc/warmer/key`), which never echo it.
    ///
    /// # Errors
    /// [`StoreError::KeyInvalid`] when the text is not 32 bytes in either encoding.
    pub fn parse(text: &str, origin: &str) -> Result<Self, StoreError> {
        let text = text.trim();
        if let Some(key) = parse_hex(text) {
            return Ok(key);
        }
        if let Some(key) = parse_base64(text) {
            return Ok(key);
        }
        Err(StoreError::KeyInvalid {
            origin: origin.to_string(),
            message: format!(
                "not a 32-byte key: expected 64 hex characters or base64 of 32 bytes, got {} \
                 characters (generate one with `head -c 32 /dev/urandom | base64`)",
                text.chars().count()
            ),
        })
    }

    /// Reads a key file, refusing one that group or others may read (it must be 0600 or 0400).
    /// `field` names it in errors: `store.key_file`, `--new-key-file`.
    ///
    /// # Errors
    /// [`StoreError::KeyInvalid`] when the file is missing, unreadable, not a regular file,
    /// readable by group or others, or does not hold a key.
    pub fn read_file(path: &Path, field: &str) -> Result<Self, StoreError> {
        let origin = format!("{field} {}", path.display());
        let invalid = |message: String| StoreError::KeyInvalid {
            origin: origin.clone(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| invalid(e.to_string()))?;
        // Checked on the open file, so a swap between check and read cannot slip through.
        let meta = file.metadata().map_err(|e| invalid(e.to_string()))?;
        if !meta.is_file() {
            return Err(invalid("not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(invalid(format!(
                "the key file is readable or writable by group or others (mode {mode:04o}); \
                 run `chmod 600 {}`",
                path.display()
            )));
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE)
            .read_to_string(&mut text)
            .map_err(|e| invalid(e.to_string()))?;
        Self::parse(&text, &origin)
    }

    /// The configured key: `WARMER_KEY` when set and not blank, else `store.key_file` when set,
    /// else none (the store is then written unencrypted).
    ///
    /// # Errors
    /// As [`StoreKey::parse`] and [`StoreKey::read_file`].
    pub fn from_env_or_file(config: &StoreConfig) -> Result<Option<Self>, StoreError> {
        let env = std::env::var(KEY_ENV).ok().map(Zeroizing::new);
        Self::resolve(env.as_deref().map(String::as_str), config)
    }

    /// [`StoreKey::from_env_or_file`] with the variable's value given (for tests).
    ///
    /// # Errors
    /// As [`StoreKey::from_env_or_file`].
    pub fn resolve(env: Option<&str>, config: &StoreConfig) -> Result<Option<Self>, StoreError> {
        if let Some(text) = env.filter(|t| !t.trim().is_empty()) {
            return Self::parse(text, KEY_ENV).map(Some);
        }
        match &config.key_file {
            Some(path) => Self::read_file(path, "store.key_file").map(Some),
            None => Ok(None),
        }
    }

    /// The key's fingerprint.
    pub fn id(&self) -> KeyId {
        let mut tag_of_nothing = [0u8; 0];
        let tag = self
            .cipher()
            .encrypt_inout_detached(
                &Nonce::from(KEY_ID_NONCE),
                KEY_ID_AAD,
                tag_of_nothing.as_mut_slice().into(),
            )
            .expect("ChaCha20-Poly1305 cannot fail on an empty message");
        let mut id = [0u8; 8];
        id.copy_from_slice(&tag[..8]);
        KeyId(id)
    }

    /// The AEAD under this key (it zeroizes its copy of the key on drop).
    pub(super) fn cipher(&self) -> ChaCha20Poly1305 {
        let key: &chacha20poly1305::Key = self
            .bytes
            .as_slice()
            .try_into()
            .expect("a StoreKey is 32 bytes");
        ChaCha20Poly1305::new(key)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::str::FromStr for KeyId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut id = [0u8; 8];
        decode_hex(s, &mut id).ok_or(())?;
        Ok(Self(id))
    }
}

/// 64 hex characters as a key.
fn parse_hex(text: &str) -> Option<StoreKey> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    decode_hex(text, bytes.as_mut())?;
    Some(StoreKey { bytes })
}

/// Decodes exactly `out.len()` bytes of hex (either case).
fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    let text = text.as_bytes();
    if text.len() != out.len() * 2 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

/// Base64 of 32 bytes as a key, in any of the common alphabets and paddings.
fn parse_base64(text: &str) -> Option<StoreKey> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // Decoding into a slice fails when the text holds more than 32 bytes.
        if let Ok(KEY_LEN) = engine.decode_slice(text, bytes.as_mut()) {
            return Some(StoreKey { bytes });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn counting() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    fn write_key(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("store.key");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn config(key_file: Option<PathBuf>) -> StoreConfig {
        StoreConfig {
            key_file,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn hex_and_base64_give_the_same_key() {
        let want = StoreKey::from_bytes(counting()).id();
        let b64 = base64::engine::general_purpose::STANDARD.encode(counting());
        let b64_url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(counting());
        for text in [
            HEX.to_string(),
            HEX.to_uppercase(),
            format!("  {HEX}\n"),
            b64.clone(),
            format!("{b64}\n"),
            b64.trim_end_matches('=').to_string(),
            b64_url,
        ] {
            assert_eq!(StoreKey::parse(&text, "t").unwrap().id(), want, "{text:?}");
        }
    }

    #[test]
    fn wrong_lengths_are_refused_without_echoing_the_text() {
        let short_hex = &HEX[..62];
        let long_b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 33]);
        let short_b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        for text in [short_hex, &long_b64, &short_b64, "", "not a key at all!"] {
            let e = StoreKey::parse(text, "WARMER_KEY").unwrap_err().to_string();
            assert!(e.starts_with("WARMER_KEY: not a 32-byte key"), "{e}");
            if !text.is_empty() {
                assert!(!e.contains(text), "{e}");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = StoreKey::parse(HEX, "t").unwrap();
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(format!("{:?}", Some(key)), "Some(***)");
    }

    #[test]
    fn key_id_is_stable_and_differs_per_key() {
        let a = StoreKey::from_bytes(counting());
        let b = StoreKey::from_bytes([9; 32]);
        assert_eq!(a.id(), StoreKey::from_bytes(counting()).id());
        assert_ne!(a.id(), b.id());
        let shown = a.id().to_string();
        assert_eq!(shown.len(), 16);
        assert_eq!(shown.parse::<KeyId>().unwrap(), a.id());
        // The fingerprint is not a slice of the key.
        assert!(!HEX.contains(&shown), "{shown}");
        let g1 = StoreKey::generate().unwrap();
        let g2 = StoreKey::generate().unwrap();
        assert_ne!(g1.id(), g2.id());
    }

    #[test]
    fn key_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400] {
            let path = write_key(dir.path(), HEX, mode);
            let key = StoreKey::read_file(&path, "store.key_file").unwrap();
            assert_eq!(key.id(), StoreKey::from_bytes(counting()).id());
            std::fs::remove_file(&path).unwrap();
        }
        for mode in [0o640, 0o644, 0o604, 0o620] {
            let path = write_key(dir.path(), HEX, mode);
            let e = StoreKey::read_file(&path, "store.key_file")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("store.key_file "), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(&format!("{mode:04o}")), "{e}");
            assert!(e.contains("chmod 600"), "{e}");
            std::fs::remove_file(&path).unwrap();
        }
        let e = StoreKey::read_file(&dir.path().join("missing"), "--new-key-file")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--new-key-file "), "{e}");
        let e = StoreKey::read_file(dir.path(), "store.key_file")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("store.key_file "), "{e}");
    }

    #[test]
    fn the_variable_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file_key = "ff".repeat(32);
        let path = write_key(dir.path(), &file_key, 0o600);
        let from_file = StoreKey::parse(&file_key, "t").unwrap().id();
        let from_env = StoreKey::parse(HEX, "t").unwrap().id();

        let none = StoreKey::resolve(None, &config(None)).unwrap();
        assert!(none.is_none());
        let k = StoreKey::resolve(None, &config(Some(path.clone()))).unwrap();
        assert_eq!(k.unwrap().id(), from_file);
        let k = StoreKey::resolve(Some(HEX), &config(Some(path.clone()))).unwrap();
        assert_eq!(k.unwrap().id(), from_env);
        // A blank variable counts as unset.
        let k = StoreKey::resolve(Some("  "), &config(Some(path))).unwrap();
        assert_eq!(k.unwrap().id(), from_file);
        let e = StoreKey::resolve(Some("abc"), &config(None)).unwrap_err();
        assert!(e.to_string().starts_with("WARMER_KEY: "), "{e}");
    }
}
