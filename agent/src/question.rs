//! What kind of value a question asks for (a cost, a duration, opening hours, a date, an
//! address, a measurement, a percentage), and whether a sentence holds one. The offline
//! responder ranks a sentence that holds the asked-for kind of value above one that only
//! shares the question's words: "when is support open?" is answered by "Mon-Fri 8am-6pm", not
//! by "we answer texts within 1 business day".
//!
//! Both sides are patterns over plain text, so they hold for any store: the kinds are
//! properties of the question's grammar ("how heavy", "what time", "where is") and of how
//! values are written ("3 lb 14 oz", "8am", "1234 Main St"), not of any catalogue.

use std::sync::LazyLock;

use regex::Regex;

/// A kind of value an answer can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// "$6.95", "free".
    Money,
    /// "30 days", "3-5 business days", "lifetime".
    Duration,
    /// Clock times and weekdays: "8am-6pm", "Mon-Fri", "by 1:00 pm".
    Hours,
    /// A calendar date: "November 27", "11/27".
    Date,
    /// A street address or a "City, ST" line.
    Address,
    /// A weight: "3 lb 14 oz", "14.2 kg".
    Weight,
    /// A number with a unit of measure: "140 mm", "400 lumens", "29 in".
    Measure,
    /// "64%", "0.3 percent".
    Percent,
}

/// The kinds of value a question asks for (often none, sometimes two: "do you ship to Canada
/// and how much is it?").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants(Vec<Kind>);

impl Wants {
    pub fn of(question: &str) -> Self {
        let q = question.to_lowercase();
        let weight = WEIGHT_Q.is_match(&q);
        let measure = weight || MEASURE_Q.is_match(&q);
        let hours = HOURS_Q.is_match(&q);
        let candidates = [
            (Kind::Weight, weight),
            (Kind::Measure, measure && !weight),
            // "how much suspension travel" asks for a measure; "how much is it", "how much to
            // ship" and "how much?" for money.
            // "will you price match?" asks for a rule, not a figure.
            (
                Kind::Money,
                MONEY_Q.is_match(&q) && (!measure || MONEY_WORD.is_match(&q)) && !PRICE_RULE_Q.is_match(&q),
            ),
            (Kind::Hours, hours),
            (Kind::Duration, DURATION_Q.is_match(&q) && !hours),
            (Kind::Date, DATE_Q.is_match(&q) && !hours),
            (Kind::Address, ADDRESS_Q.is_match(&q)),
            // A fee may be a share of the price ("a 15% restocking fee").
            (Kind::Percent, PERCENT_Q.is_match(&q) || FEE_Q.is_match(&q)),
        ];
        let mut kinds: Vec<Kind> = candidates
            .iter()
            .filter(|(_, yes)| *yes)
            .map(|(k, _)| *k)
            .collect();
        // "what's your return policy?": a policy is summed up by its figures (the window,
        // the fee), not by the sentence saying what the policy covers; "do you ship to
        // Canada?" by the rate and the time for Canada, not "Shipped with Canada Post".
        if kinds.is_empty() && (OVERVIEW_Q.is_match(&q) || SHIP_TO_Q.is_match(&q)) {
            kinds.extend([Kind::Duration, Kind::Money]);
        }
        Self(kinds)
    }

    pub fn kinds(&self) -> &[Kind] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The question's own words for the kinds it asks for ("open", "hours"; "cost"; "heavy"),
    /// stemmed: a sentence holding such a value has answered them even when it does not
    /// repeat them ("Hours: Mon-Fri 8am-6pm" answers "when are you open?").
    pub fn kind_terms(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .flat_map(|kind| match kind {
                Kind::Money => &["cost", "price", "fee", "charg", "much"][..],
                Kind::Duration => &["long", "soon", "fast", "take", "window"][..],
                Kind::Hours => &["open", "hour", "close", "time", "weekend", "today"][..],
                Kind::Date => &["date", "day", "last", "deadlin"][..],
                Kind::Address => &["locat", "address", "where", "direct"][..],
                Kind::Weight => &["heavi", "weigh", "weight", "light"][..],
                Kind::Measure => &["big", "wide", "widest", "tall", "bright", "larg", "size", "much"][..],
                Kind::Percent => &["percent", "strength", "made", "materi", "fabric"][..],
            })
            .copied()
            .collect()
    }

    /// Whether the sentence holds a value of a kind the question asks for.
    pub fn met_by(&self, sentence: &str) -> bool {
        self.0.iter().any(|kind| holds(*kind, sentence))
    }
}

/// Whether a sentence holds a value of this kind.
pub fn holds(kind: Kind, sentence: &str) -> bool {
    match kind {
        Kind::Money => HAS_MONEY.is_match(sentence),
        Kind::Duration => HAS_DURATION.is_match(sentence),
        Kind::Hours => HAS_HOURS.is_match(sentence),
        Kind::Date => HAS_DATE.is_match(sentence),
        Kind::Address => HAS_ADDRESS.is_match(sentence),
        Kind::Weight => HAS_WEIGHT.is_match(sentence),
        Kind::Measure => HAS_MEASURE.is_match(sentence),
        Kind::Percent => HAS_PERCENT.is_match(sentence),
    }
}

/// The service a question asks the store to perform, if it asks for one: "do you do
/// professional bike fits?" → "professional bike fits", "can you true my wheel if I bring it
/// in" → "true my wheel". Asked of a store, these are answered only by knowledge that names
/// the service; shared words elsewhere ("fits the damage") are not an answer.
pub fn asked_service(question: &str) -> Option<String> {
    static SERVICE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(?:do (?:you|u) (?:guys )?(?:do|offer|provide)|can (?:you|u) (?:guys )?(\w+ (?:my|our)\b))\s*([^?.!,;]*)")
            .expect("valid")
    });
    static CLAUSE_END: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(if|when|before|after|because|and|or|so|for|on|at|by)\b").expect("valid")
    });
    let caps = SERVICE.captures(question)?;
    let rest = caps.get(2).map_or("", |m| m.as_str());
    let rest = CLAUSE_END.find(rest).map_or(rest, |m| &rest[..m.start()]);
    let service = format!("{} {rest}", caps.get(1).map_or("", |m| m.as_str()));
    let service = service.trim();
    (!service.is_empty()).then(|| service.to_owned())
}

/// The question without the time that has passed for the customer ("I bought it 3 weeks
/// ago", "last week"), which is their situation, not words the answer shares.
pub fn without_elapsed_time(question: &str) -> std::borrow::Cow<'_, str> {
    static ELAPSED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b((\d+|a|an|one|two|three|four|five|six|a couple( of)?|a few|several)\s+(days?|weeks?|months?|years?)\s+ago|last (week|month|year)|yesterday)\b")
            .expect("valid")
    });
    ELAPSED.replace_all(question, " ")
}

/// The customer asks whether they may return or exchange something: "can I return boots I
/// bought 3 weeks ago?", "if it doesn't fit can I send it back?", "is the mask returnable?".
/// Such a question is answered by the return window (or the item's own final-sale rule),
/// whatever else a sentence shares with it. Asking what a return costs, how a refund went or
/// where it is asks something else.
pub fn asks_to_return(question: &str) -> bool {
    static RETURN_Q: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(returnable|exchangeable|non-?returnable)\b|\b(can|could|may|do|will|would|am)\b[^?.!]{0,40}?\b(return|exchange|swap|send (\w+ ){0,2}back|ship (\w+ ){0,2}back|returns)\b")
            .expect("valid")
    });
    static STATUS_Q: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(did|has|have|where|status|go through|gone through|received|arrive[ds]?|label|how much|cost|fee)\b")
            .expect("valid")
    });
    RETURN_Q.is_match(question) && !STATUS_Q.is_match(question)
}

/// A sentence stating how long a return or exchange may be started: "You have 30 days from
/// delivery to start a return", "returned within 60 days of delivery". A duration next to
/// "return shipping" or a return label ("about 3-4 weeks, including return shipping") is not
/// a window.
pub fn is_return_window(sentence: &str) -> bool {
    static LOGISTICS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\breturn (shipping|label|labels|postage|fee|fees|costs?|freight)\b").expect("valid")
    });
    static RETURN_WORD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(return|returns|returned|exchange|exchanges|exchanged)\b").expect("valid")
    });
    let rest = LOGISTICS.replace_all(sentence, " ");
    RETURN_WORD.is_match(&rest) && holds(Kind::Duration, &rest)
}

/// A policy passage (not a product page) with a sentence stating a return window.
pub fn policy_states_return_window(source: &str, text: &str) -> bool {
    !source.starts_with("products/")
        && parley_knowledge::sentences::passage_sentences(text)
            .iter()
            .any(|sentence| is_return_window(sentence))
}

/// A product's own sentence saying it cannot come back: "Final sale: this item cannot be
/// returned", "This item can't be returned or exchanged."
pub fn says_not_returnable(sentence: &str) -> bool {
    static FINAL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(final sale|non-?returnable|not returnable|no returns|can(no|')t be (returned|exchanged|refunded))\b")
            .expect("valid")
    });
    FINAL.is_match(sentence)
}

/// A rule that holds only under a condition ("Final sale once opened", "if it has been
/// used"): true of some items, so not a plain no.
pub fn is_conditional(sentence: &str) -> bool {
    static CONDITION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b(once|if|unless|after|when|except)\b").expect("valid"));
    CONDITION.is_match(sentence)
}

/// The customer asks how something is done or works, or what something means: "how do I
/// patch test?", "how does Subscribe & Save work?", "what does PAO mean?". The answer is an
/// explanation, which a section gives in the sentences that follow its first, so it is read
/// on rather than cut after one sentence.
pub fn asks_how(question: &str) -> bool {
    static HOW_Q: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(how (do|does|can|should|would|will)\b|how to\b|(what|wat|wut) (does|do) [^?]{1,40}\bmean\b|what happens (if|when)\b)")
            .expect("valid")
    });
    HOW_Q.is_match(question)
}

/// A sentence about the document rather than its rules ("This policy covers orders from…",
/// "This guide explains…"): true, but never the answer to a question about the rules.
pub fn is_about_the_document(sentence: &str) -> bool {
    static META: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^(this|these|the following|our)\s+(policy|policies|page|guide|section|document|terms|faq|article)\s+(covers?|explains?|applies|apply|describes?|sets? out|outlines?|is|are|answers?|lists?)\b")
            .expect("valid")
    });
    META.is_match(sentence.trim())
}

macro_rules! regex {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pattern).expect("valid pattern"));
    };
}

const MONTHS: &str = "jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t|tember)?|oct(ober)?|nov(ember)?|dec(ember)?";

regex!(
    WEIGHT_Q,
    r"\b(how (heavy|light) (is|are)|weigh|weighs|weight|heaviest|lightest|how much does (it|the \w+( \w+)?) weigh)\b"
);
regex!(
    MEASURE_Q,
    r"\b(how (big|large|small|wide|tall|high|long is|long are|bright|loud|warm|thick|deep|far|much does it weigh|many (lumens|watts|liters|litres|mm|inches|miles|grams|pounds))|weigh|weighs|weight|dimensions?|measurements?|widest|largest|biggest|heaviest|max(imum)?|min(imum)? (size|width|length)|clearance|capacity|range|lumens?|battery life|how much ([a-z]+ ){1,3}(does|do|is|has|will|can)\b)"
);
regex!(
    MONEY_Q,
    r"(\$|\b(how much|hw much|how mcuh|how muc|cost|costs|price|prices|priced|fee|fees|charge|charges|rate|rates|pay|minimum order|threshold)\b)"
);
regex!(
    MONEY_WORD,
    r"\b(cost|costs|price|fee|fees|charge|pay|\$|ship|shipping|shipped|deliver\w*|to send|is it|are they|for (a|the|one|two)|how much (is|are) (the|a|an|your|this|that|these|those)\b)\b"
);
regex!(
    HOURS_Q,
    r"\b(what time|which time|open|opening|hours|close|closes|closing|cut ?off|by when|what days|weekends?|saturdays?|sundays?|today|tonight|this (morning|afternoon|evening)|same day)\b"
);
regex!(
    DURATION_Q,
    r"\b(how long|hw long|how soon|how many (days|weeks|months)|how fast|window|expire|expires|\d+ (days?|weeks?|months?) ago|last (week|month)|a (week|month) ago|warranty|guarantee)\b"
);
regex!(
    DATE_Q,
    r"\b(when (is|does|do|will)|what date|which date|what day|start date|end date|ends?|until when|last day|deadline|order by|in time for|before (christmas|the holidays|hanukkah|new year'?s?|thanksgiving|mother'?s day|father'?s day|valentine'?s( day)?))\b"
);
regex!(
    ADDRESS_Q,
    r"\b(where (is|are)|where'?s|located|location|address|directions|come by|visit (you|your|the))\b"
);
regex!(
    PERCENT_Q,
    r"\b(what percent(age)?|how much percent|what (strength|concentration)|how strong|made of|made from|material|fabric|blend)\b"
);
regex!(
    PRICE_RULE_Q,
    r"\b(price ?match\w*|match (the|their|a|that) price|price adjust\w*|the difference)\b"
);
regex!(FEE_Q, r"\b(fee|fees|surcharge|deducted|deduction)\b");
regex!(
    SHIP_TO_Q,
    r"\b(ship|shipping|deliver|delivery|send)\s+(\w+\s+)?(to|2)\s+\w+"
);
regex!(OVERVIEW_Q, r"\b(policy|policies|rules|terms)\b");

regex!(
    HAS_MONEY,
    r"(?i)(\$\s?\d|\bfree\b|\b\d+(\.\d{2})?\s?(usd|dollars)\b)"
);
regex!(
    HAS_DURATION,
    r"(?i)(\b\d+\s?((-|–|to)\s?\d+\s?)?(business\s+|calendar\s+|working\s+)?(hours?|days?|weeks?|months?|years?)\b|\b(one|two|three|four|five|six|seven|ten|fourteen|thirty|sixty|ninety)\s+(business\s+)?(days?|weeks?|months?|years?)\b|\blifetime\b)"
);
regex!(
    HAS_HOURS,
    r"(?i)(\b\d{1,2}(:\d{2})?\s?(am|pm|a\.m\.|p\.m\.)\b|\b(noon|midnight)\b|\b(mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(day)?s?\s?(-|–|to|through|and)\s?(mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(day)?\b)"
);
static HAS_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)(\b({MONTHS})\.?\s+\d{{1,2}}(st|nd|rd|th)?\b|\b\d{{1,2}}(st|nd|rd|th)?\s+(of\s+)?({MONTHS})\b|\b\d{{1,2}}/\d{{1,2}}\b|\b(january|february|march|april|june|july|august|september|october|november|december)\b)"
    ))
    .expect("valid pattern")
});
regex!(
    HAS_ADDRESS,
    r"(\b\d{1,6}\s+([A-Z][a-z]+\.?\s+){1,4}(St|Street|Ave|Avenue|Rd|Road|Blvd|Boulevard|Dr|Drive|Way|Ln|Lane|Pkwy|Parkway|Ct|Court|Pl|Place|Hwy|Highway|Sq|Square)\b|\b[A-Z][a-z]+(\s[A-Z][a-z]+)?,\s+([A-Z]{2}|[A-Z][a-z]+)\s+\d{5}\b|\bSuite\s+\d+)"
);
regex!(
    HAS_MEASURE,
    r#"(?i)\b\d+(\.\d+)?\s?(-|–|to)?\s?(\d+(\.\d+)?\s?)?(mm|cm|m|in|inch|inches|"|ft|feet|lb|lbs|pounds?|oz|ounces?|kg|g|grams?|l|liters?|litres?|ml|lumens?|wh|w|watts?|mah|v|volts?|mph|km/h|km|miles?|°f|°c|f|c|denier|d)\b"#
);
regex!(
    HAS_WEIGHT,
    r"(?i)\b\d+(\.\d+)?\s?(kg|g|grams?|lb|lbs|pounds?|oz|ounces?)\b"
);
regex!(HAS_PERCENT, r"(?i)(\b\d+(\.\d+)?\s?%|\b\d+(\.\d+)?\s?percent\b)");

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(q: &str) -> Vec<Kind> {
        Wants::of(q).kinds().to_vec()
    }

    #[test]
    fn questions_ask_for_kinds_of_value() {
        assert_eq!(kinds("How much is shipping?"), [Kind::Money]);
        assert_eq!(
            kinds("how much suspension travel does the loam have"),
            [Kind::Measure]
        );
        assert_eq!(kinds("how heavy is the basecamp 2 tent"), [Kind::Weight]);
        assert_eq!(kinds("how much does the volt city weigh"), [Kind::Weight]);
        // A measure word in a product's name ("Lumen", "Range") does not hide a price question.
        assert!(kinds("how much is the lumen peak 400 headlamp?").contains(&Kind::Money));
        assert!(kinds("how much are the range rover boots").contains(&Kind::Money));
        assert_eq!(kinds("when is your customer support open?"), [Kind::Hours]);
        assert_eq!(kinds("R U GUYS OPEN ON WEEKENDS"), [Kind::Hours]);
        assert_eq!(kinds("where is your store located?"), [Kind::Address]);
        assert_eq!(
            kinds("can I return boots I bought 3 weeks ago?"),
            [Kind::Duration]
        );
        assert_eq!(
            kinds("what percent vitamin c is in bright start?"),
            [Kind::Percent]
        );
        assert_eq!(kinds("what's your return policy"), [Kind::Duration, Kind::Money]);
        assert!(kinds("does the loam come in green?").is_empty());
    }

    #[test]
    fn services_asked_for() {
        assert_eq!(
            asked_service("do you do professional bike fits? how much").as_deref(),
            Some("professional bike fits")
        );
        assert_eq!(
            asked_service("can you true my wheel if I bring it in on sunday").as_deref(),
            Some("true my wheel")
        );
        assert_eq!(asked_service("do you ship to Canada?"), None);
        assert_eq!(asked_service("can you ship it to my office?"), None);
    }

    #[test]
    fn return_questions_and_their_answers() {
        for asks in [
            "can I return boots I bought 3 weeks ago?",
            "if the bike doesn't fit can I send it back?",
            "is the pumpkin enzyme mask returnable?",
            "ordered a 52 but i think i need a 54, can i swap the frame size",
            "do you take returns on sale items",
        ] {
            assert!(asks_to_return(asks), "{asks}");
        }
        for other in [
            "did the refund for my old order go through?",
            "how much does a return cost?",
            "where is my return label?",
            "how long does shipping take?",
        ] {
            assert!(!asks_to_return(other), "{other}");
        }
        assert!(asks_how("how does subscribe & save work?"));
        assert!(asks_how("how do I patch test a new product?"));
        assert!(asks_how("wat does PAO mean on the jar"));
        assert!(!asks_how("how long does shipping take?"));
        assert!(!asks_how("how much is the serum?"));
        assert!(is_return_window(
            "You have 30 days from the date your order was delivered to start a return or exchange."
        ));
        assert!(is_return_window(
            "You can return the first purchase of each product within 60 days of delivery."
        ));
        // A duration beside return shipping is a repair's turnaround, not a window.
        assert!(!is_return_window(
            "Ridgeline boot resole: $89, including return shipping (about 3-4 weeks)"
        ));
        assert!(!is_return_window("Returns are free for store credit."));
        assert!(says_not_returnable(
            "Final sale: this Last Chance item cannot be returned."
        ));
        assert!(says_not_returnable("This item can't be returned or exchanged."));
        assert!(!says_not_returnable("Returns are accepted within 30 days."));
        assert!(is_conditional("Final sale once opened."));
        assert!(!is_conditional("Final sale: kits cannot be returned."));
    }

    #[test]
    fn sentences_hold_values() {
        assert!(holds(Kind::Hours, "Texts are answered Mon-Fri 8am-6pm MT."));
        assert!(!holds(Kind::Hours, "We answer texts within 1 business day."));
        assert!(holds(
            Kind::Address,
            "Visit us at 1420 Washington Ave, Golden, CO 80401."
        ));
        assert!(holds(Kind::Weight, "Packed weight: 3 lb 14 oz."));
        assert!(!holds(Kind::Weight, "Big 29-inch wheels roll over everything."));
        assert!(holds(Kind::Measure, "140 mm of rear travel."));
        assert!(holds(
            Kind::Duration,
            "You have 30 days from delivery to return it."
        ));
        assert!(holds(Kind::Date, "The sale runs November 27 to 30."));
        assert!(holds(Kind::Percent, "64% merino wool, 34% nylon."));
        assert!(is_about_the_document(
            "This policy covers orders from our site and our store in Golden."
        ));
        assert!(!is_about_the_document("This jacket is windproof."));
    }
}
