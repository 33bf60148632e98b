//! The offline, grounded responder (the default generator): it answers with facts from the
//! tools and the passage sentences that best match the question, composed through the
//! `reply` template. It never writes a claim of its own, so everything it says is quoted
//! from the merchant's data; when nothing matches well enough it asks for a person.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use parley_knowledge::Embedder;
use parley_prompts::Prompts;
use regex::Regex;

use crate::generate::{Draft, Fact, GenerateError, GenerationRequest, Generator, Passage};
use crate::text::{terms, terms_match, unique};

/// Longest reply body the responder composes from passages, in characters: two GSM-7
/// segments. Order and offer facts may use nearly three (tracking numbers are long).
const MAX_BODY_CHARS: usize = 306;
const MAX_FACT_BODY_CHARS: usize = 420;
/// Passages whose sentences are considered.
const MAX_PASSAGES: usize = 5;
/// Share of the question's (weighted) terms the chosen sentences must cover to be an answer.
const MIN_COVERAGE: f32 = 0.34;

/// Stemmed words for the document itself: "policy", "rules", "terms", "info", "details".
const DOCUMENT_WORDS: &[&str] = &["polici", "rule", "term", "info", "inform", "detail"];

/// Score added to a sentence that holds the kind of value the question asks for.
const WANTED_VALUE_BONUS: f32 = 0.25;

/// Score added to a return-window sentence when the customer asks whether they may return.
const RETURN_WINDOW_BONUS: f32 = 0.3;

/// Candidates (best by words) whose meaning is compared with the question's.
const DENSE_RERANK: usize = 16;
/// Weight of sentence-question cosine similarity against the lexical score.
const DENSE_WEIGHT: f32 = 1.5;

pub struct ExtractiveResponder {
    prompts: Arc<Prompts>,
    /// Embeds candidate sentences so meaning, not only shared words, picks the answer
    /// ("can I return boots after 3 weeks?" ↔ "You have 30 days from delivery…").
    embedder: Option<Arc<dyn Embedder>>,
}

impl std::fmt::Debug for ExtractiveResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractiveResponder")
            .field("dense_rerank", &self.embedder.is_some())
            .finish()
    }
}

impl ExtractiveResponder {
    pub fn new(prompts: Arc<Prompts>) -> Self {
        Self {
            prompts,
            embedder: None,
        }
    }

    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }
}

/// Lets a shared `Arc<dyn Embedder>` sit inside a [`parley_knowledge::CachingEmbedder`].
pub struct SharedEmbedder(pub Arc<dyn Embedder>);

impl Embedder for SharedEmbedder {
    fn model_id(&self) -> &str {
        self.0.model_id()
    }

    fn dimension(&self) -> usize {
        self.0.dimension()
    }

    fn embed(&self, texts: &[String]) -> parley_knowledge::Result<Vec<Vec<f32>>> {
        self.0.embed(texts)
    }
}

#[async_trait]
impl Generator for ExtractiveResponder {
    fn name(&self) -> &str {
        "extractive"
    }

    async fn generate(&self, request: &GenerationRequest<'_>) -> Result<Draft, GenerateError> {
        let dense = match (&self.embedder, request.query_vector) {
            (Some(embedder), Some(query)) => Some((embedder.clone(), query.to_vec())),
            _ => None,
        };
        let Some((body, sources)) = compose(request, dense).await else {
            return Ok(Draft::Escalate);
        };
        let text = self
            .prompts
            .render("reply", serde_json::json!({ "body": body, "follow_up": "" }))?;
        Ok(Draft::Text { text, sources })
    }
}

/// A sentence that could go into the reply.
#[derive(Debug, Clone)]
struct Candidate {
    text: String,
    source: String,
    /// Stemmed terms of the sentence, and of its heading/title (which count half).
    terms: Vec<String>,
    context_terms: Vec<String>,
    rank: usize,
    /// Position of the sentence inside its passage.
    position: usize,
    is_fact: bool,
    /// Places other than the home country that the sentence or its headings name
    /// ("Shipping > Alaska & Hawaii"): the rule holds there, not in general.
    places: Vec<crate::scope::Place>,
    /// The places its section headings name (a stronger scope than a mention in passing).
    heading_places: Vec<crate::scope::Place>,
    /// Product categories its headings name ("E-bikes and batteries").
    categories: Vec<String>,
    /// Its headings name the home scope ("Contiguous US").
    home: bool,
    /// The passage's title (a product's name, for product passages).
    title: String,
    /// The product a policy section is about, when its heading is that product's title
    /// (source and title): a size chart under "### Sprout Kids Helmet" is the Sprout's.
    about: Option<(String, String)>,
}

async fn compose(
    request: &GenerationRequest<'_>,
    dense: Option<(Arc<dyn Embedder>, Vec<f32>)>,
) -> Option<(String, Vec<String>)> {
    // Words that name the kind of document rather than its content ("what's your return
    // policy?") are not what a sentence must cover.
    // Nor is the customer's own situation ("bought 3 weeks ago"): the answer holds the
    // window, not their figure.
    let mut query_terms = unique(terms(&crate::question::without_elapsed_time(
        request.resolved_query,
    )));
    if query_terms.iter().any(|t| !DOCUMENT_WORDS.contains(&t.as_str())) {
        query_terms.retain(|t| !DOCUMENT_WORDS.contains(&t.as_str()));
    }
    // Order and offer facts are the answer by themselves: quote them in order.
    // So is a direct yes/no answer from the catalogue.
    let fact_first = request
        .facts
        .iter()
        .any(|f| f.direct || f.source.starts_with("orders/") || f.source.starts_with("offers/"));
    if fact_first {
        let mut body = String::new();
        let mut sources = Vec::new();
        for fact in request.facts {
            if !append(&mut body, &fact.text, MAX_FACT_BODY_CHARS) {
                continue;
            }
            push_unique(&mut sources, &fact.source);
        }
        return Some((body, sources));
    }

    // "Can I return it?" is answered by the window (or the item's final-sale rule), not by
    // whichever sentence shares the most words with the rest of the question.
    let wants = crate::question::Wants::of(request.message);
    let returning = crate::question::asks_to_return(request.message)
        && !wants.kinds().contains(&crate::question::Kind::Money);
    let candidates = candidates(
        request.passages,
        request.facts,
        request.categories,
        request.product,
        request.product_titles,
        returning,
    );
    if candidates.is_empty() || query_terms.is_empty() {
        return None;
    }
    let weights = term_weights(&query_terms, &candidates);
    let total_weight: f32 = weights.values().sum();
    let kind_terms = wants.kind_terms();
    // The question's words for a place ("uk"): a sentence naming that place by any of its
    // names ("United Kingdom") has them.
    let place_terms: Vec<&String> = query_terms
        .iter()
        .filter(|t| !crate::scope::away(t).is_empty())
        .collect();
    let asked_places = crate::scope::away(request.resolved_query);
    let asked_categories: Vec<String> = unique(
        terms(&request.resolved_query.replace('-', ""))
            .into_iter()
            .filter(|t| request.categories.contains(t))
            .chain(request.product_categories.iter().cloned()),
    );
    if let Some(answer) = exhaustive_no(request.message, &asked_places, &asked_categories, &candidates) {
        return Some(answer);
    }
    if returning
        && request.product_named
        && let Some(answer) = final_sale_no(request.product, &candidates)
    {
        return Some(answer);
    }
    let is_window = |candidate: &Candidate| {
        returning
            && !candidate.is_fact
            && !candidate.source.starts_with("products/")
            && crate::question::is_return_window(&candidate.text)
            && scope_fit(candidate, &asked_places, &asked_categories) >= 0.0
            && (asked_categories.is_empty() || !other_category(candidate, &asked_categories))
    };

    let mut scored: Vec<(f32, &Candidate, Vec<&String>)> = candidates
        .iter()
        .map(|candidate| {
            let mut score = 0.0;
            let mut covered = Vec::new();
            let holds_wanted = wants.met_by(&candidate.text);
            // Within the product under discussion every sentence is about it, so a sentence
            // holding the value asked for ("14.2 kg" for "how heavy is the Loam?") gets its
            // title's words in full from the heading, as the intro that names it does.
            let about_product =
                |p: &str| p == candidate.source || candidate.about.as_ref().is_some_and(|(a, _)| a == p);
            let own_product = holds_wanted && request.product.is_some_and(about_product);
            for term in &query_terms {
                let weight = weights[term];
                if candidate.terms.iter().any(|t| terms_match(t, term)) {
                    score += weight;
                    covered.push(term);
                } else if candidate.context_terms.iter().any(|t| terms_match(t, term)) {
                    // The heading ("The return window") often carries the topic the
                    // sentence itself leaves implicit.
                    score += if own_product { weight } else { 0.7 * weight };
                    covered.push(term);
                } else if place_terms.contains(&term) && names_asked_place(candidate, &asked_places) {
                    score += weight;
                    covered.push(term);
                } else if holds_wanted && kind_terms.contains(&term.as_str()) {
                    // "Hours: Mon-Fri 8am-6pm" answers "when are you open?" without "open".
                    score += weight;
                    covered.push(term);
                }
            }
            score /= total_weight.max(f32::EPSILON);
            score += 0.12 / (candidate.rank as f32 + 1.0);
            if candidate.is_fact {
                score += 0.2;
            }
            // A sentence holding the kind of value asked for ("8am-6pm" for "when are you
            // open?") answers; one that only shares the words may not.
            if holds_wanted {
                score += WANTED_VALUE_BONUS;
            }
            if is_window(candidate) {
                score += RETURN_WINDOW_BONUS;
            }
            if crate::question::is_about_the_document(&candidate.text) {
                score -= 0.3;
            }
            score += scope_fit(candidate, &asked_places, &asked_categories);
            // Another product's attributes are not this product's ("does the Tempo Carbon…"
            // answered with the Tempo Alloy's clearance).
            // So is a policy section headed by another product's name.
            if let Some(product) = request.product
                && (candidate.source.starts_with("products/") || candidate.about.is_some())
                && !about_product(product)
            {
                score -= 0.3;
            }
            // Very long sentences make poor texts; very short ones rarely answer.
            if candidate.text.len() > 240 {
                score -= 0.1;
            }
            // "It takes about 3-4 weeks." means nothing without the sentence before it.
            let first_word = candidate.text.split_whitespace().next().unwrap_or("");
            if !candidate.is_fact
                && matches!(
                    first_word,
                    "It" | "It's" | "This" | "That" | "They" | "These" | "Those"
                )
            {
                score -= 0.2;
            }
            (score, candidate, covered)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let meaning = match dense {
        Some((embedder, query)) => {
            rerank_by_meaning(&mut scored, request.sentence_vectors, embedder, &query).await
        }
        None => HashMap::new(),
    };

    for (score, candidate, _) in scored.iter().take(6) {
        tracing::trace!(score, source = %candidate.source, rank = candidate.rank, position = candidate.position, text = %candidate.text, places = ?candidate.places, categories = ?candidate.categories, "candidate sentence");
    }
    let (best_score, best, best_covered) = scored.first()?;
    let mut covered: Vec<&String> = best_covered.clone();
    let mut chosen: Vec<&Candidate> = vec![best];
    // Up to two more sentences when they are nearly as good and add something: a term the
    // first did not cover, or the figure the question asks for.
    for (score, candidate, candidate_covered) in scored.iter().skip(1).take(8) {
        if chosen.len() == 3 {
            break;
        }
        let adds = candidate_covered.iter().any(|t| !covered.contains(t)) || wants.met_by(&candidate.text);
        let close = *score >= best_score * 0.75;
        let related = candidate.source == best.source || candidate.is_fact;
        // A second sentence must not bring in another scope's rule ("Standard: $9.95" after
        // the Hawaii price).
        // Nor, when the question is about one category, another category's ("Parts: $19.95"
        // after "Bikes: $129" for a bike); a general question may hear each category's rule.
        let in_scope = scope_fit(candidate, &asked_places, &asked_categories) >= 0.0
            && (asked_categories.is_empty() || !other_category(candidate, &asked_categories));
        let fits = fits_with(&chosen, candidate);
        // "This policy covers…" only ever leads when nothing better exists; it never rides along.
        let about_rules = !crate::question::is_about_the_document(&candidate.text);
        if adds
            && close
            && related
            && fits
            && in_scope
            && about_rules
            && !chosen.iter().any(|c| c.text == candidate.text)
        {
            chosen.push(candidate);
            covered.extend(candidate_covered.iter().copied());
        }
    }
    // "How does it work?" is explained by the sentences that follow the best one in its own
    // passage ("Choose Subscribe & Save…" then "You get 10% off…"), not by others that share
    // a word.
    if crate::question::asks_how(request.message) && !best.is_fact {
        chosen.truncate(1);
        // The same sentence may stand in several retrieved chunks (they overlap); read on in
        // whichever one continues it.
        let mut last: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.source == best.source && c.text == best.text)
            .collect();
        for _ in 0..2 {
            let Some(next) = last.iter().find_map(|at| next_in_passage(&candidates, at)) else {
                break;
            };
            last = vec![next];
            let fits = fits_with(&chosen, next);
            if !fits || crate::question::is_about_the_document(&next.text) {
                break;
            }
            chosen.push(next);
        }
    }
    // A return question hears the window even when a sentence about its details leads
    // ("Ridden bikes: …" already holds it; "If it doesn't fit, we'll help you swap it" does not).
    if returning
        && !chosen.iter().any(|c| is_window(c))
        && let Some((_, window, window_covered)) = scored.iter().find(|(_, c, _)| is_window(c))
        && fits_with(&chosen, window)
    {
        if chosen.len() == 3 {
            chosen.pop();
        }
        chosen.push(window);
        covered.extend(window_covered.iter().copied());
    }
    // The fee a return rule carries is part of it: "Ridden bikes: we accept… fewer than 100
    // miles." is followed by "A $150 reconditioning fee is deducted from the refund."
    if returning {
        static FEE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)\b(fee|deducted|restocking|surcharge)\b").expect("valid"));
        let fees: Vec<&Candidate> = chosen
            .iter()
            .filter_map(|at| next_in_passage(&candidates, at))
            .filter(|next| FEE.is_match(&next.text) && !chosen.iter().any(|c| c.text == next.text))
            .collect();
        for fee in fees {
            if fits_with(&chosen, fee) {
                chosen.push(fee);
            }
        }
    }
    let chosen_terms: Vec<String> = chosen
        .iter()
        .flat_map(|c| c.terms.iter().chain(&c.context_terms).cloned())
        .collect();
    // Read in document order within a passage: facts first, then by rank and position.
    chosen.sort_by_key(|c| (!c.is_fact, c.rank, c.position));
    let mut body = String::new();
    let mut sources = Vec::new();
    let mut named: Vec<&str> = Vec::new();
    for candidate in chosen {
        // Each product is named once, before its first sentence.
        let subject = candidate
            .about
            .as_ref()
            .map_or(candidate.source.as_str(), |(source, _)| source);
        let text = if named.contains(&subject) {
            std::borrow::Cow::Borrowed(candidate.text.as_str())
        } else {
            named.push(subject);
            named_for(candidate, request.product)
        };
        if append(&mut body, &text, MAX_BODY_CHARS.max(best.text.len())) {
            push_unique(&mut sources, &candidate.source);
        }
    }
    // "do you do professional bike fits?", "can you true my wheel?": a service the chosen
    // sentences never name is not one they answer for, however many other words they share.
    if let Some(service) = crate::question::asked_service(request.message) {
        let said = |term: &String| chosen_terms.iter().any(|t| terms_match(t, term));
        if terms(&service).iter().any(|term| !said(term)) {
            tracing::debug!(service, "the asked-for service is not in the answer");
            return None;
        }
    }
    let coverage: f32 = unique(covered.iter().copied())
        .iter()
        .map(|t| weights[*t])
        .sum::<f32>()
        / total_weight.max(f32::EPSILON);
    if coverage < MIN_COVERAGE {
        return None;
    }
    let best_meaning = meaning.get(best.text.as_str()).copied();
    tracing::debug!(coverage, best_meaning, "answer chosen");
    Some((body, sources))
}

/// Adds the cosine similarity between the question and each of the best few sentences, then
/// re-sorts. Passage sentences come with vectors from ingest; the rest (facts the tools
/// phrased, sentences new since the last ingest) are embedded on a blocking thread. On
/// failure the lexical order stands.
async fn rerank_by_meaning<'c>(
    scored: &mut [(f32, &'c Candidate, Vec<&String>)],
    stored: Option<&parley_knowledge::SentenceVectors>,
    embedder: Arc<dyn Embedder>,
    query: &[f32],
) -> HashMap<&'c str, f32> {
    let n = scored.len().min(DENSE_RERANK);
    let cosine = |vector: &[f32]| -> f32 { query.iter().zip(vector).map(|(a, b)| a * b).sum() };
    let mut cosines: Vec<Option<f32>> = scored[..n]
        .iter()
        .map(|(_, c, _)| stored.and_then(|s| s.get(&c.text)).map(cosine))
        .collect();
    let missing: Vec<usize> = (0..n).filter(|&idx| cosines[idx].is_none()).collect();
    if !missing.is_empty() {
        let texts: Vec<String> = missing.iter().map(|&idx| scored[idx].1.text.clone()).collect();
        let vectors = match tokio::task::spawn_blocking(move || embedder.embed(&texts)).await {
            Ok(Ok(vectors)) => vectors,
            _ => return HashMap::new(),
        };
        for (&idx, vector) in missing.iter().zip(&vectors) {
            cosines[idx] = Some(cosine(vector));
        }
    }
    let mut meaning = HashMap::new();
    for ((score, candidate, _), cosine) in scored[..n].iter_mut().zip(cosines) {
        let Some(cosine) = cosine else {
            continue;
        };
        *score += DENSE_WEIGHT * cosine;
        meaning.insert(candidate.text.as_str(), cosine);
    }
    // Sentences beyond the re-ranked few keep their lexical score, which now ranks below.
    for (score, _, _) in scored[n..].iter_mut() {
        *score -= 1.0;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    meaning
}

/// How well a sentence's scope fits the question's: a rule for a place or a product category
/// the customer did not ask about is not the general answer ("how long does shipping take"
/// is not answered from the Alaska section), and one for the place they named is.
fn scope_fit(candidate: &Candidate, places: &[crate::scope::Place], categories: &[String]) -> f32 {
    let mut fit = 0.0;
    let fits = |rule: &[crate::scope::Place]| {
        rule.iter()
            .any(|p| places.iter().any(|q| crate::scope::covers(p, q)))
    };
    if !candidate.heading_places.is_empty() {
        fit += if fits(&candidate.heading_places) {
            0.3
        } else {
            -0.35
        };
    } else if !candidate.places.is_empty() {
        // A place the sentence mentions in passing is a weaker scope than its section's.
        fit += if fits(&candidate.places) { 0.2 } else { -0.15 };
    } else if candidate.home {
        fit += if places.is_empty() { 0.1 } else { -0.15 };
    }
    // A category match is already in the shared words; only a mismatch needs scoring.
    if other_category(candidate, categories) {
        fit -= 0.25;
    }
    fit
}

/// The sentence (or its section heading) names a place the customer asked about.
fn names_asked_place(candidate: &Candidate, asked: &[crate::scope::Place]) -> bool {
    candidate
        .places
        .iter()
        .chain(&candidate.heading_places)
        .any(|p| asked.contains(p))
}

/// A product's sentence says whose it is when the customer did not name that product: "best
/// sunscreen for oily skin?" is answered "Daylight Veil Sheer Fluid SPF 50: A tinted mineral
/// sunscreen…", not with a description of an unnamed product.
fn named_for<'c>(candidate: &'c Candidate, product: Option<&str>) -> std::borrow::Cow<'c, str> {
    // A policy section about a product is named for it like the product's own page.
    if let Some((source, title)) = &candidate.about
        && product != Some(source.as_str())
        && !candidate.text.to_lowercase().contains(&title.to_lowercase())
    {
        return std::borrow::Cow::Owned(format!("{title}: {}", candidate.text));
    }
    let about_other = candidate.source.starts_with("products/") && product != Some(candidate.source.as_str());
    let names_it = candidate
        .text
        .to_lowercase()
        .contains(&candidate.title.to_lowercase());
    if candidate.is_fact || !about_other || candidate.title.is_empty() || names_it {
        return std::borrow::Cow::Borrowed(&candidate.text);
    }
    std::borrow::Cow::Owned(format!("{}: {}", candidate.title, candidate.text))
}

/// "Is the pumpkin mask returnable?", "if the closeout boots don't fit can I send them back?":
/// the product under discussion says itself that it cannot come back. A plain no in its own
/// words; a rule with a condition ("Final sale once opened") is quoted without the no.
fn final_sale_no(product: Option<&str>, candidates: &[Candidate]) -> Option<(String, Vec<String>)> {
    let product = product?;
    let mut own: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !c.is_fact && c.source == product && crate::question::says_not_returnable(&c.text))
        .collect();
    own.sort_by_key(|c| (c.rank, c.position));
    let mut said: Vec<&str> = Vec::new();
    for candidate in own {
        if !said.contains(&candidate.text.as_str()) {
            said.push(&candidate.text);
        }
    }
    let first = *said.first()?;
    // "Final Sale." alone says little; the sentence after it says what that means.
    let rule = match said.get(1) {
        Some(next) if first.len() < 30 => format!("{first} {next}"),
        _ => first.to_owned(),
    };
    let title = candidates
        .iter()
        .find(|c| c.source == product && !c.title.is_empty())
        .map_or("", |c| c.title.as_str());
    let named = if title.is_empty() || rule.to_lowercase().contains(&title.to_lowercase()) {
        rule.clone()
    } else {
        format!("{title}: {rule}")
    };
    let body = if crate::question::is_conditional(&rule) {
        named
    } else {
        format!("No. {named}")
    };
    Some((body, vec![product.to_owned()]))
}

/// The sentence is scoped to product categories, none of them the one asked about.
fn other_category(candidate: &Candidate, asked: &[String]) -> bool {
    !candidate.categories.is_empty() && !candidate.categories.iter().any(|c| asked.contains(c))
}

/// "Do you ship to Mexico?" answered by an exhaustive list that leaves Mexico out ("We ship
/// to the US and Canada only."): a plain no, with the list.
fn exhaustive_no(
    message: &str,
    asked: &[crate::scope::Place],
    asked_categories: &[String],
    candidates: &[Candidate],
) -> Option<(String, Vec<String>)> {
    static DESTINATION_QUESTION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(ship|shipping|deliver|delivery|send|order|buy|mail)\b").expect("valid")
    });
    static ONLY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b(only|exclusively)\b").expect("valid"));
    if asked.is_empty() || !DESTINATION_QUESTION.is_match(message) || !crate::tools::asks_yes_no(message) {
        return None;
    }
    // A list scoped to some products ("Sunscreens … we can only ship them to US addresses")
    // is the whole list for those products only.
    let general = |c: &&Candidate| {
        c.categories.is_empty() || c.categories.iter().any(|cat| asked_categories.contains(cat))
    };
    let Some(list) = candidates
        .iter()
        .filter(|c| !c.is_fact)
        .filter(general)
        .find(|c| {
            ONLY.is_match(&c.text) && {
                let named = crate::scope::places(&c.text);
                named.len() >= 2 || named.iter().any(|p| p == "USA")
            }
        })
    else {
        return listed_countries_no(asked, candidates);
    };
    let named = crate::scope::places(&list.text);
    if asked.iter().any(|p| named.contains(p)) {
        return None;
    }
    let mut sentence = list.text.clone();
    if let Some(first) = sentence.chars().next().filter(|c| c.is_uppercase()) {
        // "We ship…" reads on after "No, "; a name ("Cadence ships…") keeps its capital.
        if sentence
            .split_whitespace()
            .next()
            .is_some_and(|w| matches!(w, "We" | "Our" | "Orders" | "Shipping"))
        {
            sentence.replace_range(..first.len_utf8(), &first.to_lowercase().to_string());
        }
    }
    Some((format!("No, {sentence}"), vec![list.source.clone()]))
}

/// The list spread over a section ("We ship to these countries: - Canada: … - United
/// Kingdom, Ireland…: …") closed by a sentence saying it is the whole list ("We are not able to
/// ship to countries that are not on this list."): a country it leaves out gets a plain no,
/// that sentence, and the countries it names.
fn listed_countries_no(
    asked: &[crate::scope::Place],
    candidates: &[Candidate],
) -> Option<(String, Vec<String>)> {
    static WHOLE_LIST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(not (on|in) (this|the|our) list|not listed|(isn.t|is not|aren.t|are not) listed|no other (countries|destinations)|(only|exclusively) (ship|deliver)|(can|do) not ship anywhere else)\b")
            .expect("valid")
    });
    let asked_country = asked
        .iter()
        .find_map(|p| crate::scope::country_name(p).map(|name| (p, name)))?;
    let closing = candidates
        .iter()
        .find(|c| !c.is_fact && WHOLE_LIST.is_match(&c.text) && !c.text.contains("?"))?;
    // The countries the same passage names.
    let mut listed: Vec<crate::scope::Place> = Vec::new();
    for candidate in candidates
        .iter()
        .filter(|c| c.source == closing.source && c.rank == closing.rank)
    {
        for place in crate::scope::away(&candidate.text) {
            if !listed.contains(&place) {
                listed.push(place);
            }
        }
    }
    let names: Vec<String> = listed
        .iter()
        .filter_map(|p| crate::scope::country_name(p))
        .collect();
    if names.len() < 2 || listed.contains(asked_country.0) {
        return None;
    }
    let (_, asked_name) = asked_country;
    let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
    let more = if names.len() > shown.len() {
        ", and a few more"
    } else {
        ""
    };
    let body = format!(
        "No, we don't ship to {asked_name}. {} Outside the US we ship to {}{more}.",
        closing.text,
        shown.join(", ")
    );
    Some((body, vec![closing.source.clone()]))
}

fn candidates(
    passages: &[Passage],
    facts: &[Fact],
    categories: &[String],
    product: Option<&str>,
    product_titles: &[(String, String)],
    returning: bool,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (position, fact) in facts.iter().enumerate() {
        out.push(Candidate {
            terms: terms(&fact.text),
            context_terms: Vec::new(),
            text: fact.text.clone(),
            source: fact.source.clone(),
            rank: 0,
            position,
            is_fact: true,
            places: Vec::new(),
            heading_places: Vec::new(),
            categories: Vec::new(),
            home: false,
            title: String::new(),
            about: None,
        });
    }
    // The best few passages, and every passage of the product under discussion.
    let read = passages.iter().enumerate().filter(|(rank, p)| {
        *rank < MAX_PASSAGES
                || product.is_some_and(|handle| handle == p.source)
                // The window the pipeline looked up for a return question comes after the rest.
                || (returning && crate::question::policy_states_return_window(&p.source, &p.text))
    });
    for (rank, passage) in read {
        let context_terms = terms(&format!("{} {}", passage.title, passage.heading));
        // Scope comes from policy headings below the document's own title, and from the
        // sentence itself; a product's passages are about that product.
        let policy = !passage.source.starts_with("products/");
        let heading_scope = if policy { passage.heading.as_str() } else { "" };
        let heading_places = crate::scope::away(heading_scope);
        let heading_categories: Vec<String> = unique(terms(&heading_scope.replace('-', "")))
            .into_iter()
            .filter(|t| categories.contains(t))
            .collect();
        let home = crate::scope::names_home(heading_scope);
        let about = policy
            .then(|| section_product(heading_scope, product_titles))
            .flatten();
        for (position, sentence) in parley_knowledge::sentences::passage_sentences(&passage.text)
            .into_iter()
            .enumerate()
        {
            let places = if policy {
                crate::scope::away(&sentence)
            } else {
                Vec::new()
            };
            // A policy sentence that names a category ("Bikes: $129 flat rate") is scoped to
            // it, as one under a category heading is.
            let mut scoped = heading_categories.clone();
            if policy {
                for term in terms(&sentence.replace('-', "")) {
                    if categories.contains(&term) && !scoped.contains(&term) {
                        scoped.push(term);
                    }
                }
            }
            out.push(Candidate {
                terms: terms(&sentence),
                context_terms: context_terms.clone(),
                text: sentence,
                source: passage.source.clone(),
                rank,
                position,
                is_fact: false,
                places,
                heading_places: heading_places.clone(),
                categories: scoped,
                home,
                title: passage.title.clone(),
                about: about.clone(),
            });
        }
    }
    out
}

/// Whether one more sentence keeps the chosen ones within the body's length.
fn fits_with(chosen: &[&Candidate], next: &Candidate) -> bool {
    chosen.iter().map(|c| c.text.len() + 1).sum::<usize>() + next.text.len() <= MAX_BODY_CHARS
}

/// The sentence after `at` in the same retrieved passage.
fn next_in_passage<'c>(candidates: &'c [Candidate], at: &Candidate) -> Option<&'c Candidate> {
    candidates
        .iter()
        .find(|c| c.source == at.source && c.rank == at.rank && c.position == at.position + 1)
}

/// The product whose title is the innermost heading of a policy section, if one is.
fn section_product(heading: &str, product_titles: &[(String, String)]) -> Option<(String, String)> {
    let innermost = heading.rsplit(" > ").next()?.trim();
    if innermost.is_empty() {
        return None;
    }
    product_titles
        .iter()
        .find(|(_, title)| title.eq_ignore_ascii_case(innermost))
        .cloned()
}

/// Inverse document frequency of each query term over the candidate sentences: a term that
/// is in every sentence ("order") says less than one in a few ("canada").
fn term_weights(query_terms: &[String], candidates: &[Candidate]) -> HashMap<String, f32> {
    let n = candidates.len() as f32;
    query_terms
        .iter()
        .map(|term| {
            let df = candidates
                .iter()
                .filter(|c| {
                    c.terms
                        .iter()
                        .chain(&c.context_terms)
                        .any(|t| terms_match(t, term))
                })
                .count() as f32;
            // Unseen terms still count (a little): a question about something the passages
            // never mention is a question they do not answer.
            let weight = if df == 0.0 { 0.6 } else { 1.0 + (n / df).ln() };
            (term.clone(), weight)
        })
        .collect()
}

/// Appends a sentence if the body stays within `limit` characters (the first always goes in).
fn append(body: &mut String, sentence: &str, limit: usize) -> bool {
    let extra = if body.is_empty() { 0 } else { 1 };
    if !body.is_empty() && body.len() + extra + sentence.len() > limit {
        return false;
    }
    if !body.is_empty() {
        body.push(' ');
    }
    body.push_str(sentence);
    true
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_headed_by_a_products_title_is_about_it() {
        let titles = vec![
            (
                "products/aero-shell".to_owned(),
                "Aero Shell MIPS Road Helmet".to_owned(),
            ),
            ("products/sprout".to_owned(), "Sprout Kids Helmet".to_owned()),
        ];
        assert_eq!(
            section_product("Size Guide > Helmets > Sprout Kids Helmet", &titles),
            Some(titles[1].clone())
        );
        assert_eq!(
            section_product("helmets > aero shell mips road helmet", &titles).map(|(s, _)| s),
            Some("products/aero-shell".to_owned())
        );
        // A heading that only mentions a kind of product is no product's.
        assert_eq!(section_product("Size Guide > Helmets", &titles), None);
        assert_eq!(section_product("", &titles), None);
    }
}
