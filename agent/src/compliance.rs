//! Compliance keywords, checked before anything else and never sent to an LLM: opt-out
//! (STOP and its synonyms, plus natural-language revocation per FCC 24-18), opt-in, HELP, in
//! English and Spanish.
//!
//! Both mistakes cost: a missed opt-out breaks the law, a false one silently loses a
//! customer. So the detector does not look for trigger words; it reads two shapes.
//! - **A keyword message**: every word is a keyword of one action or a courtesy word
//!   ("STOP", "stop please!!", "PARAR", "unsub"). A keyword inside a longer sentence is not
//!   enough ("cancel my order" is an order question, "when does the sale end" a question).
//! - **A revocation sentence**: an act of stopping, refusing or removing whose object is the
//!   texts or the customer's number ("enough with the texts", "I'm done with these
//!   messages", "take me off your list", "dejen de escribirme"). The same act aimed at a
//!   product or an order ("no more of the vanilla one in stock?", "stop sending me the blue
//!   one") is left to the rest of the pipeline.
//!
//! Words are compared lower-cased, with apostrophes dropped ("don't" → "dont") and Spanish
//! accents folded ("más" → "mas"). `fixtures/compliance/messages.yaml` is the labelled table
//! the detector is measured on (`agent/tests/agent/compliance_table.rs`).

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::language::Language;

static NUMBER_SIGN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#(\D|$)").expect("valid"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplianceAction {
    OptOut,
    /// Texts back on after a STOP (START, UNSTOP, YES): what the STOP ended resumes.
    OptIn,
    /// A keyword sign-up for the store's marketing texts (JOIN, SUBSCRIBE): a marketing
    /// opt-in that needs the program's confirmation message before any marketing text.
    Join,
    Help,
}

/// A compliance action and the language of the words that asked for it, so the
/// confirmation answers in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub action: ComplianceAction,
    pub language: Language,
}

#[rustfmt::skip]
const OPT_OUT_EN: &[&str] = &[
    "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "unsub",
    "unsubscribed", "remove", "stahp",
];
const OPT_OUT_ES: &[&str] = &["parar", "alto", "baja", "cancelar", "basta"];
const OPT_IN_EN: &[&str] = &["start", "unstop", "resubscribe"];
/// Keyword sign-ups as ads print them ("Text JOIN to 55555"); Spanish ads use ALTA / UNIRME.
const JOIN_EN: &[&str] = &["join", "subscribe"];
const JOIN_ES: &[&str] = &["alta", "unirme", "suscribir", "suscribirme"];
const HELP_EN: &[&str] = &["help", "info"];
const HELP_ES: &[&str] = &["ayuda"];
/// Courtesy words that say which language a bare keyword was sent in ("STOP por favor").
#[rustfmt::skip]
const COURTESY_ES: &[&str] = &[
    "por", "favor", "porfa", "gracias", "ya", "ahora", "fa", "xfa", "porfis", "plis", "aqui", "aca",
    "nada",
];
/// Words that may surround a keyword without changing its meaning ("stop please", "ok
/// stop", "BAJA por favor").
#[rustfmt::skip]
const COURTESY: &[&str] = &[
    "please", "pls", "plz", "plse", "now", "thanks", "thank", "you", "u", "thx", "ty", "it",
    "all", "me", "already", "ok", "okay", "just", "asap", "again", "immediately", "right", "por",
    "favor", "porfa", "gracias", "ya", "ahora", "fa", "xfa", "porfis", "plis", "too", "also",
    "everything", "anything", "aqui", "aca", "nada", "pretty",
];

/// Nouns that name the texts themselves (or the channel they arrive on).
#[rustfmt::skip]
const MESSAGES: &[&str] = &[
    "text", "texts", "txt", "txts", "texting", "txting", "message", "messages", "messaging",
    "msg", "msgs", "sms", "spam", "spamming", "promo", "promos", "promotions", "promotional",
    "ads", "advertising", "notifications", "alerts", "marketing", "reminders", "updates",
    "mensajes", "mensaje", "textos", "texto", "promociones", "publicidad", "notificaciones",
    "ofertas", "recordatorios", "avisos", "alertas", "junk", "crap", "garbage", "nonsense",
];
/// Verb forms of contacting ("stop texting", "quit messaging").
#[rustfmt::skip]
const CONTACTING: &[&str] = &[
    "texting", "txting", "messaging", "contacting", "spamming", "bothering", "calling", "hitting",
    "pinging", "harassing", "reminding", "bugging", "pestering", "nagging", "hounding",
];
/// Words that may sit between an act and its object ("stop sending me all these texts").
#[rustfmt::skip]
const BRIDGE: &[&str] = &[
    "me", "the", "these", "those", "this", "all", "your", "ur", "any", "more", "with", "of",
    "sending", "send", "getting", "receiving", "giving", "so", "many", "my", "us", "u", "you",
    "guys", "them", "stupid", "damn", "annoying", "constant", "daily", "freaking", "fucking",
    "promotional", "marketing", "sales", "sale", "shopping", "from", "to", "get", "receive",
    "los", "las", "sus", "tus", "esos", "estos", "de", "el", "la", "mi", "mis", "su", "tu",
    "este", "esta", "con", "a", "mas", "le", "les", "nos",
];

/// Classifies a message as a compliance action, if it is one. `opted_out` matters because
/// YES (and the natural "sign me back up") only re-subscribes a customer who is opted out.
pub fn detect(text: &str, opted_out: bool) -> Option<ComplianceAction> {
    detect_with_language(text, opted_out).map(|d| d.action)
}

pub fn detect_with_language(text: &str, opted_out: bool) -> Option<Detection> {
    let folded = fold(text);
    // "wrong #" is "wrong number"; "#1043" stays an order reference.
    let folded = NUMBER_SIGN.replace_all(&folded, " number ");
    let words: Vec<&str> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return None;
    }
    // The lexicon that matched names the language: "PARAR" is Spanish, "stop" English.
    // An English keyword in a Spanish sentence ("stop, no hablo inglés") is answered in
    // Spanish; a bare keyword is too short for the detector to say anything.
    let found = |action, spanish: bool| {
        let spanish = spanish || crate::language::detect(text).template == Language::Spanish;
        Some(Detection {
            action,
            language: if spanish {
                Language::Spanish
            } else {
                Language::English
            },
        })
    };
    if let Some(spanish) = keyword_message(&words, OPT_OUT_EN, OPT_OUT_ES) {
        return found(ComplianceAction::OptOut, spanish);
    }
    // A keyword standing as a sentence of its own: "I never signed up for this. STOP",
    // "stop, I already bought it", "no me interesa, baja". Not an interjection before a
    // question that keeps the conversation going: "Stop! before I buy, does it come in
    // black?" (a question about the texts themselves still counts).
    let all = clauses(&folded);
    let questions = question_clauses(&folded);
    for (at, clause) in all.iter().enumerate() {
        let Some(spanish) = keyword_message(clause, OPT_OUT_EN, OPT_OUT_ES) else {
            continue;
        };
        let asks_on = all.iter().enumerate().skip(at + 1).any(|(later, words)| {
            questions.contains(&later) && !(0..words.len()).any(|i| reference_at(words, i))
        });
        if !asks_on {
            return found(ComplianceAction::OptOut, spanish);
        }
    }
    // "opt out", "opt-out", "stop all" and "un subscribe" are spellings of one keyword.
    let joined = words.concat();
    if OPT_OUT_EN.contains(&joined.as_str()) {
        return found(ComplianceAction::OptOut, false);
    }
    // An opted-out customer asking for the texts back may quote the keyword that stopped
    // them ("my daughter replied STOP as a joke, turn my texts back on").
    let starts = clause_starts(&folded);
    let quoted_by_mistake = words.iter().any(|w| {
        matches!(
            *w,
            "mistake" | "joke" | "accident" | "accidentally" | "error" | "broma" | "equivocacion"
        )
    });
    if opted_out
        && (quoted_by_mistake || revocation(&words, &starts).is_none())
        && let Some(spanish) = resubscription(&words)
    {
        return found(ComplianceAction::OptIn, spanish);
    }
    if let Some(spanish) = revocation(&words, &starts) {
        return found(ComplianceAction::OptOut, spanish);
    }
    // Each clause on its own too, so a revocation's object ends where its sentence does
    // ("Que ya no me escriban!!! ya les dije").
    for clause in clauses(&folded) {
        // A bare keyword clause was judged above (it may be an interjection).
        if clause.len() < words.len()
            && keyword_message(&clause, OPT_OUT_EN, OPT_OUT_ES).is_none()
            && let Some(spanish) = revocation(&clause, &[0])
        {
            return found(ComplianceAction::OptOut, spanish);
        }
    }
    if insisted_keyword(&words) {
        return found(ComplianceAction::OptOut, false);
    }
    if let Some(spanish) = keyword_message(&words, HELP_EN, HELP_ES) {
        return found(ComplianceAction::Help, spanish);
    }
    // Only a bare keyword: "can I join the rewards program?" is a question about it.
    if let Some(spanish) = keyword_message(&words, JOIN_EN, JOIN_ES)
        && words.len() <= 3
    {
        return found(ComplianceAction::Join, spanish);
    }
    if keyword_message(&words, OPT_IN_EN, &[]).is_some()
        || OPT_IN_EN.contains(&joined.as_str())
        || clauses(&folded)
            .first()
            .is_some_and(|c| keyword_message(c, OPT_IN_EN, &[]).is_some())
    {
        return found(ComplianceAction::OptIn, false);
    }
    if opted_out {
        let bare_yes =
            words.len() <= 2 && words[0] == "yes" && words[1..].iter().all(|w| COURTESY.contains(w));
        if bare_yes {
            return found(ComplianceAction::OptIn, false);
        }
        if let Some(spanish) = resubscription(&words) {
            return found(ComplianceAction::OptIn, spanish);
        }
    }
    None
}

/// Lower case, apostrophes dropped (so "don't" is one word), Spanish accents folded.
pub(crate) fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\'' | '’' | '‘' | '`' | '´'))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            other => other,
        })
        .collect()
}

/// "I SAID STOP", "told you to stop", "u guys text more than my ex lol stop": the keyword is
/// what the customer insists on, or closes the message after a remark. "Stop" as a noun
/// ("the bus stop", "a door stop") follows an article or the noun it belongs to.
fn insisted_keyword(words: &[&str]) -> bool {
    const KEYWORDS: &[&str] = &["stop", "unsubscribe", "stopall", "optout", "unsub"];
    #[rustfmt::skip]
    const NOUN_BEFORE: &[&str] = &[
        "the", "a", "an", "to", "door", "bus", "pit", "truck", "rest", "full", "one", "last", "next",
        "first", "no", "non", "cant", "wont", "never", "dont", "not",
    ];
    for (at, word) in words.iter().enumerate() {
        if !KEYWORDS.contains(word) || at == 0 {
            continue;
        }
        let before = &words[at.saturating_sub(3)..at];
        let insisted = before
            .iter()
            .any(|w| matches!(*w, "said" | "told" | "asked" | "saying" | "dije"));
        let last = words[at + 1..].iter().all(|w| COURTESY.contains(w));
        if insisted || (last && !NOUN_BEFORE.contains(&words[at - 1])) {
            return true;
        }
    }
    false
}

/// Where the clause holding word `at` begins.
fn clause_start_of(clause_starts: &[usize], at: usize) -> usize {
    clause_starts
        .iter()
        .copied()
        .filter(|&start| start <= at)
        .max()
        .unwrap_or(0)
}

/// Word indices at which a clause begins.
fn clause_starts(folded: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    for clause in clauses(folded) {
        starts.push(at);
        at += clause.len();
    }
    starts
}

/// The message split at sentence punctuation, each clause as words.
fn clauses(folded: &str) -> Vec<Vec<&str>> {
    folded
        .split(['.', ',', '!', ';', '?', '\n', '¡', '¿'])
        .map(|clause| {
            clause
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|clause| !clause.is_empty())
        .collect()
}

/// Indices (as in `clauses`) of the clauses that end in a question mark.
fn question_clauses(folded: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut index = 0;
    let mut rest = folded;
    while !rest.is_empty() {
        let end = rest
            .find(['.', ',', '!', ';', '?', '\n', '¡', '¿'])
            .unwrap_or(rest.len());
        let has_words = rest[..end].chars().any(char::is_alphanumeric);
        let delimiter = rest[end..].chars().next();
        if has_words {
            if delimiter == Some('?') || rest[end..].starts_with("?") {
                out.push(index);
            }
            index += 1;
        }
        rest = &rest[(end + delimiter.map_or(0, char::len_utf8)).min(rest.len())..];
    }
    out
}

/// `Some(is_spanish)` when every word is a keyword of this action or a courtesy word, and
/// at least one is a keyword. Keywords forgive a held key ("stopp", "stooop") and, when
/// long, one typo ("unsubscibe").
fn keyword_message(words: &[&str], english: &[&str], spanish: &[&str]) -> Option<bool> {
    let mut english_hits = 0;
    let mut spanish_hits = 0;
    let is = |list: &[&str], word: &str| {
        list.contains(&word)
            || list.iter().any(|k| {
                let squeezed = squeeze(word);
                squeezed == squeeze(k)
                    || (k.len() >= 8 && crate::text::terms_match(k, word))
                    || (k.len() >= 4 && swapped_neighbours(k, word))
            })
    };
    let (mut english_courtesy, mut spanish_courtesy) = (false, false);
    for word in words {
        if is(english, word) {
            english_hits += 1;
        } else if is(spanish, word) {
            spanish_hits += 1;
        } else if COURTESY_ES.contains(word) {
            spanish_courtesy = true;
        } else if COURTESY.contains(word) {
            english_courtesy = true;
        } else {
            return None;
        }
    }
    let spanish = spanish_hits > english_hits || (spanish_courtesy && !english_courtesy);
    (english_hits + spanish_hits > 0).then_some(spanish)
}

/// "stpo" for "stop": two neighbouring letters swapped (a substitution, "shop", is a word).
fn swapped_neighbours(keyword: &str, word: &str) -> bool {
    let (k, w): (Vec<char>, Vec<char>) = (keyword.chars().collect(), word.chars().collect());
    if k.len() != w.len() || k == w {
        return false;
    }
    let differ: Vec<usize> = (0..k.len()).filter(|&i| k[i] != w[i]).collect();
    matches!(differ[..], [i, j] if j == i + 1 && k[i] == w[j] && k[j] == w[i])
}

/// A word with runs of one letter collapsed ("stooopp" → "stop").
fn squeeze(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

/// Does the phrase occur at `at`?
fn phrase_at(words: &[&str], at: usize, phrase: &[&str]) -> bool {
    words.len() >= at + phrase.len() && words[at..at + phrase.len()] == *phrase
}

fn position_of(words: &[&str], phrase: &[&str]) -> Option<usize> {
    (0..words.len()).find(|&at| phrase_at(words, at, phrase))
}

/// What follows an act, skipping bridge words: `Messages` when it is the texts, `Nothing`
/// when the message ends (or only courtesy follows), `Other` when it is something else (a
/// product, an order).
#[derive(Debug, PartialEq, Eq)]
enum Object {
    Messages,
    Nothing,
    Other,
}

fn object_after(words: &[&str], from: usize) -> Object {
    let rest = &words[from.min(words.len())..];
    for (i, word) in rest.iter().enumerate() {
        if MESSAGES.contains(word) || CONTACTING.contains(word) {
            return Object::Messages;
        }
        // "this number", "my number", "this phone": the customer's line itself.
        if matches!(*word, "number" | "phone" | "numero" | "cell") && i > 0 {
            return Object::Messages;
        }
        if i >= 5 || !(BRIDGE.contains(word) || COURTESY.contains(word)) {
            // "no more back in stock alerts": modifiers before the texts.
            let ahead = &rest[i..(i + 5).min(rest.len())];
            if let Some(noun) = ahead.iter().position(|w| MESSAGES.contains(w))
                && !ahead[..noun].iter().any(|w| NOT_THE_TEXTS.contains(w))
            {
                return Object::Messages;
            }
            return if rest[i..].iter().all(|w| COURTESY.contains(w)) {
                Object::Nothing
            } else {
                Object::Other
            };
        }
    }
    Object::Nothing
}

/// A revocation sentence; `Some(is_spanish)`.
fn revocation(words: &[&str], clause_starts: &[usize]) -> Option<bool> {
    english_revocation(words)
        .then_some(false)
        .or_else(|| spanish_revocation(words).then_some(true))
        .or_else(|| act_on_texts(words, clause_starts))
        .or_else(|| wrong_recipient(words))
}

/// The number is not the customer's: "wrong number", "not my number", "número equivocado",
/// "este no es mi número". Whoever consented is not the one reading.
fn wrong_recipient(words: &[&str]) -> Option<bool> {
    let number = |w: &str| matches!(w, "number" | "numero" | "phone" | "cell");
    for at in 0..words.len() {
        let window = &words[at..(at + 4).min(words.len())];
        if matches!(window, ["not", "my", n, ..] | ["isnt", "my", n, ..] if number(n)) {
            return Some(false);
        }
        if matches!(window, ["no", "es", "mi", n, ..] if number(n))
            || matches!(window, [n, "equivocado"] | [n, "equivocado", "se" | "ya" | "por" | "gracias", ..] if number(n))
        {
            return Some(true);
        }
    }
    None
}

/// Things a stop-like verb can be aimed at instead of the texts: "stop the shipment", "take
/// off the gift message", "dar de baja la garantía".
#[rustfmt::skip]
const NOT_THE_TEXTS: &[&str] = &[
    "order", "orders", "shipment", "shipments", "shipping", "delivery", "package", "parcel",
    "item", "items", "size", "sizes", "color", "colour", "return", "refund", "charge", "charges",
    "charging", "subscription", "box", "autoship", "warranty", "address", "invoice", "gift",
    "monogram", "engraving", "note", "cart", "account", "card", "payment", "pedido", "envio",
    "paquete", "caja", "cajas", "garantia", "direccion", "talla", "cuenta", "tarjeta", "pago",
    "regalo",
];

/// Is word `at` an act of stopping, refusing or removing? `Some(is_spanish)`.
fn act_at(words: &[&str], at: usize) -> Option<bool> {
    let word = words[at];
    let before = |n: usize| &words[at.saturating_sub(n)..at];
    let after = |n: usize| &words[at + 1..(at + 1 + n).min(words.len())];
    let contact_stem = |w: &&str| {
        ["text", "txt", "messag", "contact", "spam", "sms", "send", "call"]
            .iter()
            .any(|s| w.starts_with(s))
    };
    let english = match word {
        "stop" | "quit" | "cease" | "desist" | "end" | "halt" | "cancel" | "discontinue" | "terminate"
        | "deactivate" | "disable" | "block" | "remove" | "removed" | "delete" | "erase" | "enough"
        | "unsub" => true,
        // "consent revoked", "I withdraw my consent".
        w if (w.starts_with("revok") || w.starts_with("withdr"))
            && words[at.saturating_sub(3)..(at + 4).min(words.len())].contains(&"consent") =>
        {
            true
        }
        // "make it stop", "make the messages go away".
        "go" => after(1) == ["away"],
        w if w.starts_with("unsubscrib") || w.starts_with("unsuscrib") => true,
        // "if you stopped sending me texts" — not "the texts stopped coming".
        "stopped" => before(2).iter().any(|w| matches!(*w, "you" | "u")),
        // "turn off", "shut them off", "f off".
        "off" => before(4).iter().any(|w| {
            matches!(
                *w,
                "turn" | "shut" | "switch" | "f" | "fuck" | "piss" | "get" | "take"
            )
        }),
        "opt" => after(3).contains(&"out"),
        "no" => after(1)
            .iter()
            .any(|w| matches!(*w, "more" | "longer") || MESSAGES.contains(w)),
        "dont" | "never" | "not" => after(3)
            .iter()
            .any(|w| contact_stem(w) || matches!(*w, "want" | "need" | "wish" | "receive" | "get")),
        _ => false,
    };
    if english {
        return Some(false);
    }
    let send_verb = |w: &&str| {
        [
            "escrib", "mand", "envi", "text", "contact", "molest", "mensaj", "llam",
        ]
        .iter()
        .any(|s| w.starts_with(s))
    };
    let spanish = match word {
        "parar" | "paren" | "pare" | "parad" | "basta" | "detener" | "detengan" | "cancelar" | "cancelen"
        | "alto" | "baja" => true,
        // "ya para con los textos" (not the preposition: "para mi pedido").
        "para" => before(1) == ["ya"] || after(1) == ["con"],
        w if w.starts_with("desuscrib") || w.starts_with("desinscrib") => true,
        w if ["borr", "elimin", "quit", "sac", "saq", "salir", "salgan"]
            .iter()
            .any(|s| w.starts_with(s)) =>
        {
            true
        }
        "dejen" | "deja" | "dejar" | "deje" | "dejad" => after(1) == ["de"],
        "no" => after(2)
            .iter()
            .any(|w| send_verb(w) || matches!(*w, "quiero" | "deseo" | "interesa" | "interesan" | "mas")),
        _ => false,
    };
    spanish.then_some(true)
}

/// Is word `at` a reference to the texts or to the number they come to?
fn reference_at(words: &[&str], at: usize) -> bool {
    let word = words[at];
    let contacted = [
        "texted",
        "messaged",
        "contacted",
        "escribirme",
        "mandarme",
        "enviarme",
        "textearme",
        "contactarme",
        "molestarme",
        "mandando",
        "enviando",
        "escribiendo",
        "texteando",
    ];
    if MESSAGES.contains(&word) || CONTACTING.contains(&word) || contacted.contains(&word) {
        return true;
    }
    if matches!(word, "junk" | "deals" | "offers" | "coupons" | "list" | "lista") {
        return true;
    }
    matches!(word, "number" | "numero" | "phone" | "cell")
        && at > 0
        && matches!(
            words[at - 1],
            "this" | "my" | "the" | "este" | "mi" | "our" | "el" | "su" | "ese"
        )
}

/// The general shape behind every revocation: an act of stopping, refusing or removing, and
/// a reference to the texts, close together with no product or order between them to be the
/// act's real object ("please discontinue texts to this number", "i don't need the cart
/// reminders, shut them off", "borren este número de su lista"). A reference after the act
/// must follow within a few words; one before it counts only when the act closes the clause
/// ("too many texts, unsubscribing"), so "when does the promo end" is a question.
fn act_on_texts(words: &[&str], clause_starts: &[usize]) -> Option<bool> {
    const PRONOUNS: &[&str] = &[
        "them", "these", "those", "it", "this", "me", "off", "out", "now", "lo", "los", "las",
    ];
    const WANTING: &[&str] = &[
        "want", "wish", "need", "to", "receive", "deseo", "quiero", "recibir", "mas", "more", "anymore",
    ];
    let neutral =
        |w: &&str| BRIDGE.contains(w) || COURTESY.contains(w) || PRONOUNS.contains(w) || WANTING.contains(w);
    let blocked = |range: &[&str]| {
        let unknown = range.iter().filter(|w| !neutral(w)).count();
        unknown > 2 || range.iter().any(|w| NOT_THE_TEXTS.contains(w))
    };
    // "gift message", "mensaje de regalo": a message that is part of a product, not a text
    // ("cart reminders" are texts).
    const PRODUCT_TEXT: &[&str] = &[
        "gift",
        "regalo",
        "card",
        "tarjeta",
        "engraving",
        "engraved",
        "custom",
        "personalized",
        "handwritten",
        "packing",
    ];
    let compound = |at: usize| {
        (at > 0 && PRODUCT_TEXT.contains(&words[at - 1]))
            || (words.get(at + 1) == Some(&"de")
                && words.get(at + 2).is_some_and(|w| PRODUCT_TEXT.contains(w)))
    };
    let strong_reference = (0..words.len()).any(|at| reference_at(words, at));
    for at in 0..words.len() {
        let Some(spanish) = act_at(words, at) else {
            continue;
        };
        for reference in 0..words.len() {
            if !reference_at(words, reference) || compound(reference) {
                continue;
            }
            if reference > at && reference - at <= 7 && !blocked(&words[at + 1..reference]) {
                return Some(spanish);
            }
            // The act opens its clause, give or take "please" or "shut them": "…, shut them off".
            let clause_start = clause_start_of(clause_starts, at);
            let opens_clause = words[clause_start..at].iter().all(|w| {
                COURTESY.contains(w)
                    || PRONOUNS.contains(w)
                    || matches!(*w, "turn" | "shut" | "switch" | "f" | "take" | "get")
            });
            if reference < at && opens_clause && words[at + 1..].iter().all(neutral) {
                return Some(spanish);
            }
            // "how do i make these texts stop", "make the messages go away": a causative
            // whose object is the texts.
            let causative = words[..reference]
                .iter()
                .rev()
                .take(3)
                .any(|w| matches!(*w, "make" | "get"));
            if reference < at && at - reference <= 2 && causative {
                return Some(spanish);
            }
        }
        // "don't send me any more of these", "turn these off", "make them stop", "how do I
        // get off this": the act's object is a demonstrative, the text being answered. "This"
        // and "it" count only for removal ("stop this" may be an order).
        let rest = &words[at + 1..];
        let content: Vec<&&str> = rest
            .iter()
            .filter(|w| !matches!(**w, "anymore" | "again" | "please" | "pls" | "now" | "too"))
            .collect();
        let removal =
            matches!(words[at], "off" | "removed" | "remove" | "go") || words[at].starts_with("unsub");
        let points_back =
            |w: &str| matches!(w, "these" | "those" | "them") || (removal && matches!(w, "this" | "it"));
        if words[at] != "no" && rest.iter().all(neutral) && content.last().is_some_and(|w| points_back(w)) {
            return Some(spanish);
        }
        let before_act = &words[at.saturating_sub(2)..at];
        let causative_before = words[..at.saturating_sub(1)]
            .iter()
            .rev()
            .take(3)
            .any(|w| matches!(*w, "make" | "turn" | "shut" | "switch"));
        if before_act
            .iter()
            .any(|w| matches!(*w, "these" | "those" | "them"))
            && causative_before
        {
            return Some(spanish);
        }
        // "yo nunca me inscribí a esto, sáquenme": a Spanish "remove me" standing alone.
        if spanish && words[at].ends_with("me") && words[at + 1..].iter().all(|w| COURTESY.contains(w)) {
            let clause_start = clause_start_of(clause_starts, at);
            if words[clause_start..at].iter().all(|w| COURTESY.contains(w)) {
                return Some(spanish);
            }
        }
        // "no thanks, stop these", "ya paren": a short message whose act points at the text
        // being answered.
        if !strong_reference
            && words.len() <= 4
            && rest.iter().all(|w| PRONOUNS.contains(w) || COURTESY.contains(w))
            && !matches!(words[at], "no" | "not" | "dont" | "never")
        {
            return Some(spanish);
        }
    }
    None
}

fn english_revocation(words: &[&str]) -> bool {
    // "I don't want to unsubscribe" is not an opt-out; "block you if you don't quit
    // texting" still is (the negation sits in a condition).
    let negated_before = |at: usize| {
        let window = &words[at.saturating_sub(3)..at];
        window
            .iter()
            .any(|w| matches!(*w, "dont" | "not" | "never" | "wont" | "didnt"))
            && !words[at.saturating_sub(5)..at].contains(&"if")
    };
    let within = |at: usize, n: usize| &words[at + 1..(at + 1 + n).min(words.len())];
    if words.iter().any(|w| matches!(*w, "interested" | "interest"))
        && words
            .iter()
            .any(|w| matches!(*w, "stop" | "unsubscribe" | "quit" | "remove"))
        && position_of(words, &["not", "interested"]).is_some()
    {
        return true;
    }
    for (at, word) in words.iter().enumerate() {
        let next = words.get(at + 1).copied().unwrap_or("");
        match *word {
            // The keywords that name the act itself, anywhere: "how do I unsubscribe",
            // "please opt me out" — unless the sentence says not to.
            "unsubscribe" | "unsub" | "optout" | "unsubscribed"
                if !negated_before(at)
                    && (object_after(words, at + 1) != Object::Other || mentions_list(&words[at + 1..])) =>
            {
                return true;
            }
            // "how do I opt out", "opt me out of texts" — not "opt out of the warranty".
            "opt" if matches!(next, "out" | "me") && !negated_before(at) => {
                let out_at = if next == "out" { at + 1 } else { at + 2 };
                if words.get(out_at) == Some(&"out")
                    && (object_after(words, out_at + 1) != Object::Other
                        || mentions_list(&words[out_at + 1..]))
                {
                    return true;
                }
            }
            // "revoke consent", "I withdraw my consent to receive texts".
            "revoke" | "withdraw" | "revoking" | "withdrawing" if within(at, 3).contains(&"consent") => {
                return true;
            }
            // "I no longer wish to receive text messages".
            "no" if next == "longer" && within(at, 7).iter().any(|w| MESSAGES.contains(w)) => return true,
            // "turn off these texts", "turn the texts off".
            "turn" | "switch" | "shut"
                if within(at, 4).contains(&"off") && within(at, 5).iter().any(|w| MESSAGES.contains(w)) =>
            {
                return true;
            }
            // "I want out of this text list", "get me off this list".
            "want" | "get" | "let"
                if (within(at, 2).contains(&"out") || within(at, 2).contains(&"off"))
                    && (mentions_list(within(at, 6)) || object_after(words, at + 2) == Object::Messages) =>
            {
                return true;
            }
            // "stop texting me", "quit sending these", "cancel the texts", "end these msgs".
            "stop" | "quit" | "cease" | "end" | "halt" | "cancel" | "pause" | "discontinue" | "terminate"
                if !negated_before(at) =>
            {
                if CONTACTING.contains(&next) {
                    return true;
                }
                let after = object_after(words, at + 1);
                if after == Object::Messages {
                    return true;
                }
                // "please stop sending" with nothing after it.
                if matches!(next, "sending" | "send") && after == Object::Nothing {
                    return true;
                }
            }
            // "no more texts", "no more please", "no more!!" — but "no more of the vanilla one?".
            "no" if next == "more"
                && (object_after(words, at + 2) != Object::Other || ends_with_these(&words[at + 2..])) =>
            {
                return true;
            }
            // "enough with the texts", "ok enough already" — but "is that enough?".
            "enough" => {
                let after = object_after(words, at + 1);
                let leads = at == 0
                    || (at == 1 && matches!(words[0], "ok" | "okay" | "alright" | "seriously" | "thats"));
                if after == Object::Messages || (after == Object::Nothing && leads) {
                    return true;
                }
                if ends_with_these(&words[at + 1..]) {
                    return true;
                }
            }
            // "I'm done with these messages", "sick of your texts", "fed up with the spam".
            "done" | "sick" | "tired" | "fed" => {
                let skip = usize::from(next == "up");
                let with = words.get(at + 1 + skip).copied().unwrap_or("");
                if matches!(with, "with" | "of" | "receiving" | "getting") {
                    let from = at + 2 + skip;
                    if object_after(words, from) == Object::Messages || ends_with_these(&words[from..]) {
                        return true;
                    }
                }
            }
            // "don't text me", "do not contact me again", "never message this number".
            "dont" | "never" | "not" => {
                let verb_at = if next == "ever" { at + 2 } else { at + 1 };
                let verb = words.get(verb_at).copied().unwrap_or("");
                if matches!(
                    verb,
                    "text" | "txt" | "message" | "msg" | "contact" | "sms" | "call" | "spam"
                ) {
                    let target = words.get(verb_at + 1).copied().unwrap_or("");
                    if matches!(target, "me" | "this" | "my" | "again" | "anymore" | "here" | "") {
                        return true;
                    }
                }
                // "I don't want these texts", "don't want any more messages".
                if verb == "want" && object_after(words, verb_at + 1) == Object::Messages {
                    return true;
                }
            }
            // "remove me", "remove my number", "take me off your list", "delete my number".
            "remove" | "delete" | "take" | "drop" | "erase" => {
                let target = &words[at + 1..];
                let own_number = target
                    .first()
                    .is_some_and(|w| matches!(*w, "my" | "this" | "our"))
                    && target
                        .get(1)
                        .is_some_and(|w| matches!(*w, "number" | "phone" | "cell" | "info"));
                let who = match target.first() {
                    Some(&"me") => 1,
                    _ if own_number => 2,
                    _ => continue,
                };
                let mut rest_from = at + 1 + who;
                // "take me off (your list)"; "take me to checkout" is not a revocation.
                if *word == "take" {
                    if !words.get(rest_from).is_some_and(|w| matches!(*w, "off" | "out")) {
                        continue;
                    }
                    rest_from += 1;
                }
                let rest = &words[rest_from.min(words.len())..];
                if rest.iter().all(|w| COURTESY.contains(w))
                    || mentions_list(rest)
                    || object_after(words, rest_from) == Object::Messages
                {
                    return true;
                }
            }
            "lose" | "forget" if next == "my" && words.get(at + 2) == Some(&"number") => return true,
            "leave" if next == "me" && words.get(at + 2) == Some(&"alone") => return true,
            // "wrong number" (the person who consented is not the one reading), but not
            // "the wrong number on my order".
            "wrong"
                if matches!(next, "number" | "person")
                    && !words
                        .get(at + 2)
                        .is_some_and(|w| matches!(*w, "on" | "in" | "for" | "of" | "shipped" | "listed")) =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// "...from your list", "...off the list", "...from your texts".
fn mentions_list(rest: &[&str]) -> bool {
    rest.iter()
        .take(8)
        .any(|w| matches!(*w, "list" | "lists" | "contacts" | "database" | "system") || MESSAGES.contains(w))
}

/// "no more of these", "done with this", "enough of this!!": the demonstrative is the last
/// word, so it can only point at the text the customer is replying to.
fn ends_with_these(rest: &[&str]) -> bool {
    let content: Vec<&&str> = rest
        .iter()
        .filter(|w| !COURTESY.contains(*w) || **w == "it")
        .collect();
    matches!(
        content.last().map(|w| **w),
        Some("these" | "this" | "them" | "it")
    ) && content.len() <= 3
        && content.iter().all(|w| BRIDGE.contains(*w) || **w == "it")
}

fn spanish_revocation(words: &[&str]) -> bool {
    let send_verb = |w: &str| {
        [
            "escrib", "mand", "envi", "text", "molest", "contact", "mensaj", "llam",
        ]
        .iter()
        .any(|stem| w.starts_with(stem))
    };
    for (at, word) in words.iter().enumerate() {
        let next = words.get(at + 1).copied().unwrap_or("");
        match *word {
            // "no más mensajes", "no más por favor" — but "no más de 50 dólares?".
            "no" if next == "mas" && object_after(words, at + 2) != Object::Other => return true,
            // "dejen de escribirme", "paren de mandar mensajes".
            // "dejen de escribirme", "paren de mandar mensajes" — not "dejar de mandar las
            // cajas aplastadas" (the boxes are the object).
            "dejen" | "deja" | "dejar" | "dejes" | "deje" | "paren" | "pare" | "para" | "parar"
                if next == "de" && words.get(at + 2).is_some_and(|w| send_verb(w)) =>
            {
                let verb = words[at + 2];
                if verb.ends_with("me")
                    || verb.ends_with("nos")
                    || object_after(words, at + 3) != Object::Other
                {
                    return true;
                }
            }
            // "no me manden más", "no me escriban", "no envíen más mensajes".
            "no" => {
                let verb_at = if matches!(next, "me" | "nos" | "le" | "les") {
                    at + 2
                } else {
                    at + 1
                };
                if let Some(verb) = words.get(verb_at).filter(|w| send_verb(w)) {
                    let after = words.get(verb_at + 1).copied().unwrap_or("");
                    let personal = next == "me" || verb.ends_with("me");
                    if after == "mas"
                        || MESSAGES.contains(&after)
                        || (personal && object_after(words, verb_at + 1) != Object::Other)
                    {
                        return true;
                    }
                }
                // "ya no quiero recibir mensajes", "no quiero más textos".
                if next == "quiero" || next == "deseo" {
                    if object_after(words, at + 2) == Object::Messages {
                        return true;
                    }
                    let rest = &words[at + 2..];
                    if rest.first().is_some_and(|w| matches!(*w, "recibir" | "mas"))
                        && object_after(words, at + 3) != Object::Other
                    {
                        return true;
                    }
                }
            }
            // "darme de baja", "denme de baja", "quiero la baja".
            // "darme de baja", "dar de baja mi número" — not "dar de baja mi suscripción de café".
            "baja" if at > 0 && words[at - 1] == "de" && object_after(words, at + 1) != Object::Other => {
                return true;
            }
            // "basta de mensajes", "ya basta con los mensajes".
            "basta" if object_after(words, at + 1) == Object::Messages => return true,
            // "borren mi número", "quítenme de la lista", "sáquenme de la lista".
            w if (w.starts_with("borr") || w.starts_with("elimin"))
                && next == "mi"
                && words.get(at + 2).is_some_and(|w| *w == "numero") =>
            {
                return true;
            }
            w if ["quit", "saq", "sac", "borr", "elimin"]
                .iter()
                .any(|stem| w.starts_with(stem))
                && w.ends_with("me")
                && words[at + 1..].contains(&"lista") =>
            {
                return true;
            }
            "cancelar" | "cancelen" | "cancela" if object_after(words, at + 1) == Object::Messages => {
                return true;
            }
            "cancelar" | "cancelen" | "cancela"
                if words[at + 1..].iter().take(3).any(|w| w.starts_with("suscrip")) =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// "sign me back up", "turn the texts back on", "quiero volver a recibir mensajes": asked
/// only of a customer who is opted out, so "can I get the blue one again?" (no texts
/// named) is left alone. `Some(is_spanish)`.
fn resubscription(words: &[&str]) -> Option<bool> {
    let has = |phrase: &[&str]| position_of(words, phrase).is_some();
    let again = words
        .iter()
        .any(|w| w.starts_with("volv") || w.starts_with("reactiv") || w.starts_with("reenabl"))
        || [
            "back",
            "again",
            "resume",
            "restart",
            "resubscribe",
            "rejoin",
            "volver",
            "nuevo",
            "vez",
            "reactivar",
            "re",
            "enable",
            "mistake",
            "accident",
            "accidentally",
            "error",
        ]
        .iter()
        .any(|w| words.contains(w))
        || words
            .iter()
            .any(|w| w.starts_with("vuelv") || w.starts_with("reactiv"));
    let texts = words.iter().any(|w| {
        MESSAGES.contains(w)
            || CONTACTING.contains(w)
            || matches!(*w, "text" | "escribirme" | "mandarme" | "enviarme")
    }) || words
        .iter()
        .any(|w| matches!(*w, "list" | "lista") || w.starts_with("suscrib") || w.starts_with("subscrib"))
        || has(&["de", "alta"]);
    // The texts must be what is asked for: "got your message, what's the code again?" names
    // them in passing.
    let asks = words.iter().any(|w| {
        matches!(
            *w,
            "want"
                | "wanna"
                | "get"
                | "receive"
                | "resume"
                | "restart"
                | "start"
                | "turn"
                | "send"
                | "add"
                | "put"
                | "count"
                | "sign"
                | "subscribe"
                | "resubscribe"
                | "rejoin"
                | "enable"
                | "like"
                | "join"
                | "can"
                | "text"
                | "quiero"
                | "alta"
                | "recibir"
                | "pueden"
                | "puede"
        ) || [
            "envi", "mand", "volv", "vuelv", "suscrib", "reactiv", "activ", "escrib",
        ]
        .iter()
        .any(|stem| w.starts_with(stem))
    });
    let phrase = [
        &["opt", "in"][..],
        &["optin"],
        &["opt", "me", "in"],
        &["opt", "back", "in"],
        &["me", "back", "in"],
        &["me", "back", "on"],
        &["sign", "me", "back", "up"],
        &["sign", "me", "up", "again"],
    ]
    .iter()
    .any(|p| has(p));
    if !(phrase || again && texts && asks) {
        return None;
    }
    const SPANISH: &[&str] = &[
        "mensajes", "mensaje", "textos", "volver", "nuevo", "vez", "recibir", "quiero", "alta", "ofertas",
    ];
    Some(
        words
            .iter()
            .any(|w| SPANISH.contains(w) || w.starts_with("vuelv") || w.starts_with("suscrib")),
    )
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
            ("Opt-Out", false, Some(OptOut)),
            ("Stop please", false, Some(OptOut)),
            ("please stop", false, Some(OptOut)),
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
            ("no more", false, Some(OptOut)),
        ]);
    }

    #[test]
    fn questions_that_merely_contain_a_keyword_are_not() {
        check(&[
            ("stop sending me the blue one?", false, None),
            (
                "Stop! before I buy, does the Stormline come in black?",
                false,
                None,
            ),
            ("I never signed up for this. STOP", false, Some(OptOut)),
            ("cancel my order #1042", false, None),
            ("does the jacket stop wind?", false, None),
            ("when does the sale end", false, None),
            ("I need help with my order", false, None),
            ("yes the size 10 please", true, None),
            ("take me to checkout", false, None),
            ("", false, None),
        ]);
    }

    #[test]
    fn spanish_keywords_answer_in_spanish() {
        for text in ["PARAR", "alto", "Baja por favor", "no más mensajes"] {
            let found = detect_with_language(text, false).expect(text);
            assert_eq!(found.action, OptOut, "{text}");
            assert_eq!(found.language, Language::Spanish, "{text}");
        }
        let help = detect_with_language("AYUDA", false).expect("AYUDA");
        assert_eq!((help.action, help.language), (Help, Language::Spanish));
        assert_eq!(detect("quiero cancelar mi pedido", false), None);
    }
}
