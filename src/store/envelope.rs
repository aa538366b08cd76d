//! The envelope of an encrypted record and the [`Sealer`] that writes and opens it.
//!
//! Layout (version 1): `0xE1 | key id (8) | nonce (12) | ciphertext | tag (16)`, ChaCha20-Poly1305
//! with a random nonce per write. The associated data binds the header and the record's tree and
//! key, so an envelope copied to another record does not open. A value that does not start with
//! the magic byte is plaintext JSON (which starts with `{`) and passes through unchanged.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use std::borrow::Cow;

use super::key::{KeyId, StoreKey, KEY_ID_NONCE};
use super::records::AtRest;
use super::StoreError;

/// First byte of a version-1 envelope; never the first byte of JSON.
pub(super) const MAGIC_V1: u8 = 0xE1;
/// Bytes of the key fingerprint after the magic byte; compared before decrypting so a
/// wrong key is reported as a mismatch, not as tampering.
const KEY_ID_LEN: usize = 8;
/// ChaCha20-Poly1305's 96-bit nonce, random per write (safe at the write rates of a store).
const NONCE_LEN: usize = 12;
/// Magic, key id and nonce: everything before the ciphertext.
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// The Poly1305 tag the AEAD appends to the ciphertext; a shorter envelope is `Tampered`.
const TAG_LEN: usize = 16;

/// Encrypts and decrypts records under one key.
pub(super) struct Sealer {
    /// The AEAD (zeroizes its key on drop).
    aead: ChaCha20Poly1305,
    /// Fingerprint of the key, written into every envelope.
    key_id: KeyId,
}

impl Sealer {
    /// A sealer for `key`, keeping only its cipher and fingerprint.
    pub(super) fn new(key: &StoreKey) -> Self {
        Self {
            aead: key.cipher(),
            key_id: key.id(),
        }
    }

    /// The fingerprint of the key this sealer writes with (shown in store info and errors).
    pub(super) fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Encrypts `plaintext`, the value of `key` in `tree`, into an envelope.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the OS random source fails or encryption fails; nothing is
    /// written then.
    pub(super) fn seal(
        &self,
        tree: &str,
        key: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let nonce = random_nonce()?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(MAGIC_V1);
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&nonce);
        let aad = associated_data(&out[..1 + KEY_ID_LEN], tree, key);
        let sealed = self
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Io(std::io::Error::other("encrypting a record failed")))?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

/// Whether a stored value is an envelope (else it is plaintext JSON).
pub(super) fn is_envelope(raw: &[u8]) -> bool {
    raw.first() == Some(&MAGIC_V1)
}

/// The plaintext of a stored value: plaintext passes through, an envelope is decrypted with
/// `sealer`. `name` (`sessions/<id>`) names the record in errors.
///
/// # Errors
/// [`StoreError::KeyRequired`] for an envelope without a key, [`StoreError::KeyMismatch`] for
/// one written under another key, [`StoreError::Tampered`] when it fails authentication.
pub(super) fn open<'a>(
    sealer: Option<&Sealer>,
    tree: &str,
    key: &[u8],
    name: &str,
    raw: &'a [u8],
) -> Result<Cow<'a, [u8]>, StoreError> {
    if !is_envelope(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let what = format!("store record {name}");
    if raw.len() < HEADER_LEN + TAG_LEN {
        return Err(StoreError::Tampered {
            key: name.to_string(),
        });
    }
    let Some(sealer) = sealer else {
        return Err(StoreError::KeyRequired { what });
    };
    let mut stored = [0u8; KEY_ID_LEN];
    stored.copy_from_slice(&raw[1..1 + KEY_ID_LEN]);
    if stored != sealer.key_id.0 {
        return Err(StoreError::KeyMismatch {
            what,
            stored: KeyId(stored).to_string(),
            given: sealer.key_id.to_string(),
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&raw[1 + KEY_ID_LEN..HEADER_LEN]);
    let aad = associated_data(&raw[..1 + KEY_ID_LEN], tree, key);
    sealer
        .aead
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &raw[HEADER_LEN..],
                aad: &aad,
            },
        )
        .map(Cow::Owned)
        .map_err(|_| StoreError::Tampered {
            key: name.to_string(),
        })
}

/// `magic | key id | tree | 0 | key`.
///
/// Authenticated but not encrypted: binding the tree and key means an envelope copied
/// under another record id or tree fails with `Tampered`. The `0` separates tree from key
/// so `("ab", "c")` and `("a", "bc")` differ. The nonce is not included: the AEAD
/// already authenticates it.
fn associated_data(header: &[u8], tree: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + tree.len() + 1 + key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(tree.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

/// A fresh nonce from the operating system, never the one reserved for the key id.
fn random_nonce() -> Result<[u8; NONCE_LEN], StoreError> {
    use rand::RngCore as _;
    loop {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
        if nonce != KEY_ID_NONCE {
            return Ok(nonce);
        }
    }
}

/// How a network store's sessions are kept at rest, from the key id its meta records
/// (`stored`, empty for plaintext) and the key this daemon was given (`sealer`); `what` names
/// the store in errors.
///
/// # Errors
/// [`StoreError::KeyRequired`] when the store is encrypted and no key was given,
/// [`StoreError::KeyMismatch`] when the key given is not the one it was written with.
pub(crate) fn at_rest(
    what: &str,
    sealer: Option<&Sealer>,
    stored: &str,
) -> Result<AtRest, StoreError> {
    match (sealer, stored) {
        (None, "") => Ok(AtRest::Plaintext),
        (None, _) => Err(StoreError::KeyRequired { what: what.into() }),
        (Some(s), stored) if stored != s.key_id().to_string() => Err(StoreError::KeyMismatch {
            what: what.into(),
            stored: stored.to_string(),
            given: s.key_id().to_string(),
        }),
        (Some(s), _) => Ok(AtRest::Encrypted(s.key_id())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = br#"{"cookies":[{"name":"sid","value":"s-93c0"}]}"#;

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&StoreKey::from_bytes([byte; 32]))
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let s = sealer(1);
        let a = s.seal("sessions", b"id1", JSON).unwrap();
        let b = s.seal("sessions", b"id1", JSON).unwrap();
        assert_ne!(a, b, "same plaintext, same envelope: nonce reused");
        assert_ne!(a[1 + KEY_ID_LEN..HEADER_LEN], b[1 + KEY_ID_LEN..HEADER_LEN]);
        assert!(is_envelope(&a));
        assert_eq!(a[0], MAGIC_V1);
        assert_eq!(&a[1..1 + KEY_ID_LEN], &s.key_id().0);
        assert_eq!(a.len(), HEADER_LEN + JSON.len() + TAG_LEN);
        assert!(!contains(&a, b"s-93c0"));
        let plain = open(Some(&s), "sessions", b"id1", "sessions/id1", &a).unwrap();
        assert_eq!(&*plain, JSON);
    }

    #[test]
    fn plaintext_passes_through_with_or_without_a_key() {
        assert!(!is_envelope(JSON));
        let p = open(None, "sessions", b"x", "sessions/x", JSON).unwrap();
        assert!(matches!(p, Cow::Borrowed(_)));
        let s = sealer(1);
        assert_eq!(
            &*open(Some(&s), "sessions", b"x", "sessions/x", JSON).unwrap(),
            JSON
        );
    }

    #[test]
    fn no_key_or_the_wrong_key_is_named() {
        let env = sealer(1).seal("sessions", b"id1", JSON).unwrap();
        let e = open(None, "sessions", b"id1", "sessions/id1", &env).unwrap_err();
        assert!(matches!(e, StoreError::KeyRequired { .. }), "{e:?}");
        assert!(e.to_string().contains("sessions/id1 is encrypted"), "{e}");
        let other = sealer(2);
        let e = open(Some(&other), "sessions", b"id1", "sessions/id1", &env).unwrap_err();
        match &e {
            StoreError::KeyMismatch { stored, given, .. } => {
                assert_eq!(stored, &sealer(1).key_id().to_string());
                assert_eq!(given, &other.key_id().to_string());
            }
            other => panic!("expected KeyMismatch, got {other:?}"),
        }
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn altered_or_moved_envelopes_do_not_open() {
        let s = sealer(1);
        let env = s.seal("sessions", b"id1", JSON).unwrap();
        // Every byte after the key id is covered: nonce, ciphertext, tag.
        for i in [HEADER_LEN - 1, HEADER_LEN, env.len() - 1] {
            let mut bad = env.clone();
            bad[i] ^= 1;
            let e = open(Some(&s), "sessions", b"id1", "sessions/id1", &bad).unwrap_err();
            assert!(matches!(e, StoreError::Tampered { .. }), "byte {i}: {e:?}");
        }
        // Copied under another id or tree.
        let e = open(Some(&s), "sessions", b"id2", "sessions/id2", &env).unwrap_err();
        assert!(matches!(e, StoreError::Tampered { .. }), "{e:?}");
        let e = open(Some(&s), "other", b"id1", "other/id1", &env).unwrap_err();
        assert!(matches!(e, StoreError::Tampered { .. }), "{e:?}");
        // Truncated.
        let e = open(Some(&s), "sessions", b"id1", "sessions/id1", &env[..20]).unwrap_err();
        assert!(matches!(e, StoreError::Tampered { .. }), "{e:?}");
    }
}
