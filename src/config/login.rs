//! `[targets.login]`: a declared login flow — its typed steps (`StepAction`, parsed from the
//! TOML's one-action-key tables) and the signed-in check.

use super::target::default_status;
use serde::Deserialize;
use std::time::Duration;

/// One declared login step. Exactly one action key per step; `{username}` and `{password}`
/// in `value` are replaced by the account's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub struct LoginStep {
    /// What the step does.
    pub action: StepAction,
    /// Timeout of this step. Default: the navigation timeout.
    pub timeout: Option<Duration>,
}

/// One action of a login flow. `{username}` and `{password}` in a value are replaced by the
/// account's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// Navigate to a URL.
    Goto {
        /// Where (`http` or `https`).
        url: String,
    },
    /// Type `value` into the element matching `selector`.
    Fill {
        /// CSS selector of the input.
        selector: String,
        /// What to type (`{username}`, `{password}` replaced).
        value: String,
    },
    /// Click the element matching `selector` (waits for a navigation it starts).
    Click {
        /// CSS selector of the element.
        selector: String,
    },
    /// Press `key` (default Enter) in the element matching `selector`.
    Press {
        /// CSS selector of the element that gets the key.
        selector: String,
        /// The key, in CDP's naming (`Enter`, `Tab`, ...).
        key: String,
    },
    /// Choose `value` in the `<select>` matching `selector`.
    Select {
        /// CSS selector of the `<select>`.
        selector: String,
        /// The option's value.
        value: String,
    },
    /// Wait until an element matches `selector`.
    WaitFor {
        /// CSS selector to wait for.
        selector: String,
    },
    /// Wait until the URL contains `pattern` (or matches it, written `/regex/`).
    WaitForUrl {
        /// A substring, or `/regex/`.
        pattern: String,
    },
    /// Wait this long (`sleep = "1s"`).
    Sleep {
        /// How long.
        duration: Duration,
    },
    /// Wait a random time between `min` and `max` (`sleep = "1s-3s"`), as a person would:
    /// journeys that always pause exactly as long are easy to spot.
    SleepBetween {
        /// The shortest wait.
        min: Duration,
        /// The longest wait (at least `min`).
        max: Duration,
    },
    /// Scroll the page (`scroll = "bottom"`, `"top"`, `"600px"` down, `"-300px"` up, or a CSS
    /// selector to bring into view), smoothly, and wait for the scroll to end.
    Scroll {
        /// Where to.
        to: ScrollTo,
    },
}

/// Where a `scroll` step goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrollTo {
    /// The top of the page.
    Top,
    /// The bottom of the page (where lazy listings load more).
    Bottom,
    /// This many pixels down (negative: up).
    By(i64),
    /// The first element matching this CSS selector, brought into view (waited for first).
    Element(String),
}

impl ScrollTo {
    /// Reads `"top"`, `"bottom"`, `"600"` / `"600px"` / `"-300px"`, or else a CSS selector.
    ///
    /// # Errors
    /// When the text is empty.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err(
                "scroll needs \"top\", \"bottom\", a number of pixels or a selector".into(),
            );
        }
        Ok(match t {
            "top" => ScrollTo::Top,
            "bottom" => ScrollTo::Bottom,
            _ => match t.strip_suffix("px").unwrap_or(t).trim().parse::<i64>() {
                Ok(px) => ScrollTo::By(px),
                Err(_) => ScrollTo::Element(t.to_string()),
            },
        })
    }
}

impl std::fmt::Display for ScrollTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScrollTo::Top => f.write_str("top"),
            ScrollTo::Bottom => f.write_str("bottom"),
            ScrollTo::By(px) => write!(f, "{px}px"),
            ScrollTo::Element(sel) => f.write_str(sel),
        }
    }
}

impl StepAction {
    /// The action's name as written in the config (`goto`, `fill`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StepAction::Goto { .. } => "goto",
            StepAction::Fill { .. } => "fill",
            StepAction::Click { .. } => "click",
            StepAction::Press { .. } => "press",
            StepAction::Select { .. } => "select",
            StepAction::WaitFor { .. } => "wait_for",
            StepAction::WaitForUrl { .. } => "wait_for_url",
            StepAction::Sleep { .. } | StepAction::SleepBetween { .. } => "sleep",
            StepAction::Scroll { .. } => "scroll",
        }
    }

    /// The longest this step may sleep on purpose (its `sleep`), which its timeout does not
    /// cover.
    pub fn sleeps_up_to(&self) -> Duration {
        match self {
            StepAction::Sleep { duration } => *duration,
            StepAction::SleepBetween { max, .. } => *max,
            _ => Duration::ZERO,
        }
    }
}

impl LoginStep {
    /// A step without its own timeout.
    pub fn new(action: StepAction) -> Self {
        Self {
            action,
            timeout: None,
        }
    }
}

/// A login step as written in TOML: one action key, plus `value`/`key` where the action takes
/// them, plus an optional `timeout`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(skip_serializing_if = "Option::is_none")]
    goto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fill: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    click: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    press: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    select: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_for_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scroll: Option<String>,
    #[serde(default, with = "sleep_range", skip_serializing_if = "Option::is_none")]
    sleep: Option<(Duration, Duration)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, with = "opt_time", skip_serializing_if = "Option::is_none")]
    timeout: Option<Duration>,
}

impl TryFrom<RawStep> for LoginStep {
    type Error = String;

    fn try_from(r: RawStep) -> Result<Self, String> {
        let mut actions = Vec::new();
        let mut value = r.value;
        let mut key = r.key;
        let mut need_value =
            |what: &str| value.take().ok_or_else(|| format!("{what} needs a value"));
        if let Some(url) = r.goto {
            actions.push(StepAction::Goto { url });
        }
        if let Some(selector) = r.fill {
            let value = need_value("fill")?;
            actions.push(StepAction::Fill { selector, value });
        }
        if let Some(selector) = r.select {
            let value = need_value("select")?;
            actions.push(StepAction::Select { selector, value });
        }
        if let Some(selector) = r.click {
            actions.push(StepAction::Click { selector });
        }
        if let Some(selector) = r.press {
            let key = key.take().unwrap_or_else(|| "Enter".into());
            actions.push(StepAction::Press { selector, key });
        }
        if let Some(selector) = r.wait_for {
            actions.push(StepAction::WaitFor { selector });
        }
        if let Some(pattern) = r.wait_for_url {
            actions.push(StepAction::WaitForUrl { pattern });
        }
        if let Some(to) = r.scroll {
            actions.push(StepAction::Scroll {
                to: ScrollTo::parse(&to)?,
            });
        }
        match r.sleep {
            Some((min, max)) if min == max => actions.push(StepAction::Sleep { duration: min }),
            Some((min, max)) => actions.push(StepAction::SleepBetween { min, max }),
            None => {}
        }
        if actions.len() > 1 {
            let names: Vec<&str> = actions.iter().map(StepAction::name).collect();
            return Err(format!(
                "several actions ({}) in one step",
                names.join(", ")
            ));
        }
        let action = actions.pop().ok_or(
            "no action: use one of goto, fill, click, press, select, wait_for, wait_for_url, \
             scroll, sleep",
        )?;
        if value.is_some() {
            return Err(format!("{} takes no value", action.name()));
        }
        if key.is_some() {
            return Err(format!("{} takes no key (only press does)", action.name()));
        }
        Ok(Self {
            action,
            timeout: r.timeout,
        })
    }
}

impl From<LoginStep> for RawStep {
    fn from(s: LoginStep) -> Self {
        let mut r = RawStep {
            timeout: s.timeout,
            ..RawStep::default()
        };
        match s.action {
            StepAction::Goto { url } => r.goto = Some(url),
            StepAction::Fill { selector, value } => {
                (r.fill, r.value) = (Some(selector), Some(value))
            }
            StepAction::Click { selector } => r.click = Some(selector),
            StepAction::Press { selector, key } => (r.press, r.key) = (Some(selector), Some(key)),
            StepAction::Select { selector, value } => {
                (r.select, r.value) = (Some(selector), Some(value))
            }
            StepAction::WaitFor { selector } => r.wait_for = Some(selector),
            StepAction::WaitForUrl { pattern } => r.wait_for_url = Some(pattern),
            StepAction::Sleep { duration } => r.sleep = Some((duration, duration)),
            StepAction::SleepBetween { min, max } => r.sleep = Some((min, max)),
            StepAction::Scroll { to } => r.scroll = Some(to.to_string()),
        }
        r
    }
}

/// A step's optional `timeout` as a humantime duration (serde `with`).
mod opt_time {
    pub(super) use super::super::duration::{
        opt_duration as deserialize, ser_opt_duration as serialize,
    };
}

/// A step's `sleep` (serde `with`): one duration (`"1s"`) or a range (`"1s-3s"`, a random
/// wait each time).
mod sleep_range {
    pub(super) use super::{de_sleep_range as deserialize, ser_sleep_range as serialize};
}

/// A step's `sleep`: one duration (`"1s"`) or a range (`"1s-3s"`, a random wait each time),
/// never zero, the range's end at least its start.
fn de_sleep_range<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<(Duration, Duration)>, D::Error> {
    let s = String::deserialize(d)?;
    let one = |part: &str| {
        let v = humantime::parse_duration(part.trim()).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {:?}: {e}", part.trim()))
        })?;
        if v.is_zero() {
            return Err(serde::de::Error::custom(format!(
                "duration {:?} must be greater than zero",
                part.trim()
            )));
        }
        Ok(v)
    };
    let (min, max) = match s.split_once('-') {
        Some((lo, hi)) => (one(lo)?, one(hi)?),
        None => {
            let v = one(&s)?;
            (v, v)
        }
    };
    if max < min {
        return Err(serde::de::Error::custom(format!(
            "sleep range {s:?} ends before it starts"
        )));
    }
    Ok(Some((min, max)))
}

/// Writes a step's `sleep` back: `"1s"`, or `"1s-3s"` for a range.
fn ser_sleep_range<S: serde::Serializer>(
    d: &Option<(Duration, Duration)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let f = |d: Duration| humantime::format_duration(d).to_string();
    match d {
        Some((min, max)) if min == max => s.serialize_str(&f(*min)),
        Some((min, max)) => s.serialize_str(&format!("{}-{}", f(*min), f(*max))),
        None => s.serialize_none(),
    }
}

/// How to tell whether a login session is alive.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Visited in the live context; its own response (redirects not followed) must have
    /// `expect_status`.
    pub url: Option<String>,
    /// Default: 200.
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// An element that proves being signed in.
    pub selector: Option<String>,
    /// An element that proves being signed out.
    pub signed_out: Option<String>,
}

/// `[targets.login]`: a declared login flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The login page. Required with `accounts_dir`; a target whose sessions come only from
    /// `sessions_dir` cannot sign in and leaves it out (empty, [`LoginConfig::can_sign_in`]).
    #[serde(default)]
    pub url: String,
    /// The steps run on the login page, in order (at least one with `accounts_dir`; none for a
    /// `sessions_dir`-only target).
    #[serde(default)]
    pub steps: Vec<LoginStep>,
    /// How to tell that the sign-in worked (and, later, that it still holds).
    pub check: CheckConfig,
    /// Failed logins in a row before the account is marked failed (it is then retried only
    /// when its file changes or on an explicit refresh). Default: 5.
    #[serde(default = "d_attempts")]
    pub max_login_attempts: u32,
}

fn d_attempts() -> u32 {
    5
}

impl LoginConfig {
    /// Whether the flow can sign in (it has a login page). Without one, only the `check`
    /// runs: sessions dropped into `sessions_dir` are kept alive, never signed in again.
    pub fn can_sign_in(&self) -> bool {
        !self.url.trim().is_empty()
    }
}
