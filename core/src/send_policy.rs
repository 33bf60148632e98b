//! Whether a text may leave now: `Policy::may_send` is the one rule the outbox asks before
//! every send — consent for the text's purpose, quiet hours in the recipient's local time
//! (with the stricter state windows, from a data table) and frequency caps for marketing.
//! Pure: the caller passes what the store knows and the injected clock's now.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Weekday;
use serde::{Deserialize, Deserializer};
use strum::{Display, EnumString, IntoStaticStr};

use crate::{ConsentPurpose, Phone, TimeZoneName, geo};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
const WEEK_MS: i64 = 7 * DAY_MS;
/// How far ahead the next allowed minute is looked for. Every real table allows some minute
/// within a week; one that does not (a typo such as `from = until`) refuses instead of looping.
const HORIZON_MS: i64 = 8 * DAY_MS;

/// The built-in quiet-hours table (TCPA plus the stricter states).
const BUILTIN_QUIET_HOURS: &str = include_str!("../data/quiet_hours.toml");

/// What the customer agreed to for marketing texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketingConsent {
    /// No express opt-in on record.
    None,
    /// Opted in, but the program's confirmation text has not gone out yet (CTIA: it comes
    /// before the first marketing message).
    AwaitingConfirmation,
    /// Opted in and confirmed.
    Confirmed,
}

/// One marketing text already sent to this recipient (the last week's matter for the caps).
#[derive(Debug, Clone, Copy)]
pub struct SentMarketing<'a> {
    pub at_ms: i64,
    /// What it was about (a checkout, a campaign), for the same-subject limit.
    pub subject: Option<&'a str>,
}

/// What the store knows about the person a text is for.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub phone: &'a Phone,
    pub opted_out: bool,
    pub marketing: MarketingConsent,
    /// The ship-to subdivision (`US-FL`) or country (`CA`) when an order or checkout gave one.
    pub ship_to_region: Option<&'a str>,
    /// A time zone the customer's own record names, when one does.
    pub zone: Option<&'a TimeZoneName>,
    /// Marketing texts sent in the last week, any order.
    pub recent_marketing: &'a [SentMarketing<'a>],
}

/// The text about to be sent.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub purpose: ConsentPurpose,
    /// A STOP/START/HELP confirmation: always allowed (one per keyword, which the caller's
    /// reply-to rule guarantees), even to an opted-out number.
    pub compliance: bool,
    pub subject: Option<&'a str>,
    /// A time after which the text is pointless (an offer's expiry): past it, refuse.
    pub not_after_ms: Option<i64>,
}

/// Why a text waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Display, EnumString, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum DeferReason {
    QuietHours,
    DailyCap,
    WeeklyCap,
    SubjectCap,
}

/// Why a text never goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Display, EnumString, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RefuseReason {
    OptedOut,
    NoMarketingConsent,
    AwaitingConfirmation,
    /// The first allowed minute is after the text's `not_after`.
    Expired,
    /// The rules allow no minute in the next eight days.
    NoAllowedTime,
}

/// The outbox's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Send at `until_ms`, the first allowed moment — never dropped.
    Defer {
        until_ms: i64,
        reason: DeferReason,
    },
    Refuse(RefuseReason),
}

/// Per-recipient limits on marketing texts, over rolling windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    pub per_day: Option<u32>,
    pub per_week: Option<u32>,
}

/// Everything `may_send` decides by, for one merchant.
#[derive(Debug, Clone)]
pub struct Policy {
    pub quiet_hours: QuietHours,
    pub caps: Caps,
    /// The zone used when nothing places the recipient.
    pub merchant_zone: TimeZoneName,
    /// Hold replies to a customer's own texts to quiet hours too (some vendors do, in
    /// Florida's reading); off by default: a reply is not marketing.
    pub conversational_quiet_hours: bool,
}

impl Policy {
    /// The decision for one text at `now_ms`.
    pub fn may_send(&self, recipient: &Recipient<'_>, message: &Outgoing<'_>, now_ms: i64) -> Verdict {
        if message.compliance {
            return Verdict::Allow;
        }
        if recipient.opted_out {
            return Verdict::Refuse(RefuseReason::OptedOut);
        }
        let (quiet, capped) = match message.purpose {
            ConsentPurpose::Transactional => (false, false),
            ConsentPurpose::Conversational => (self.conversational_quiet_hours, false),
            ConsentPurpose::Marketing => match recipient.marketing {
                MarketingConsent::None => return Verdict::Refuse(RefuseReason::NoMarketingConsent),
                MarketingConsent::AwaitingConfirmation => {
                    return Verdict::Refuse(RefuseReason::AwaitingConfirmation);
                }
                MarketingConsent::Confirmed => (true, true),
            },
        };
        let place = Place::of(recipient, &self.merchant_zone);
        let mut at = now_ms;
        let mut reason = None;
        if capped {
            // Caps only loosen as time passes (no new send lands while this one waits), so
            // the earliest time they allow, then the first quiet-hours minute after it,
            // satisfies both.
            for (bound, why) in self.cap_bounds(recipient, message, &place, now_ms) {
                if bound > at {
                    at = bound;
                    reason = Some(why);
                }
            }
        }
        if quiet {
            match self.quiet_hours.next_allowed(&place, at) {
                Some(next) if next > at => {
                    at = next;
                    reason = Some(DeferReason::QuietHours);
                }
                Some(_) => {}
                None => return Verdict::Refuse(RefuseReason::NoAllowedTime),
            }
        }
        if message.not_after_ms.is_some_and(|last| at > last) {
            return Verdict::Refuse(RefuseReason::Expired);
        }
        match reason {
            Some(reason) if at > now_ms => Verdict::Defer { until_ms: at, reason },
            _ => Verdict::Allow,
        }
    }

    /// For each cap, the earliest time it allows one more text.
    fn cap_bounds(
        &self,
        recipient: &Recipient<'_>,
        message: &Outgoing<'_>,
        place: &Place<'_>,
        now_ms: i64,
    ) -> Vec<(i64, DeferReason)> {
        let all: Vec<i64> = recipient.recent_marketing.iter().map(|s| s.at_ms).collect();
        let mut bounds = Vec::new();
        if let Some(limit) = self.caps.per_day {
            bounds.extend(cap_bound(&all, limit, DAY_MS, now_ms).map(|b| (b, DeferReason::DailyCap)));
        }
        if let Some(limit) = self.caps.per_week {
            bounds.extend(cap_bound(&all, limit, WEEK_MS, now_ms).map(|b| (b, DeferReason::WeeklyCap)));
        }
        if let (Some(subject), Some(limit)) = (message.subject, self.quiet_hours.subject_limit(place)) {
            let same: Vec<i64> = recipient
                .recent_marketing
                .iter()
                .filter(|s| s.subject == Some(subject))
                .map(|s| s.at_ms)
                .collect();
            bounds.extend(cap_bound(&same, limit, DAY_MS, now_ms).map(|b| (b, DeferReason::SubjectCap)));
        }
        bounds
    }
}

/// When fewer than `limit` of `sent` fall in the rolling `(t - window, t]`: `None` if they
/// already do at `now_ms`.
fn cap_bound(sent: &[i64], limit: u32, window: i64, now_ms: i64) -> Option<i64> {
    let mut inside: Vec<i64> = sent
        .iter()
        .copied()
        .filter(|&at| at > now_ms - window && at <= now_ms)
        .collect();
    // Settings refuse a cap of 0; read one as 1 rather than as "never".
    let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    if inside.len() < limit {
        return None;
    }
    inside.sort_unstable();
    // Enough of the oldest must age out to leave limit - 1 inside; a send at s stops
    // counting at s + window.
    let must_leave = inside.len() + 1 - limit;
    Some(inside[must_leave - 1] + window)
}

/// Where the recipient may be: every zone and region the known facts point to. When they
/// disagree (an area code from one state, a ship-to address in another, an area code across
/// a zone line) the rules of all of them hold.
#[derive(Debug)]
struct Place<'a> {
    zones: Vec<&'a TimeZoneName>,
    regions: Vec<&'a str>,
}

impl<'a> Place<'a> {
    fn of(recipient: &Recipient<'a>, merchant_zone: &'a TimeZoneName) -> Self {
        let mut zones: Vec<&'a TimeZoneName> = Vec::new();
        let mut regions: Vec<&'a str> = Vec::new();
        zones.extend(recipient.zone);
        if let Some(region) = recipient.ship_to_region {
            regions.push(region);
            zones.extend(geo::zones_of_region(region));
        }
        if let Some(region) = geo::region_of_phone(recipient.phone) {
            regions.push(region);
        }
        zones.extend(geo::zones_of_phone(recipient.phone));
        if zones.is_empty() {
            zones.push(merchant_zone);
        }
        zones.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        zones.dedup();
        regions.sort_unstable();
        regions.dedup();
        Self { zones, regions }
    }
}

/// A time of day as minutes since midnight, written `"HH:MM"` (`"24:00"` is the day's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub fn parse(raw: &str) -> Option<Self> {
        let (hours, minutes) = raw.trim().split_once(':')?;
        let digits =
            |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(hours, 2) || !digits(minutes, 2) || minutes.len() != 2 {
            return None;
        }
        let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
        if hours > 24 || minutes > 59 || (hours == 24 && minutes > 0) {
            return None;
        }
        Some(Self(hours * 60 + minutes))
    }

    fn seconds(self) -> i32 {
        i32::from(self.0) * 60
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).ok_or_else(|| {
            serde::de::Error::custom(format!("{raw:?} is not a time of day such as \"08:00\""))
        })
    }
}

/// A day of the week as the table writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Self::Mon => Weekday::Monday,
            Self::Tue => Weekday::Tuesday,
            Self::Wed => Weekday::Wednesday,
            Self::Thu => Weekday::Thursday,
            Self::Fri => Weekday::Friday,
            Self::Sat => Weekday::Saturday,
            Self::Sun => Weekday::Sunday,
        }
    }
}

/// One allowed stretch of the day for a region.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub region: String,
    /// The weekdays it covers; every day when absent.
    #[serde(default)]
    pub days: Option<Vec<Day>>,
    pub from: TimeOfDay,
    pub until: TimeOfDay,
}

/// A same-subject limit for a region.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectLimit {
    pub region: String,
    pub per_24h: u32,
}

/// The quiet-hours table: windows and same-subject limits by region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    #[serde(default, rename = "window")]
    pub windows: Vec<Window>,
    #[serde(default, rename = "subject_limit")]
    pub subject_limits: Vec<SubjectLimit>,
}

/// Why a quiet-hours table is unusable, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quiet hours {entry}: {problem}")]
pub struct InvalidQuietHours {
    /// `window[3].until`, `subject_limit[0].region`.
    pub entry: String,
    pub problem: String,
}

impl QuietHours {
    /// The table Parley ships: TCPA's 8:00–21:00 everywhere plus the stricter states.
    pub fn builtin() -> Self {
        // Compiled in and checked by a unit test, so this cannot fail at run time.
        toml::from_str::<Self>(BUILTIN_QUIET_HOURS)
            .ok()
            .filter(|table| table.validate().is_ok())
            .unwrap_or_default()
    }

    /// The built-in table with a merchant's rules added; adding a rule can only narrow.
    pub fn extended(mut self, extra: Self) -> Self {
        self.windows.extend(extra.windows);
        self.subject_limits.extend(extra.subject_limits);
        self
    }

    pub fn validate(&self) -> Result<(), InvalidQuietHours> {
        let bad = |entry: String, problem: &str| InvalidQuietHours {
            entry,
            problem: problem.to_owned(),
        };
        for (i, window) in self.windows.iter().enumerate() {
            if !is_region(&window.region) {
                return Err(bad(format!("window[{i}].region"), REGION_HELP));
            }
            if window.from >= window.until {
                return Err(bad(format!("window[{i}].until"), "must be later than `from`"));
            }
            if window.days.as_ref().is_some_and(Vec::is_empty) {
                return Err(bad(
                    format!("window[{i}].days"),
                    "names no day; leave it out for every day",
                ));
            }
        }
        for (i, limit) in self.subject_limits.iter().enumerate() {
            if !is_region(&limit.region) {
                return Err(bad(format!("subject_limit[{i}].region"), REGION_HELP));
            }
            if limit.per_24h == 0 {
                return Err(bad(format!("subject_limit[{i}].per_24h"), "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The first moment at or after `from_ms` every applicable rule allows, in every zone
    /// (`from_ms` itself when it is allowed, else the first whole minute).
    fn next_allowed(&self, place: &Place<'_>, from_ms: i64) -> Option<i64> {
        let by_region = self.windows_by_region(place);
        if self.allows(&by_region, place, from_ms) {
            return Some(from_ms);
        }
        // Minute steps in absolute time: daylight-saving gaps and repeats need no special case.
        let first = from_ms.div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
        (0..HORIZON_MS / MINUTE_MS)
            .map(|step| first + step * MINUTE_MS)
            .find(|&at| self.allows(&by_region, place, at))
    }

    fn windows_by_region<'w>(&'w self, place: &Place<'_>) -> BTreeMap<&'w str, Vec<&'w Window>> {
        let mut by_region: BTreeMap<&str, Vec<&Window>> = BTreeMap::new();
        for window in &self.windows {
            if applies(&window.region, place) {
                by_region.entry(window.region.as_str()).or_default().push(window);
            }
        }
        by_region
    }

    fn allows(&self, by_region: &BTreeMap<&str, Vec<&Window>>, place: &Place<'_>, at_ms: i64) -> bool {
        let Ok(instant) = Timestamp::from_millisecond(at_ms) else {
            return false;
        };
        place.zones.iter().all(|zone| {
            let local = instant.to_zoned_datetime(zone.zone());
            let weekday = local.weekday();
            let second =
                i32::from(local.hour()) * 3600 + i32::from(local.minute()) * 60 + i32::from(local.second());
            by_region.values().all(|windows| {
                windows.iter().any(|w| {
                    let today = w
                        .days
                        .as_ref()
                        .is_none_or(|days| days.iter().any(|d| d.weekday() == weekday));
                    today && w.from.seconds() <= second && second < w.until.seconds()
                })
            })
        })
    }

    /// The strictest same-subject limit of the recipient's regions.
    fn subject_limit(&self, place: &Place<'_>) -> Option<u32> {
        self.subject_limits
            .iter()
            .filter(|limit| applies(&limit.region, place))
            .map(|limit| limit.per_24h)
            .min()
    }
}

const REGION_HELP: &str = "must be \"*\", a country code (\"US\") or a subdivision code (\"US-FL\")";

/// `*`, `US` or `US-FL`.
fn is_region(region: &str) -> bool {
    let upper = |s: &str| s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    match region.split_once('-') {
        _ if region == "*" => true,
        None => region.len() == 2 && upper(region),
        Some((country, sub)) => {
            country.len() == 2 && upper(country) && (1..=3).contains(&sub.len()) && upper(sub)
        }
    }
}

/// Whether a rule for `rule_region` binds a recipient who may be in `place`.
fn applies(rule_region: &str, place: &Place<'_>) -> bool {
    rule_region == "*"
        || place.regions.iter().any(|region| {
            *region == rule_region
                || region
                    .split_once('-')
                    .is_some_and(|(country, _)| country == rule_region)
        })
}

#[cfg(test)]
mod tests;
