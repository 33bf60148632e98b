//! Scope: the places (and product categories) a question or a passage is about, so a rule
//! written for Alaska, for Canada or for e-bikes is not read out as the general rule, and a
//! question about Canada prefers the Canada section.
//!
//! Countries come from ISO 3166 (the `celes` crate: names and common aliases). Names that
//! are everyday English words in a store ("jersey", "turkey", "china") count only after a
//! destination word ("ship to", "from", "in"). US places outside the contiguous states
//! (Alaska, Hawaii, military addresses, PO boxes) are scopes of their own; the contiguous US
//! is the home scope, the one a question without a place is about.

use celes::Country;

/// A place key: an ISO 3166 alpha-3 code, or one of the US scopes below.
pub type Place = String;

const HOME: &str = "USA";

/// Places inside the US that shipping rules treat apart, and words for "abroad".
const US_SCOPES: &[(&str, &str)] = &[
    ("alaska", "US-AK"),
    ("hawaii", "US-HI"),
    ("apo", "US-APO"),
    ("fpo", "US-APO"),
    ("dpo", "US-APO"),
    ("international", "INTL"),
    ("internationally", "INTL"),
    ("overseas", "INTL"),
    ("worldwide", "INTL"),
    ("abroad", "INTL"),
];

/// Words that name the home scope ("Contiguous US", "lower 48", "domestic").
const HOME_WORDS: &[&str] = &[
    "us",
    "usa",
    "contiguous",
    "continental",
    "domestic",
    "mainland",
    "states",
    "america",
];

/// Country names that are also common words in a shop's texts.
const AMBIGUOUS: &[&str] = &[
    "jersey", "turkey", "china", "jordan", "chad", "georgia", "panama", "guinea", "niger", "cuba", "peru",
    "togo", "mali", "oman", "iran", "iraq", "wales", "india",
];

/// Countries whose everyday name is one word of six letters or more ("australia"), with their
/// keys: the names a misspelling is compared with.
static ONE_WORD_COUNTRIES: std::sync::LazyLock<Vec<(String, &'static str)>> =
    std::sync::LazyLock::new(|| {
        Country::get_countries()
            .iter()
            .filter_map(|country| {
                let name = common_name(country.long_name)?.to_lowercase();
                (name.len() >= 6 && !name.contains(' ')).then_some((name, country.alpha3))
            })
            .collect()
    });

/// Words after which a place name is a destination or an origin ("2" is texting for "to").
const DESTINATION: &[&str] = &[
    "to", "2", "in", "from", "into", "outside", "within", "ship", "shipping", "deliver", "delivery", "send",
    "the", "a", "for",
];

/// The places `text` names, in order, without repeats; the home country included.
pub fn places(text: &str) -> Vec<Place> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<Place> = Vec::new();
    let mut push = |place: Place| {
        if !out.contains(&place) {
            out.push(place);
        }
    };
    let mut at = 0;
    while at < words.len() {
        let word = words[at];
        if let Some((_, key)) = US_SCOPES.iter().find(|(name, _)| *name == word) {
            push((*key).to_owned());
            at += 1;
            continue;
        }
        if word == "po" && words.get(at + 1).is_some_and(|w| w.starts_with("box")) {
            push("US-POBOX".to_owned());
            at += 2;
            continue;
        }
        if matches!(word, "uk" | "britain" | "england" | "scotland") {
            push("GBR".to_owned());
            at += 1;
            continue;
        }
        if matches!(word, "usa" | "us") && (word == "usa" || at > 0 && DESTINATION.contains(&words[at - 1])) {
            push(HOME.to_owned());
            at += 1;
            continue;
        }
        // The longest run of up to four words that names a country ("united kingdom").
        let mut matched = None;
        for len in (1..=4).rev() {
            if at + len > words.len() {
                continue;
            }
            let joined: String = words[at..at + len].concat();
            if joined.len() < 4 {
                continue;
            }
            let country = Country::from_name(&joined)
                .or_else(|_| Country::from_alias(&joined))
                .ok();
            if let Some(country) = country {
                matched = Some((len, country.alpha3.to_owned()));
                break;
            }
        }
        let after_destination = at > 0 && DESTINATION.contains(&words[at - 1]);
        if let Some((len, key)) = matched {
            let gated = len == 1 && AMBIGUOUS.contains(&word);
            if !gated || after_destination {
                push(key);
                at += len;
                continue;
            }
        }
        // "ship 2 austrailia": a one-letter slip in a long country name, after a destination
        // word only (so a product word a letter away from a country stays a word).
        if after_destination
            && word.len() >= 6
            && let Some((_, key)) = ONE_WORD_COUNTRIES
                .iter()
                .find(|(name, _)| crate::text::terms_match(word, name))
        {
            push((*key).to_owned());
        }
        at += 1;
    }
    out
}

/// The places a text names other than the home country: the scopes a rule is restricted to.
pub fn away(text: &str) -> Vec<Place> {
    places(text).into_iter().filter(|p| p != HOME).collect()
}

/// The text with the everyday name of each country it names by an alias or abbreviation
/// appended ("do you ship to the UK?" + "United Kingdom"), and "international" once it names a
/// country abroad, so the policy section that spells the name out, or the "International
/// shipping" section that leaves the country out, is found by its words too.
pub fn with_country_names(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut out = text.to_owned();
    let mut abroad = false;
    for place in away(text) {
        let Ok(country) = Country::from_alpha3(&place) else {
            continue;
        };
        abroad = true;
        if let Some(name) = common_name(country.long_name).filter(|n| !lower.contains(&n.to_lowercase())) {
            out.push(' ');
            out.push_str(&name);
        }
    }
    if abroad && !lower.contains("international") {
        out.push_str(" international");
    }
    out
}

/// A country's everyday name ("MEX" → "Mexico"); `None` for the US scopes.
pub fn country_name(place: &str) -> Option<String> {
    common_name(Country::from_alpha3(place).ok()?.long_name)
}

/// "The United Kingdom Of Great Britain And Northern Ireland" → "United Kingdom": ISO long
/// names without the article and the "of …" tail that only a form would use.
fn common_name(long_name: &str) -> Option<String> {
    let name = long_name.strip_prefix("The ").unwrap_or(long_name);
    let name = match name.find(" Of ") {
        Some(at) if at >= 4 => &name[..at],
        _ => name,
    };
    let name = name.split(',').next()?.trim();
    (name.len() >= 4).then(|| name.to_owned())
}

/// Does a rule scoped to `rule` hold for a question about `asked`? The same place, or an
/// "international" rule for any country abroad.
pub fn covers(rule: &str, asked: &str) -> bool {
    rule == asked || (rule == "INTL" && !asked.starts_with("US") && asked != HOME)
}

/// Does a heading name the home scope ("Contiguous US", "Domestic shipping")?
pub fn names_home(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    words
        .iter()
        .any(|w| HOME_WORDS.contains(w) && *w != "states" && *w != "america")
        || lower.contains("lower 48")
        || lower.contains("united states")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_found_by_name_and_alias() {
        assert_eq!(places("do you ship to mexico?"), ["MEX"]);
        assert_eq!(places("can i order a tempo from the UK"), ["GBR"]);
        assert_eq!(places("Shipping > Alaska & Hawaii"), ["US-AK", "US-HI"]);
        assert_eq!(places("We ship to the US and Canada only."), ["USA", "CAN"]);
        assert_eq!(places("ship it to the united kingdom"), ["GBR"]);
        assert_eq!(places("no PO boxes"), ["US-POBOX"]);
    }

    #[test]
    fn a_slip_in_a_long_country_name_after_a_destination_word() {
        assert_eq!(places("do u ship 2 austrailia"), ["AUS"]);
        assert_eq!(places("shipping to germnay?"), ["DEU"]);
        assert!(places("is the serum in stock").is_empty());
    }

    #[test]
    fn everyday_words_are_not_places_without_a_destination() {
        assert!(places("is the team jersey in stock").is_empty());
        assert!(places("turkey jerky flavours?").is_empty());
        assert_eq!(places("do you ship to turkey"), ["TUR"]);
        assert!(places("how long does shipping take").is_empty());
        assert!(places("can us customers return bikes").is_empty() || names_home("us"));
    }

    #[test]
    fn abbreviated_countries_gain_their_names() {
        assert_eq!(
            with_country_names("do you ship to the UK?"),
            "do you ship to the UK? United Kingdom international"
        );
        assert_eq!(
            with_country_names("do you ship to Mexico?"),
            "do you ship to Mexico? international"
        );
        assert_eq!(
            with_country_names("can I ship to Alaska?"),
            "can I ship to Alaska?"
        );
        assert_eq!(
            with_country_names("how long does shipping take"),
            "how long does shipping take"
        );
    }

    #[test]
    fn home_is_the_contiguous_us() {
        assert!(names_home("Shipping > Contiguous US"));
        assert!(names_home("Domestic orders"));
        assert!(!names_home("Shipping > Canada"));
        assert_eq!(away("We ship to the US and Canada only."), ["CAN"]);
    }
}
