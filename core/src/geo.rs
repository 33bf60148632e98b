//! Where a phone number probably is: the time zones of its prefix and, for North American
//! numbers, the state or province of its area code. Quiet hours are the recipient's local
//! time, and the stricter state windows follow residence, which an area code presumes when
//! the ship-to address is unknown. The data is libphonenumber's (Apache-2.0), generated into
//! `core/data/` by `scripts/gen-phone-data.py` and compiled in, so every host agrees.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use crate::{Phone, TimeZoneName};

/// libphonenumber's `timezones/map_data.txt`: `PREFIX|Zone&Zone`, longest prefix wins.
const TIMEZONES: &str = include_str!("../data/phone_timezones.txt");
/// NANP area codes to ISO 3166-2 subdivisions (`1201|US-NJ`) or countries (`1876|JM`).
const NANP_REGIONS: &str = include_str!("../data/nanp_regions.txt");

struct Geography {
    zones: BTreeMap<String, Vec<TimeZoneName>>,
    regions: BTreeMap<String, String>,
    /// Every zone some area code of a region lies in: a ship-to state spanning two zones
    /// (Florida, Texas) answers both.
    region_zones: BTreeMap<String, Vec<TimeZoneName>>,
    /// Prefixes whose zones keep different clocks (`1`: every NANP zone from Guam to Adak).
    /// Such an entry for a whole country places nobody.
    spread: BTreeSet<String>,
    longest_prefix: usize,
}

static GEOGRAPHY: LazyLock<Geography> = LazyLock::new(Geography::load);

impl Geography {
    fn load() -> Self {
        let mut zones = BTreeMap::new();
        for (prefix, names) in data_lines(TIMEZONES) {
            // libphonenumber writes `Etc/Unknown` for prefixes it cannot place: no zone.
            let parsed: Vec<TimeZoneName> = names
                .split('&')
                .filter_map(|name| TimeZoneName::parse(name).ok())
                .collect();
            if !parsed.is_empty() {
                zones.insert(prefix.to_owned(), parsed);
            }
        }
        let regions: BTreeMap<String, String> = data_lines(NANP_REGIONS)
            .map(|(prefix, region)| (prefix.to_owned(), region.to_owned()))
            .collect();
        let mut spans: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for (prefix, region) in &regions {
            if let Some(found) = zones.get(prefix) {
                let set = spans.entry(region.clone()).or_default();
                set.extend(found.iter().map(TimeZoneName::as_str));
            }
        }
        let region_zones = spans
            .into_iter()
            .map(|(region, names)| {
                let parsed = names.into_iter().filter_map(|n| TimeZoneName::parse(n).ok());
                (region, parsed.collect())
            })
            .collect();
        let spread = zones
            .iter()
            .filter(|(_, found)| keeps_several_clocks(found))
            .map(|(prefix, _)| prefix.clone())
            .collect();
        let longest_prefix = zones.keys().map(String::len).max().unwrap_or(0);
        Self {
            zones,
            regions,
            region_zones,
            spread,
            longest_prefix,
        }
    }
}

/// Whether the zones show different UTC offsets in winter or in summer.
fn keeps_several_clocks(zones: &[TimeZoneName]) -> bool {
    ["2026-01-15T12:00:00Z", "2026-07-15T12:00:00Z"].iter().any(|at| {
        let Ok(instant) = at.parse::<jiff::Timestamp>() else {
            return false;
        };
        let mut offsets = zones.iter().map(|zone| zone.zone().to_offset(instant));
        offsets
            .next()
            .is_some_and(|first| offsets.any(|other| other != first))
    })
}

fn data_lines(data: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    data.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('|'))
}

/// The digits after the `+`.
fn digits(phone: &Phone) -> &str {
    phone.as_str().trim_start_matches('+')
}

/// The time zones a number's prefix lies in (several when an area code spans a zone line),
/// empty when the data has none for it, or only the whole country's when its zones keep
/// different clocks (an unassigned US area code is not "anywhere from Guam to Adak").
pub fn zones_of_phone(phone: &Phone) -> &'static [TimeZoneName] {
    let geography = &*GEOGRAPHY;
    let digits = digits(phone);
    let country_code = phonenumber::parse(None, phone.as_str())
        .map(|number| number.code().value().to_string())
        .unwrap_or_default();
    (1..=digits.len().min(geography.longest_prefix))
        .rev()
        .find_map(|len| {
            let prefix = &digits[..len];
            geography.zones.get(prefix).map(|found| (prefix, found))
        })
        .filter(|(prefix, _)| !(*prefix == country_code && geography.spread.contains(*prefix)))
        .map_or(&[], |(_, found)| found.as_slice())
}

/// The US state or Canadian province (`US-FL`, `CA-ON`) or the country (`JM`) a North American
/// area code belongs to; `None` for other countries' numbers and unassigned codes.
pub fn region_of_phone(phone: &Phone) -> Option<&'static str> {
    let digits = digits(phone);
    let area = digits.get(..4).filter(|_| digits.starts_with('1'))?;
    GEOGRAPHY.regions.get(area).map(String::as_str)
}

/// The zones a region's area codes lie in, for a ship-to address known only by its state.
pub fn zones_of_region(region: &str) -> &'static [TimeZoneName] {
    GEOGRAPHY.region_zones.get(region).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(raw: &str) -> Vec<&'static str> {
        let phone = Phone::parse(raw).unwrap();
        zones_of_phone(&phone).iter().map(TimeZoneName::as_str).collect()
    }

    fn region(raw: &str) -> Option<&'static str> {
        region_of_phone(&Phone::parse(raw).unwrap())
    }

    #[test]
    fn area_codes_name_their_zone_and_state() {
        assert_eq!(zones("+12125550123"), ["America/New_York"]);
        assert_eq!(region("+12125550123"), Some("US-NY"));
        assert_eq!(zones("+14055550123"), ["America/Chicago"]);
        assert_eq!(region("+14055550123"), Some("US-OK"));
        assert_eq!(region("+13055550123"), Some("US-FL"));
        assert_eq!(region("+14165550123"), Some("CA-ON"));
        assert_eq!(zones("+18085550123"), ["Pacific/Honolulu"]);
        assert_eq!(region("+18085550123"), Some("US-HI"));
    }

    #[test]
    fn other_countries_have_zones_but_no_nanp_region() {
        assert_eq!(zones("+442079460000"), ["Europe/London"]);
        assert_eq!(region("+442079460000"), None);
        assert_eq!(region("+4915112345678"), None);
    }

    #[test]
    fn a_state_spanning_a_zone_line_answers_both_zones() {
        // El Paso (915) keeps Mountain time; the rest of Texas Central.
        let texas: Vec<&str> = zones_of_region("US-TX")
            .iter()
            .map(TimeZoneName::as_str)
            .collect();
        assert!(texas.contains(&"America/Chicago"), "{texas:?}");
        assert!(texas.contains(&"America/Denver"), "{texas:?}");
        assert_eq!(zones("+19075550123"), ["America/Adak", "America/Anchorage"]);
        assert!(zones_of_region("US-ZZ").is_empty());
    }

    #[test]
    fn a_whole_country_of_clocks_places_nobody() {
        // 1800 (toll-free) has no area-code entry; "1" alone spans Guam to Adak.
        assert!(zones("+18005550101").is_empty());
        assert_eq!(region("+18005550101"), None);
        // Russia's country-wide entry spans eleven zones too; the UK's keeps one clock.
        assert!(zones("+79991234567").is_empty() || zones("+79991234567").len() < 11);
        assert!(!zones("+447700900123").is_empty());
    }
}
