//! Compliance keywords, checked before anything else and never sent to an LLM: opt-out
//! (STOP and its synonyms, plus natural-language revocation per FCC 24-18), opt-in, HELP.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplianceAction {
    OptOut,
    OptIn,
    Help,
}

const OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const OPT_IN: &[&str] = &["START", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];
/// Words that may follow a keyword without changing its meaning ("stop please").
const COURTESY: &[&str] = &[
    "PLEASE", "PLS", "PLZ", "NOW", "THANKS", "THANK", "YOU", "THX", "IT", "ALL",
];

/// Classifies a message as a compliance action, if it is one. `opted_out` matters because
/// YES only re-subscribes a customer who is opted out.
pub fn detect(text: &str, opted_out: bool) -> Option<ComplianceAction> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_uppercase)
        .collect();
    let first = words.first()?;
    let rest_is_courtesy = words[1..].iter().all(|w| COURTESY.contains(&w.as_str()));
    // "opt out" and "stop all" are the two-word spellings of OPTOUT and STOPALL.
    let joined: String = words.concat();
    if (OPT_OUT.contains(&first.as_str()) && rest_is_courtesy) || OPT_OUT.contains(&joined.as_str()) {
        return Some(ComplianceAction::OptOut);
    }
    if words.len() == 1 && HELP.contains(&first.as_str()) {
        return Some(ComplianceAction::Help);
    }
    if (OPT_IN.contains(&first.as_str()) && rest_is_courtesy)
        || (opted_out && words.len() == 1 && first == "YES")
    {
        return Some(ComplianceAction::OptIn);
    }
    natural_language_revocation(&words).then_some(ComplianceAction::OptOut)
}

/// Revocation "by any reasonable means": phrases that ask for the texts to stop, while
/// "stop sending me the blue one?" (a product question) is left alone.
fn natural_language_revocation(words: &[String]) -> bool {
    let has = |phrase: &[&str]| {
        words
            .windows(phrase.len())
            .any(|w| w.iter().zip(phrase).all(|(a, b)| a == b))
    };
    const MESSAGES: &[&str] = &[
        "TEXTS", "TEXT", "MESSAGES", "MESSAGE", "SMS", "THESE", "THIS", "PROMOS", "ADS", "SPAM",
    ];
    if ["UNSUBSCRIBE", "OPTOUT"]
        .iter()
        .any(|w| words.iter().any(|x| x == w))
        || has(&["OPT", "OUT"])
    {
        return true;
    }
    for verb in ["TEXTING", "MESSAGING", "CONTACTING", "SPAMMING", "TXTING"] {
        if has(&["STOP", verb]) || has(&["QUIT", verb]) {
            return true;
        }
    }
    if has(&["TAKE", "ME", "OFF"]) || has(&["REMOVE", "ME", "FROM"]) || has(&["REMOVE", "MY", "NUMBER"]) {
        return true;
    }
    for verb in ["TEXT", "MESSAGE", "CONTACT"] {
        if has(&["DONT", verb, "ME"]) || has(&["DON", "T", verb, "ME"]) || has(&["NOT", verb, "ME"]) {
            return true;
        }
    }
    if has(&["NO", "MORE"]) && words.iter().any(|w| MESSAGES.contains(&w.as_str())) {
        return true;
    }
    // "stop sending (me) texts" is a revocation; "stop sending me the blue one" is not.
    if let Some(idx) = words.windows(2).position(|w| w[0] == "STOP" && w[1] == "SENDING") {
        let mut object = &words[idx + 2..];
        if object.first().map(String::as_str) == Some("ME") {
            object = &object[1..];
        }
        return object.is_empty() || MESSAGES.contains(&object[0].as_str());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComplianceAction::*;

    fn check(cases: &[(&str, bool, Option<ComplianceAction>)]) {
        for (text, opted_out, expected) in cases {
            assert_eq!(
                detect(text, *opted_out),
                *expected,
                "{text:?} (opted_out={opted_out})"
            );
        }
    }

    #[test]
    fn keywords_in_any_case_with_punctuation() {
        check(&[
            ("STOP", false, Some(OptOut)),
            ("  stop!! ", false, Some(OptOut)),
            ("Unsubscribe.", false, Some(OptOut)),
            ("stop all", false, Some(OptOut)),
            ("opt out", false, Some(OptOut)),
            ("Stop please", false, Some(OptOut)),
            ("quit", false, Some(OptOut)),
            ("START", true, Some(OptIn)),
            ("unstop", true, Some(OptIn)),
            ("yes", true, Some(OptIn)),
            ("yes", false, None),
            ("HELP", false, Some(Help)),
            ("info?", false, Some(Help)),
        ]);
    }

    #[test]
    fn natural_language_revocation_is_an_opt_out() {
        check(&[
            ("please stop texting me", false, Some(OptOut)),
            ("take me off your list", false, Some(OptOut)),
            ("can you remove me from these texts", false, Some(OptOut)),
            ("don't text me again", false, Some(OptOut)),
            ("no more messages please", false, Some(OptOut)),
            ("stop sending me texts", false, Some(OptOut)),
            ("how do i unsubscribe", false, Some(OptOut)),
        ]);
    }

    #[test]
    fn questions_that_merely_contain_a_keyword_are_not() {
        check(&[
            ("stop sending me the blue one?", false, None),
            ("cancel my order #1042", false, None),
            ("does the jacket stop wind?", false, None),
            ("when does the sale end", false, None),
            ("I need help with my order", false, None),
            ("yes the size 10 please", true, None),
            ("", false, None),
        ]);
    }
}
