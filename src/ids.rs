//! The one rule for the ids that travel in API paths and headers: event ids, session ids and
//! target names as the API takes them. The API checks every such id with [`check`], and so
//! does every way of adding an event (`warmer events add` and `import`), so an event the CLI
//! stores is always one the API can serve (a space, say, is refused at both doors).
//!
//! The rule: 1 to [`MAX_LEN`] characters, each an ASCII letter or digit or one of `-_.:`, and
//! no `..` (an id is also a path segment, and `..` would read as one).

/// Longest id, in bytes (all allowed characters are ASCII, so also in characters).
pub const MAX_LEN: usize = 200;

/// The rule as a regular expression, for the OpenAPI document (with `minLength` 1 and
/// `maxLength` [`MAX_LEN`]): allowed characters, never two dots in a row.
pub const PATTERN: &str = r"^(\.?[A-Za-z0-9_:-])*\.?$";

/// The rule in words, as error messages say it.
pub const RULE: &str = "use letters, digits, '-', '_', '.' or ':' (at most 200, no '..')";

/// An id that breaks the rule; its message names the id and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {id:?}: {RULE}")]
pub struct InvalidId {
    /// What the id was meant to be (`eventId`, `event id`, `id`, ...), as the caller names it.
    pub kind: &'static str,
    /// The id as given.
    pub id: String,
}

/// Whether `id` follows the rule.
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        && !id.contains("..")
}

/// Checks `id` against the rule; `kind` names it in the error.
///
/// # Errors
/// [`InvalidId`] when the id is empty, too long, has a character outside the rule or a `..`.
pub fn check(kind: &'static str, id: &str) -> Result<(), InvalidId> {
    if is_valid(id) {
        Ok(())
    } else {
        Err(InvalidId {
            kind,
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in [
            "1001",
            "a-b_c.d:e",
            ".x",
            "x.",
            "a.b.c",
            &"9".repeat(MAX_LEN),
        ] {
            assert!(is_valid(ok), "{ok:?}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a..b",
            "..",
            "é",
            "a\n",
            &"9".repeat(MAX_LEN + 1),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_error_names_the_id() {
        let e = check("event id", "a b").unwrap_err();
        assert!(
            e.to_string().starts_with("invalid event id \"a b\": "),
            "{e}"
        );
    }
}
