//! Small text tools the agent's stages share: word terms with stemming and SMS-speak
//! normalisation, and a typo-tolerant term match.
//!
//! Customers text "hw much r the boots" and "retrun polcy"; matching questions to sentences,
//! products and options has to survive that without an LLM.

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

/// Words that carry no meaning for matching a question to an answer.
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "for", "with", "by", "from",
    "is", "are", "was", "were", "be", "been", "am", "do", "does", "did", "i", "me", "my", "we", "our", "you",
    "your", "it", "its", "this", "that", "these", "those", "there", "here", "can", "could", "would",
    "should", "will", "have", "has", "had", "what", "whats", "which", "who", "how", "when", "where", "why",
    "so", "any", "some", "just", "about", "get", "got", "please", "pls", "hi", "hey", "hello", "thanks",
    "thank", "ok", "okay", "yo", "im", "it's", "i'm", "they", "them", "then", "than", "also", "too", "very",
    "really", "there's", "s", "t", "let", "know", "want", "like", "need", "one",
];

/// Whether a word carries no meaning for matching ("you", "the"): also true of a title's
/// "U" in "U-Lock", which shorthand reads as "you".
pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// SMS shorthand and frequent misspellings, mapped to the word the knowledge base uses.
const SHORTHAND: &[(&str, &str)] = &[
    ("u", "you"),
    ("r", "are"),
    ("ur", "your"),
    ("hw", "how"),
    ("wat", "what"),
    ("wut", "what"),
    ("4", "for"),
    ("2day", "today"),
    ("pls", "please"),
    ("plz", "please"),
    ("thx", "thanks"),
    ("ty", "thanks"),
    ("ordr", "order"),
    ("overnite", "overnight"),
    ("nite", "night"),
    ("shiping", "shipping"),
    ("shippin", "shipping"),
    ("mcuh", "much"),
    ("retrun", "return"),
    ("polcy", "policy"),
    ("plcy", "policy"),
    ("wher", "where"),
    ("forevr", "forever"),
    ("wanna", "want"),
    ("gonna", "going"),
    ("xl", "xl"),
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// Lower-cased words, with SMS shorthand expanded. Keeps decimals ("11.5") and codes whole.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = w.to_lowercase().replace('’', "'");
            let lower = lower.strip_suffix("'s").map(str::to_owned).unwrap_or(lower);
            match SHORTHAND.iter().find(|(short, _)| *short == lower) {
                Some((_, long)) => (*long).to_owned(),
                None => lower,
            }
        })
        .collect()
}

/// Stemmed content terms: the words minus stop words, e.g. "shipping costs" → ["ship", "cost"].
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop_word(w))
        .map(|w| stem(&w))
        .collect()
}

pub fn stem(word: &str) -> String {
    let cleaned: String = word.chars().filter(|c| *c != '\'').collect();
    stemmer().stem(&cleaned).into_owned()
}

/// True when two stemmed terms are the same word, allowing one typo (an edit or a swap of
/// neighbours) in words of five letters or more: "shiping" ~ "ship", "retrun" ~ "return".
pub fn terms_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().min(b.len()) < 5 || a.iter().any(char::is_ascii_digit) || b.iter().any(char::is_ascii_digit) {
        return false;
    }
    within_one_edit(&a, &b)
}

fn within_one_edit(a: &[char], b: &[char]) -> bool {
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a_rest, b_rest) = (&a[prefix..], &b[prefix..]);
    if a.len() == b.len() {
        // One substitution, or one swap of neighbours.
        a_rest[1..] == b_rest[1..]
            || (a_rest.len() >= 2
                && a_rest[0] == b_rest[1]
                && a_rest[1] == b_rest[0]
                && a_rest[2..] == b_rest[2..])
    } else if a.len() > b.len() {
        a_rest[1..] == *b_rest
    } else {
        b_rest[1..] == *a_rest
    }
}

/// The items in first-seen order without repeats (for the short lists the agent handles;
/// quadratic, but allocation-free beyond the result).
pub fn unique<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_expand_shorthand_and_stem() {
        assert_eq!(terms("hw much r the boots"), vec!["much", "boot"]);
        assert_eq!(terms("Shipping costs to Canada?"), vec!["ship", "cost", "canada"]);
        assert_eq!(words("men's 11.5 in black."), vec!["men", "11.5", "in", "black"]);
    }

    #[test]
    fn typo_tolerance_is_for_long_words_only() {
        assert!(terms_match("retrun", "return"));
        assert!(terms_match("waranty", "warranty"));
        assert!(!terms_match("boot", "boat"));
        assert!(!terms_match("10.5", "10.6"));
    }
}
