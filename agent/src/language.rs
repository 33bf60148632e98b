//! The customer's language, so the texts Parley sends from templates (opt-out and opt-in
//! confirmations, HELP, the holding message) go out in it, and the handoff tells the person
//! which language to answer in.
//!
//! Detection is whatlang's trigram model. SMS are short, and whatlang alone mistakes a
//! three-word English text for Spanish or Italian often enough to matter, so a template
//! switches to Spanish only on a reliable Spanish detection or on an unmistakable Spanish
//! marker (¿ ¡ ñ, or two Spanish function words). English is the default: it is what every
//! merchant configures, and a wrong switch is worse than staying in the merchant's language.

use serde::{Deserialize, Serialize};
use whatlang::Lang;

/// The languages Parley has template texts in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    English,
    Spanish,
}

impl Language {
    /// ISO 639-1, as the templates and the API see it.
    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Spanish => "es",
        }
    }
}

/// What a message's language looks like: the template language and, for the person taking
/// over, the best guess at the language whatever it is (its English name, `None` when the
/// text is too short to tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub template: Language,
    pub name: Option<&'static str>,
}

/// Spanish words that are common in support texts and rare in English ones.
const SPANISH_MARKERS: &[&str] = &[
    "el",
    "la",
    "los",
    "las",
    "de",
    "del",
    "que",
    "mi",
    "mis",
    "por",
    "para",
    "con",
    "una",
    "es",
    "esta",
    "tienen",
    "tiene",
    "quiero",
    "puedo",
    "cuando",
    "donde",
    "pedido",
    "gracias",
    "hola",
    "necesito",
    "talla",
    "envio",
    "cuanto",
    "cuesta",
    "mas",
    "usted",
    "ustedes",
    "como",
    "pero",
    "tambien",
    "muy",
    "bicicleta",
    "llega",
    "precio",
    "hablo",
    "ingles",
    "espanol",
    "favor",
    "ya",
    "en",
    "este",
    "numero",
    "uso",
    "yo",
    "nunca",
    "vivo",
    "se",
    "le",
];

pub fn detect(text: &str) -> Detected {
    let folded = crate::compliance::fold(text);
    let words: Vec<&str> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let spanish_words = words.iter().filter(|w| SPANISH_MARKERS.contains(w)).count();
    let marked = text.contains(['¿', '¡', 'ñ', 'Ñ']) || spanish_words >= 2;
    let info = whatlang::detect(text);
    let name = info
        .as_ref()
        .filter(|info| info.is_reliable() || words.len() >= 4)
        .map(|info| info.lang().eng_name());
    let reliable_spanish = info
        .as_ref()
        .is_some_and(|info| info.lang() == Lang::Spa && info.is_reliable());
    // An English sentence with one borrowed word ("is the la jolla tee in stock") has at most
    // one marker and an English detection; both checks must agree before switching.
    let english = info
        .as_ref()
        .is_some_and(|info| info.lang() == Lang::Eng && info.is_reliable());
    let template = if (reliable_spanish || marked) && !english {
        Language::Spanish
    } else {
        Language::English
    };
    Detected { template, name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanish_questions_are_spanish() {
        for text in [
            "¿tienen la bicicleta en talla M?",
            "hola, cuando llega mi pedido",
            "necesito ayuda con mi pedido por favor",
            "quiero cambiar la talla de mi casco",
        ] {
            assert_eq!(detect(text).template, Language::Spanish, "{text}");
        }
    }

    #[test]
    fn english_stays_english() {
        for text in [
            "does the summit pack come in green",
            "is the la jolla tee in stock",
            "where is my order",
            "ok",
            "hi",
            "I'm 5'10, what size should I get?",
        ] {
            assert_eq!(detect(text).template, Language::English, "{text}");
        }
    }
}
