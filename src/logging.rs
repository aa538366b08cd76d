//! The log filter: whatever level is asked for, chromiumoxide stays at `warn`, because at
//! debug and trace it prints raw CDP traffic — cookie values and typed passwords included.
//! Its handler is silenced: its one message, an `ERROR` for a closed connection, is printed
//! every time a browser closes, on shutdown too, and the supervisor logs what it means itself
//! ("browser gone; relaunching" when it was not asked for).

use tracing_subscriber::EnvFilter;

/// Builds the filter from a user's directives (e.g. `debug` or `session_warmer=trace`).
pub fn filter(requested: &str) -> EnvFilter {
    let kept: Vec<&str> = requested
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.starts_with("chromiumoxide"))
        .collect();
    let mut directives = kept.join(",");
    if !directives.is_empty() {
        directives.push(',');
    }
    directives.push_str("chromiumoxide=warn,chromiumoxide::conn=error,chromiumoxide::handler=off");
    EnvFilter::new(directives)
}

#[cfg(test)]
mod tests {
    #[test]
    fn chromiumoxide_is_capped_whatever_is_asked() {
        let f = super::filter("trace,chromiumoxide=trace").to_string();
        assert!(f.contains("chromiumoxide=warn"), "{f}");
        assert!(!f.contains("chromiumoxide=trace"), "{f}");
        assert!(f.contains("chromiumoxide::handler=off"), "{f}");
    }
}
