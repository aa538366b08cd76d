//! Fault knobs: the ways an event page can misbehave, and their short names used in
//! `?fault=NAME` and in the admin endpoint `POST /__demo/fault`.

use std::{fmt, str::FromStr, time::Duration};

/// How long `?fault=slow` (and `{"fault": "slow"}`) delays the page.
pub const SLOW_FAULT_DELAY: Duration = Duration::from_secs(3);

/// A way for `/event/{id}` to misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `5xx`: 503 Service Unavailable with `Retry-After`.
    ServerError,
    /// `slow`: the normal page, after this delay (3 s when chosen by name).
    Slow(Duration),
    /// `hang`: never respond (until the site shuts down).
    Hang,
    /// `reset`: close the TCP connection (RST) without writing any response.
    Reset,
    /// `redirect-loop`: 302 back to the same URL, forever.
    RedirectLoop,
    /// `large`: the normal page padded to about 5 MB of HTML.
    LargePage,
    /// `never-load`: the normal page (its script still runs), plus an `<img>` whose response
    /// never completes, so the `load` event never fires.
    NeverLoad,
    /// `429`: 429 Too Many Requests with `Retry-After`.
    TooManyRequests,
    /// `download`: a file (`application/octet-stream`, `Content-Disposition: attachment`)
    /// instead of the page: the browser downloads it and never loads a page.
    Download,
}

/// Every fault name, in the order the docs list them.
pub const FAULT_NAMES: [&str; 9] = [
    "5xx",
    "slow",
    "hang",
    "reset",
    "redirect-loop",
    "large",
    "never-load",
    "429",
    "download",
];

impl Fault {
    /// The short name used in `?fault=` and the admin endpoint.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::ServerError => "5xx",
            Fault::Slow(_) => "slow",
            Fault::Hang => "hang",
            Fault::Reset => "reset",
            Fault::RedirectLoop => "redirect-loop",
            Fault::LargePage => "large",
            Fault::NeverLoad => "never-load",
            Fault::TooManyRequests => "429",
            Fault::Download => "download",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Slow(d) => write!(f, "slow ({} ms)", d.as_millis()),
            other => f.write_str(other.name()),
        }
    }
}

/// A fault name that is not one of [`FAULT_NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {0:?}; expected one of 5xx, slow, hang, reset, redirect-loop, large, never-load, 429, download")]
pub struct UnknownFault(pub String);

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "5xx" => Fault::ServerError,
            "slow" => Fault::Slow(SLOW_FAULT_DELAY),
            "hang" => Fault::Hang,
            "reset" => Fault::Reset,
            "redirect-loop" => Fault::RedirectLoop,
            "large" => Fault::LargePage,
            "never-load" => Fault::NeverLoad,
            "429" => Fault::TooManyRequests,
            "download" => Fault::Download,
            other => return Err(UnknownFault(other.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for name in FAULT_NAMES {
            let fault: Fault = name.parse().unwrap();
            assert_eq!(fault.name(), name);
        }
        assert_eq!("slow".parse(), Ok(Fault::Slow(SLOW_FAULT_DELAY)));
        assert!("boom".parse::<Fault>().is_err());
    }
}
