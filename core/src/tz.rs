//! Merchant and customer time zones, checked against the IANA tz database that ships inside
//! the binary (so a host without `/usr/share/zoneinfo` behaves the same): quiet hours and
//! schedules are computed in them.

use serde::{Deserialize, Serialize};

/// An IANA time zone name the tz database knows, e.g. `America/Denver`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

/// Why a string is not a time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IANA time zone name such as America/Denver")]
pub struct InvalidTimeZone(pub String);

impl TimeZoneName {
    pub fn parse(raw: &str) -> Result<Self, InvalidTimeZone> {
        let name = raw.trim();
        // Abbreviations such as "MST" or "EST" are in the database as legacy links but name
        // no place (and so no daylight-saving rule a merchant means): refuse them.
        let is_place = name.contains('/') || name == "UTC";
        match jiff::tz::db().get(name) {
            Ok(_) if is_place => Ok(Self(name.to_owned())),
            _ => Err(InvalidTimeZone(raw.to_owned())),
        }
    }

    /// The zone's rules, for converting instants to local time.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        // Validated at construction, and the bundled database does not change at run time.
        jiff::tz::db().get(&self.0).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

string_newtype!(TimeZoneName, InvalidTimeZone);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_zones_pass_and_shapes_that_only_look_right_do_not() {
        for good in [
            "America/Denver",
            "Europe/Berlin",
            "UTC",
            "America/Argentina/Buenos_Aires",
        ] {
            assert_eq!(TimeZoneName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "MST",
            "-7",
            "America/Atlantis",
            "Mars/Olympus_Mons",
            "",
            "EST5EDT",
        ] {
            assert!(TimeZoneName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_zone_converts_to_local_time() {
        let denver = TimeZoneName::parse("America/Denver").unwrap().zone();
        let noon_utc: jiff::Timestamp = "2026-07-01T18:00:00Z".parse().unwrap();
        assert_eq!(noon_utc.to_zoned_datetime(denver).hour(), 12);
    }
}
