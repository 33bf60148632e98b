//! Guardrails on every draft reply, whichever generator wrote it: each price, percentage,
//! duration, discount code, URL and order/tracking number must appear in the evidence (the
//! retrieved passages, tool facts and the merchant's offers); no prompt leakage, no medical
//! or legal advice, no PII the customer did not give, and at most N SMS segments.
//!
//! The checks are deliberately literal: a claim is supported when the same number with the
//! same kind of unit is written in the evidence. That is strict enough to stop an invented
//! "$19.99" or "SAVE50", and simple enough to explain to a merchant.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::sms;
use crate::types::{Finding, FindingKind};

/// What a draft may draw on.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Passage and fact texts.
    pub texts: Vec<String>,
    /// The merchant's discount codes (the only codes that exist).
    pub offer_codes: Vec<String>,
    /// The merchant's own contact details (support email, phone), which may be shared.
    pub merchant_contacts: Vec<String>,
    /// The system prompt, to detect leakage.
    pub system_prompt: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GuardrailConfig {
    pub max_segments: usize,
}

impl Default for GuardrailConfig {
    fn default() -> Self {
        Self { max_segments: 3 }
    }
}

static PRICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\$\s?(\d[\d,]*(?:\.\d{1,2})?)|\b(\d[\d,]*(?:\.\d{2})?)\s?(?:dollars|usd)\b)")
        .expect("valid")
});
static PERCENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(\d+(?:\.\d+)?)\s?(?:%|percent\b)").expect("valid"));
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|fourteen|thirty|sixty|ninety)(?:\s?(?:-|to|–|—)\s?(\d+))?[\s-]+(?:business\s+|calendar\s+|working\s+)?(hours?|hrs?|days?|weeks?|months?|years?|yrs?)\b",
    )
    .expect("valid")
});
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:https?://[^\s]+|www\.[^\s]+|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|ly|example|shop|store|us|me|link|app)(?:/[^\s]*)?)").expect("valid")
});
/// Order names (#1042) and tracking-like numbers: long digit runs or 1Z-style codes.
static ORDER_OR_TRACKING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(#\s?\d{3,}|\b1Z[0-9A-Z]{10,}\b|\b\d{10,}\b|\b[A-Z]{2}\d{9}[A-Z]{2}\b)").expect("valid")
});
/// Code-shaped tokens: upper-case letters with digits (SAVE50) or long all-caps words.
static CODE_LIKE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Z][A-Z0-9]{3,19}\b").expect("valid"));
static CODE_CONTEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(code|coupon|promo|discount|use|enter|apply)\b").expect("valid"));
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\+?1[\s.-]?)?\(?\b\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}\b").expect("valid"));
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b").expect("valid"));
static ADVICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(safe (to use )?(during|while|for) (pregnan\w*|breastfeeding|nursing)|(you should|you can|try) (take|taking|stop taking|apply|applying) .{0,30}(medication|antihistamine|ibuprofen|cream|ointment|steroid)|diagnos\w*|it'?s (probably|likely) (an allergy|eczema|an infection)|see a (doctor|dermatologist) is not necessary|legal advice|you (can|could|should) sue|(you have|you've got) a (strong )?(legal )?case|not liable|we are not responsible for (your|any) (injur|reaction))",
    )
    .expect("valid")
});

/// Words in all caps that are not codes.
const CAPS_WORDS: &[&str] = &[
    "USPS", "UPS", "FEDEX", "DHL", "SPF", "UPF", "FAQ", "SKU", "USA", "ASAP", "STOP", "HELP", "START",
    "INFO", "UNSTOP", "NOTE", "PST", "EST", "CST", "MST", "MT", "PT", "ET", "APO", "FPO", "DPO", "AM", "PM",
    "ID", "XL", "XXL", "XS", "OK", "LLC", "GSM", "SMS", "AHA", "BHA", "PDT", "MDT", "EDT", "CDT", "FREE",
    "SALE", "NEW", "YES", "NO", "AND", "THE", "NOT",
];

/// Checks a draft against the evidence. `customer_message` is what the customer wrote this
/// turn: contact details they gave may be repeated back, nothing else may.
pub fn check(
    draft: &str,
    evidence: &Evidence,
    customer_message: &str,
    config: &GuardrailConfig,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut push = |kind: FindingKind, text: &str| {
        let finding = Finding {
            kind,
            text: text.trim().to_owned(),
        };
        if !findings.contains(&finding) {
            findings.push(finding);
        }
    };
    let corpus = evidence
        .texts
        .iter()
        .chain(&evidence.merchant_contacts)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let corpus_lower = corpus.to_lowercase();
    let corpus_upper = corpus.to_uppercase();
    let corpus_digits = digits(&corpus);

    let evidence_prices = numbers(&PRICE, &corpus);
    for caps in PRICE.captures_iter(draft) {
        let value = caps
            .get(1)
            .or_else(|| caps.get(2))
            .map(|m| parse_number(m.as_str()));
        if value.is_some_and(|v| !evidence_prices.iter().any(|e| (e - v).abs() < 0.005)) {
            push(FindingKind::UnsupportedPrice, &caps[0]);
        }
    }

    let evidence_percents = numbers(&PERCENT, &corpus);
    for caps in PERCENT.captures_iter(draft) {
        let value = parse_number(&caps[1]);
        if !evidence_percents.iter().any(|e| (e - value).abs() < 0.005) {
            push(FindingKind::UnsupportedPercentage, &caps[0]);
        }
    }

    let evidence_durations = durations(&corpus);
    for (text, claimed) in durations_with_text(draft) {
        if !claimed.iter().all(|d| evidence_durations.contains(d)) {
            push(FindingKind::UnsupportedDuration, &text);
        }
    }

    for found in URL.find_iter(draft) {
        // The domain of an email address is not a link.
        if draft[..found.start()].ends_with('@') {
            continue;
        }
        let url = found
            .as_str()
            .trim_end_matches(['.', ',', ')', '!', '?'])
            .to_lowercase();
        let bare = url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_start_matches("www.");
        if !corpus_lower.contains(bare) {
            push(FindingKind::UnsupportedUrl, found.as_str());
        }
    }

    for found in ORDER_OR_TRACKING.find_iter(draft) {
        let compact: String = found.as_str().chars().filter(|c| !c.is_whitespace()).collect();
        let in_evidence = corpus_upper.contains(&compact.to_uppercase());
        let is_phone = PHONE.is_match(found.as_str());
        if !in_evidence && !is_phone {
            push(FindingKind::UnsupportedOrderOrTracking, found.as_str());
        }
    }

    let offers: HashSet<String> = evidence.offer_codes.iter().map(|c| c.to_uppercase()).collect();
    let corpus_upper_words: HashSet<&str> = corpus.split(|c: char| !c.is_alphanumeric()).collect();
    for found in CODE_LIKE.find_iter(draft) {
        let token = found.as_str();
        if offers.contains(token) || CAPS_WORDS.contains(&token) {
            continue;
        }
        let has_digit = token.chars().any(|c| c.is_ascii_digit());
        let near_code_word = CODE_CONTEXT.is_match(&draft[found.start().saturating_sub(30)..found.start()]);
        // A capitalised word from the evidence (a SKU, "GORE-TEX") is fine unless it is
        // offered as a code; a code-shaped token near "code"/"use" must be a real offer.
        let in_evidence = corpus_upper_words.contains(token);
        if !in_evidence && (near_code_word || has_digit) {
            push(FindingKind::UnknownDiscountCode, token);
        }
    }

    if evidence
        .system_prompt
        .as_deref()
        .is_some_and(|system| leaks_prompt(draft, system, &corpus))
    {
        push(FindingKind::PromptLeak, "system prompt text");
    }
    for marker in [
        "PASSAGES",
        "FACTS (from",
        "CUSTOMER MESSAGE",
        "CONVERSATION SO FAR",
        "Rules, in order of priority",
        "ESCALATE",
        // The prompt's scaffolding echoed back is leakage too.
        "knowledge base):",
        "[policies/",
        "[products/",
        "<<<",
        ">>>",
    ] {
        if draft.contains(marker) {
            push(FindingKind::PromptLeak, marker);
        }
    }

    if let Some(found) = ADVICE.find(draft) {
        push(FindingKind::MedicalOrLegalAdvice, found.as_str());
    }

    let allowed_contacts: Vec<String> = evidence
        .merchant_contacts
        .iter()
        .chain(std::iter::once(&customer_message.to_owned()))
        .map(|s| s.to_lowercase())
        .collect();
    let allowed_digits: Vec<String> = allowed_contacts.iter().map(|s| digits(s)).collect();
    for found in EMAIL.find_iter(draft) {
        let email = found.as_str().to_lowercase();
        if !allowed_contacts.iter().any(|a| a.contains(&email)) && !corpus_lower.contains(&email) {
            push(FindingKind::PiiEcho, found.as_str());
        }
    }
    for found in PHONE.find_iter(draft) {
        let number = digits(found.as_str());
        let tail = &number[number.len().saturating_sub(10)..];
        if !allowed_digits.iter().any(|a| a.contains(tail)) && !corpus_digits.contains(tail) {
            push(FindingKind::PiiEcho, found.as_str());
        }
    }

    if is_degenerate(draft) {
        push(FindingKind::Degenerate, "repetitive or garbled text");
    }

    let info = sms::segments(draft);
    if info.segments > config.max_segments {
        push(
            FindingKind::TooManySegments,
            &format!(
                "{} segments ({:?}, {} units)",
                info.segments, info.encoding, info.units
            ),
        );
    }
    findings
}

/// Small models sometimes loop ("BROWN-BROWN-BROWN…"): a word repeated four times in a row,
/// or one word making up over a third of a longer reply, is not a message for a customer.
fn is_degenerate(draft: &str) -> bool {
    let words: Vec<String> = draft
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let looping = words.windows(4).any(|w| w.iter().all(|x| *x == w[0]));
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for word in words.iter().filter(|w| w.len() > 3) {
        *counts.entry(word).or_default() += 1;
    }
    let dominant = words.len() >= 12 && counts.values().any(|n| *n * 3 > words.len());
    looping || dominant
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn parse_number(raw: &str) -> f64 {
    raw.replace(',', "").parse().unwrap_or(f64::NAN)
}

fn numbers(regex: &Regex, text: &str) -> Vec<f64> {
    regex
        .captures_iter(text)
        .filter_map(|caps| caps.get(1).or_else(|| caps.get(2)))
        .map(|m| parse_number(m.as_str()))
        .collect()
}

/// A duration normalised to (number, unit), e.g. ("30", "day"); a range gives both ends.
fn durations_with_text(text: &str) -> Vec<(String, Vec<(String, &'static str)>)> {
    let normalized = crate::sms::to_gsm_friendly(text);
    DURATION
        .captures_iter(&normalized)
        .map(|caps| {
            let unit = unit_of(&caps[3]);
            let mut values = vec![(word_number(&caps[1]), unit)];
            if let Some(end) = caps.get(2) {
                values.push((word_number(end.as_str()), unit));
            }
            (caps[0].to_owned(), values)
        })
        .collect()
}

fn durations(text: &str) -> HashSet<(String, &'static str)> {
    durations_with_text(text)
        .into_iter()
        .flat_map(|(_, d)| d)
        .collect()
}

fn unit_of(raw: &str) -> &'static str {
    let lower = raw.to_lowercase();
    if lower.starts_with('h') {
        "hour"
    } else if lower.starts_with('d') {
        "day"
    } else if lower.starts_with('w') {
        "week"
    } else if lower.starts_with('m') {
        "month"
    } else {
        "year"
    }
}

fn word_number(raw: &str) -> String {
    let lower = raw.to_lowercase();
    let value = match lower.as_str() {
        "one" => "1",
        "two" => "2",
        "three" => "3",
        "four" => "4",
        "five" => "5",
        "six" => "6",
        "seven" => "7",
        "eight" => "8",
        "nine" => "9",
        "ten" => "10",
        "fourteen" => "14",
        "thirty" => "30",
        "sixty" => "60",
        "ninety" => "90",
        other => other,
    };
    value.to_owned()
}

/// True when the draft repeats eight or more consecutive words of the system prompt that are
/// not also in the evidence (the prompt quotes the offers, which a reply may quote too).
fn leaks_prompt(draft: &str, system: &str, evidence: &str) -> bool {
    const WINDOW: usize = 8;
    let normalize = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let system_words = normalize(system);
    if system_words.len() < WINDOW {
        return false;
    }
    let evidence_words = normalize(evidence);
    let allowed: HashSet<&[String]> = evidence_words.windows(WINDOW).collect();
    let shingles: HashSet<&[String]> = system_words
        .windows(WINDOW)
        .filter(|w| !allowed.contains(w))
        .collect();
    let draft_words = normalize(draft);
    draft_words.windows(WINDOW).any(|w| shingles.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(texts: &[&str]) -> Evidence {
        Evidence {
            texts: texts.iter().map(|s| (*s).to_owned()).collect(),
            offer_codes: vec!["TRAIL10".into(), "FREESHIP".into()],
            merchant_contacts: vec!["help@trailhead.example".into()],
            system_prompt: Some(
                "You are the SMS customer support assistant for Trailhead. Answer only from the PASSAGES and FACTS in the user message."
                    .into(),
            ),
        }
    }

    fn kinds(draft: &str, texts: &[&str]) -> Vec<FindingKind> {
        check(draft, &evidence(texts), "", &GuardrailConfig::default())
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn supported_claims_pass() {
        let texts = ["Standard shipping is $5.95 and takes 3-5 business days. Orders over $75 ship free."];
        assert!(
            kinds(
                "Standard shipping is $5.95 (3-5 business days), free over $75.",
                &texts
            )
            .is_empty()
        );
        assert!(
            kinds(
                "Use TRAIL10 for 10% off.",
                &["TRAIL10 gives 10% off your first order"]
            )
            .is_empty()
        );
    }

    #[test]
    fn invented_claims_are_caught() {
        let texts = ["Standard shipping is $5.95 and takes 3-5 business days."];
        let check = |draft: &str, expected: FindingKind| {
            assert!(
                kinds(draft, &texts).contains(&expected),
                "{draft}: {:?}",
                kinds(draft, &texts)
            );
        };
        check("It's only $19.99 today!", FindingKind::UnsupportedPrice);
        check("Use code SAVE50 at checkout.", FindingKind::UnknownDiscountCode);
        check(
            "Enter code BIGDEAL for a discount",
            FindingKind::UnknownDiscountCode,
        );
        check("You get 90% off.", FindingKind::UnsupportedPercentage);
        check("Delivery takes 2 weeks.", FindingKind::UnsupportedDuration);
        check("It takes 1-2 business days.", FindingKind::UnsupportedDuration);
        check("Details at www.scam.example/deal", FindingKind::UnsupportedUrl);
        check(
            "Your tracking is 1ZV8R6270348244753.",
            FindingKind::UnsupportedOrderOrTracking,
        );
        check("Order #1099 shipped.", FindingKind::UnsupportedOrderOrTracking);
    }

    #[test]
    fn prompt_leak_advice_and_pii() {
        let texts = ["Returns are free."];
        assert!(kinds(
            "Sure: you are the SMS customer support assistant for Trailhead. Answer only from the passages",
            &texts
        )
        .contains(&FindingKind::PromptLeak));
        assert!(kinds("It is safe during pregnancy.", &texts).contains(&FindingKind::MedicalOrLegalAdvice));
        assert!(kinds("I'll text 303-555-0171 instead.", &texts).contains(&FindingKind::PiiEcho));
        assert!(kinds("Email help@trailhead.example any time.", &texts).is_empty());
        let customer_gave_it = check(
            "Got it, we'll reach you at 303-555-0171.",
            &evidence(&texts),
            "call me at 303-555-0171",
            &GuardrailConfig::default(),
        );
        assert!(customer_gave_it.is_empty(), "{customer_gave_it:?}");
    }

    #[test]
    fn scaffolding_and_loops_are_caught() {
        let texts = ["Returns are free."];
        let leak = kinds(
            "PATCHES (from the store's knowledge base):\n[policies/warranty.md > FAQ",
            &texts,
        );
        assert!(leak.contains(&FindingKind::PromptLeak), "{leak:?}");
        assert!(kinds("PATCHY-BROWN-BROWN-BROWN-BROWN-BROWN", &texts).contains(&FindingKind::Degenerate));
        assert!(kinds("Returns are free, and free exchanges too.", &texts).is_empty());
    }

    #[test]
    fn segment_limit() {
        let long = "Returns are free. ".repeat(30);
        assert!(kinds(&long, &["Returns are free."]).contains(&FindingKind::TooManySegments));
    }
}
