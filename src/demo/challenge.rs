//! The UA-bound challenge: FNV-1a 32-bit over `User-Agent + nonce`, computed identically by the
//! event page's JavaScript (see `pages::EVENT_SCRIPT`) and by the server when it checks the cookie.

/// FNV-1a 32-bit offset basis.
const FNV_OFFSET: u32 = 0x811c_9dc5;
/// FNV-1a 32-bit prime.
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a 32-bit hash of `bytes`.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The hash part of the `challenge` cookie a browser with user agent `ua` earns for `nonce`:
/// FNV-1a 32-bit of the UTF-8 bytes of `ua + nonce`, as 8 lowercase hex digits.
///
/// The full cookie value is `"{nonce}.{challenge_hash(ua, nonce)}"`.
pub fn challenge_hash(ua: &str, nonce: &str) -> String {
    let mut input = String::with_capacity(ua.len() + nonce.len());
    input.push_str(ua);
    input.push_str(nonce);
    format!("{:08x}", fnv1a32(input.as_bytes()))
}

/// Why a request to the protected API was refused; the `Display` text is the JSON `error` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// No `visitor` cookie was sent.
    #[error("missing visitor cookie")]
    MissingVisitor,
    /// The `visitor` cookie is not one the site issued (or it was revoked, or it expired).
    #[error("unknown visitor")]
    UnknownVisitor,
    /// No `challenge` cookie: the page's JavaScript never ran for this client.
    #[error("missing challenge cookie")]
    MissingChallenge,
    /// The challenge was earned for another visitor's nonce (or is malformed).
    #[error("challenge does not match visitor")]
    NonceMismatch,
    /// The challenge hash does not match the request's `User-Agent`.
    #[error("challenge not earned with this User-Agent")]
    WrongUserAgent,
}

/// Checks a `challenge` cookie value against the visitor's `nonce` and the request's `ua`.
///
/// # Errors
/// [`ChallengeError::NonceMismatch`] when the cookie is malformed or carries another nonce,
/// [`ChallengeError::WrongUserAgent`] when the hash was computed for another user agent.
pub fn verify(cookie: &str, nonce: &str, ua: &str) -> Result<(), ChallengeError> {
    let (got_nonce, got_hash) = cookie
        .split_once('.')
        .ok_or(ChallengeError::NonceMismatch)?;
    if got_nonce != nonce {
        return Err(ChallengeError::NonceMismatch);
    }
    if got_hash != challenge_hash(ua, nonce) {
        return Err(ChallengeError::WrongUserAgent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn challenge_hash_is_eight_hex_digits_of_ua_then_nonce() {
        assert_eq!(challenge_hash("foo", "bar"), "bf9cf968");
        assert_eq!(challenge_hash("", ""), "811c9dc5");
        // UTF-8 bytes, not UTF-16 code units.
        assert_eq!(
            challenge_hash("é", ""),
            format!("{:08x}", fnv1a32(&[0xc3, 0xa9]))
        );
    }

    #[test]
    fn verify_reports_the_first_mismatch() {
        let good = format!("n1.{}", challenge_hash("UA", "n1"));
        assert_eq!(verify(&good, "n1", "UA"), Ok(()));
        assert_eq!(
            verify(&good, "n2", "UA"),
            Err(ChallengeError::NonceMismatch)
        );
        assert_eq!(
            verify(&good, "n1", "UA2"),
            Err(ChallengeError::WrongUserAgent)
        );
        assert_eq!(
            verify("garbage", "n1", "UA"),
            Err(ChallengeError::NonceMismatch)
        );
    }
}
