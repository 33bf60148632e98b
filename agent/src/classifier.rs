//! Intent and risk classification that runs offline in well under a millisecond: nearest
//! neighbours over labelled example messages (embedded with the same model as the knowledge
//! base), sharpened by a few rules for signals an embedding blurs (an order number, "agent",
//! "chargeback").
//!
//! Why kNN over examples rather than a trained model: merchants and engineers can fix a
//! misclassification by adding one labelled line to `fixtures/classifier/train.yaml`, and the
//! accuracy on the held-out `test.yaml` is measured by a test.

use std::collections::HashMap;
use std::sync::LazyLock;

use parley_knowledge::Embedder;
use regex::Regex;
use serde::Deserialize;

use crate::types::{Intent, Risk};

/// The labelled examples Parley ships with, compiled in.
const BUILTIN_EXAMPLES: &str = include_str!("../../fixtures/classifier/train.yaml");

/// Neighbours per intent whose similarities are averaged.
const NEIGHBOURS_PER_INTENT: usize = 3;
/// Softmax temperature over per-intent similarity: cosine similarities of short texts sit in
/// a narrow band, so a small temperature is needed to turn their gaps into confidence.
const TEMPERATURE: f32 = 0.05;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledExample {
    pub text: String,
    pub intent: Intent,
    #[serde(default)]
    pub risks: Vec<Risk>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleFile {
    examples: Vec<LabelledExample>,
}

/// Parses an examples file (`examples: [{text, intent, risks?}]`).
pub fn parse_examples(yaml: &str) -> Result<Vec<LabelledExample>, String> {
    serde_yaml::from_str::<ExampleFile>(yaml)
        .map(|file| file.examples)
        .map_err(|err| err.to_string())
}

pub fn builtin_examples() -> Vec<LabelledExample> {
    parse_examples(BUILTIN_EXAMPLES).expect("the built-in classifier examples parse; a test checks")
}

/// The classifier's verdict on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub intent: Intent,
    /// A rule (not only similarity) pointed at `intent`: e.g. "agent" for a human request.
    pub rule_matched: bool,
    /// Probability-like score of `intent`, in 0..1.
    pub confidence: f32,
    pub risks: Vec<Risk>,
    /// Similarity of the nearest labelled example (how familiar the message looks).
    pub nearest_similarity: f32,
}

pub struct Classifier {
    examples: Vec<(LabelledExample, Vec<f32>)>,
    /// Softmax regression over the embeddings: one weight row (plus bias) per intent.
    weights: Vec<Vec<f32>>,
    biases: Vec<f32>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("examples", &self.examples.len())
            .finish()
    }
}

impl Classifier {
    /// Embeds the examples (blocking: call from a blocking thread or at start-up).
    pub fn train(embedder: &dyn Embedder, examples: Vec<LabelledExample>) -> parley_knowledge::Result<Self> {
        let texts: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(64) {
            vectors.extend(embedder.embed(batch)?);
        }
        let examples: Vec<(LabelledExample, Vec<f32>)> = examples.into_iter().zip(vectors).collect();
        let (weights, biases) = train_softmax(&examples);
        Ok(Self {
            examples,
            weights,
            biases,
        })
    }

    pub fn n_examples(&self) -> usize {
        self.examples.len()
    }

    /// Classifies a message given its embedding (the same vector retrieval uses).
    pub fn classify(&self, text: &str, vector: &[f32]) -> Classification {
        let mut similarities: Vec<(f32, &LabelledExample)> = self
            .examples
            .iter()
            .map(|(example, v)| (dot(vector, v), example))
            .collect();
        similarities.sort_by(|a, b| b.0.total_cmp(&a.0));
        let nearest_similarity = similarities.first().map_or(0.0, |(s, _)| *s);

        // Per intent: the mean of its few best neighbours.
        let mut per_intent: HashMap<Intent, Vec<f32>> = HashMap::new();
        for (similarity, example) in &similarities {
            let entry = per_intent.entry(example.intent).or_default();
            if entry.len() < NEIGHBOURS_PER_INTENT {
                entry.push(*similarity);
            }
        }
        // Two views, added: the regression's logits (scaled to the kNN's range) and the mean
        // similarity of each intent's nearest examples. The regression generalises across
        // phrasings; the neighbours keep one-off labelled examples effective.
        let mut scores: Vec<(Intent, f32)> = Intent::ALL
            .iter()
            .enumerate()
            .map(|(idx, intent)| {
                let sims = per_intent.get(intent).map(Vec::as_slice).unwrap_or(&[]);
                let mean = if sims.is_empty() {
                    0.0
                } else {
                    sims.iter().sum::<f32>() / sims.len() as f32
                };
                let logit = dot(&self.weights[idx], vector) + self.biases[idx];
                (*intent, KNN_WEIGHT * mean + TEMPERATURE * logit)
            })
            .collect();
        let boosts = rule_boosts(text);
        for (intent, boost) in &boosts {
            if let Some(score) = scores.iter_mut().find(|(i, _)| i == intent) {
                score.1 += boost;
            }
        }
        let max = scores.iter().map(|(_, s)| *s).fold(f32::MIN, f32::max);
        let total: f32 = scores.iter().map(|(_, s)| ((s - max) / TEMPERATURE).exp()).sum();
        let (intent, best) = scores
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((Intent::Other, 0.0));
        let confidence = ((best - max) / TEMPERATURE).exp() / total;
        let rule_matched = boosts.iter().any(|(i, _)| *i == intent);

        Classification {
            intent,
            rule_matched,
            confidence,
            risks: detect_risks(text, &similarities),
            nearest_similarity,
        }
    }
}

/// Weight of the neighbours' similarity next to the regression (both in similarity units).
const KNN_WEIGHT: f32 = 1.0;
const SOFTMAX_EPOCHS: usize = 300;
const SOFTMAX_LEARNING_RATE: f32 = 8.0;
const SOFTMAX_L2: f32 = 1e-4;

/// Full-batch gradient descent on the softmax cross-entropy: a few hundred passes over a few
/// hundred 384-dimensional examples take well under a second, at start-up only.
fn train_softmax(examples: &[(LabelledExample, Vec<f32>)]) -> (Vec<Vec<f32>>, Vec<f32>) {
    let n_classes = Intent::ALL.len();
    let dim = examples.first().map_or(0, |(_, v)| v.len());
    let mut weights = vec![vec![0.0f32; dim]; n_classes];
    let mut biases = vec![0.0f32; n_classes];
    if examples.is_empty() {
        return (weights, biases);
    }
    let labels: Vec<usize> = examples
        .iter()
        .map(|(e, _)| Intent::ALL.iter().position(|i| *i == e.intent).unwrap_or(0))
        .collect();
    let n = examples.len() as f32;
    let mut probabilities = vec![0.0f32; n_classes];
    for _ in 0..SOFTMAX_EPOCHS {
        let mut weight_grad = vec![vec![0.0f32; dim]; n_classes];
        let mut bias_grad = vec![0.0f32; n_classes];
        for ((_, x), label) in examples.iter().zip(&labels) {
            let mut max = f32::MIN;
            for (class, p) in probabilities.iter_mut().enumerate() {
                *p = dot(&weights[class], x) + biases[class];
                max = max.max(*p);
            }
            let mut total = 0.0;
            for p in probabilities.iter_mut() {
                *p = (*p - max).exp();
                total += *p;
            }
            for (class, p) in probabilities.iter().enumerate() {
                let error = p / total - if class == *label { 1.0 } else { 0.0 };
                bias_grad[class] += error;
                for (g, xi) in weight_grad[class].iter_mut().zip(x) {
                    *g += error * xi;
                }
            }
        }
        for class in 0..n_classes {
            for (w, g) in weights[class].iter_mut().zip(&weight_grad[class]) {
                *w -= SOFTMAX_LEARNING_RATE * (g / n + SOFTMAX_L2 * *w);
            }
            biases[class] -= SOFTMAX_LEARNING_RATE * bias_grad[class] / n;
        }
    }
    (weights, biases)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rules for signals that a handful of words settle, added to the kNN scores (not
/// overriding them, so "agent, where is order #1042" still weighs both).
fn rule_boosts(text: &str) -> Vec<(Intent, f32)> {
    static RULES: LazyLock<Vec<(Intent, Regex, f32)>> = LazyLock::new(|| {
        let rule = |intent, pattern: &str, boost| (intent, Regex::new(pattern).expect("valid rule"), boost);
        vec![
            rule(
                Intent::HumanRequest,
                r"(?i)\b(real (person|human)|a (human|person)|live (agent|person|chat)|(talk|speak|chat) (to|with) (a |an |the |your |some)?(one|body|human|person|manager|agent|rep|representative|supervisor|staff|team)|manager|supervisor|representative)\b|^\W*(agent|human|operator|representative|person)\W*$",
                0.25,
            ),
            rule(
                Intent::OrderStatus,
                r"(?i)(#\s?\d{3,}|\border\s*(number|no\.?)?\s*#?\d{3,}|\btracking\b|\b(ship|shipped|arrive|arrived|deliver|delivered)\b.{0,12}\byet\b|\bdid my\b.{0,40}\b(ship|arrive|get delivered|come)\b|where('?s| is) my (order|package|stuff|\w+ order))",
                0.12,
            ),
            rule(
                Intent::DiscountRequest,
                r"(?i)\b(discount|coupon|promo|code|codes|\d+ ?% off|percent off|deal|sale price|military|student|veteran)\b",
                0.08,
            ),
            rule(
                Intent::AbuseSpam,
                r"(?i)(\bbit\.ly\b|\bclaim (now|your)\b|you'?ve won|congrats|\bfuck|\bshit\b|go to hell|\bidiot|garbage bot|useless bot|stupid bot)",
                0.12,
            ),
            rule(
                Intent::Complaint,
                r"(?i)\b(ridiculous|worst|unacceptable|terrible|awful|furious|fed up|scam|chargeback|lawyer|attorney|sue\b|broke|broken|snapped|defective|damaged|ripped|torn|wrong (item|size|color|colour|product))",
                0.10,
            ),
        ]
    });
    let hypothetical = asks_hypothetically(text);
    RULES
        .iter()
        .filter(|(_, regex, _)| regex.is_match(text))
        // "what happens if it arrives broken?" names damage without complaining of any.
        .filter(|(intent, _, _)| !(hypothetical && *intent == Intent::Complaint))
        .map(|(intent, _, boost)| (*intent, *boost))
        .collect()
}

/// Risks come from rules (precise phrases) or from a close labelled neighbour that carries
/// the risk, so new phrasings of a known risk are still caught.
fn detect_risks(text: &str, neighbours: &[(f32, &LabelledExample)]) -> Vec<Risk> {
    static RULES: LazyLock<Vec<(Risk, Regex)>> = LazyLock::new(|| {
        let rule = |risk, pattern: &str| (risk, Regex::new(pattern).expect("valid rule"));
        vec![
            rule(
                Risk::LegalThreat,
                r"(?i)\b(chargeback|charge ?back|lawyer|attorney|lawsuit|\bsue\b|sue you|suing|legal action|small claims|court|better business bureau|\bbbb\b|attorney general|dispute (the|this|my) (charge|payment)|report you)",
            ),
            rule(
                Risk::SafetyHealth,
                r"(?i)\b(rash|hives|allerg\w*|reaction|swell\w*|swollen|burn(ed|ing|s|t)?|blister\w*|itch\w*|irritat\w*|sting\w*|breathing|hospital|er visit|doctor|dermatologist|pregnan\w*|breastfeed\w*|nursing|medication|prescription|injur\w*|hurt (me|my)|bleed\w*|smok(e|ing|ed)|caught fire|on fire|fire|melt\w*|spark\w*|overheat\w*|super hot|explod\w*|poison\w*|swallow\w*|toxic|ingest\w*|accutane|eczema|rosacea|psoriasis)\b",
            ),
            rule(
                Risk::DamagedItem,
                r"(?i)\b(broken|broke|snapped|cracked|crack|shattered|damaged|dented|leak(ed|ing|s)?|torn|ripped|tear|defect\w*|faulty|stopped working|doesn'?t work|does not work|not working|fell apart|falling apart|missing (piece|part)s?|wrong (item|size|color|colour|product|one|shoe|boot)s?|sent (me )?(the )?wrong|(sent|got|received|shipped|delivered) .{0,40}instead of|(ordered|bought|asked for) .{1,60}\b((you|u|they) sent|sent me|but (i )?(got|received))|expired|moldy|mold|smells (off|bad|weird)|seal was broken)\b",
            ),
            rule(
                Risk::Angry,
                r"(?i)(\b(ridiculous|worst|unacceptable|terrible service|awful|furious|pissed|fed up|sick of|scam|scammers|rip ?off|never (again|ordering)|wtf|useless|joke|pathetic|disgusted|incompetent)\b|!!!|\?\?\?.*!|\bfuck|\bshit\b)",
            ),
        ]
    });
    let hypothetical = asks_hypothetically(text);
    let mut risks: Vec<Risk> = RULES
        .iter()
        .filter(|(_, regex)| regex.is_match(text))
        .map(|(risk, _)| *risk)
        // "what happens if something arrives broken? just asking before I order" asks about
        // the policy; nothing has happened to hand off.
        .filter(|risk| !(hypothetical && *risk == Risk::DamagedItem))
        .collect();
    // A very close labelled neighbour's risks count too.
    for (similarity, example) in neighbours.iter().take(2) {
        if *similarity >= 0.80 {
            for risk in &example.risks {
                if !risks.contains(risk) {
                    risks.push(*risk);
                }
            }
        }
    }
    risks.sort();
    risks
}

/// The damage is supposed, not reported: "what if it arrives broken?", "in case the bottle
/// leaks", "…, just asking before I order". A report of damage that has happened ("it arrived
/// broken, what if I want a refund") names it in the past tense outside the supposition.
fn asks_hypothetically(text: &str) -> bool {
    static SUPPOSITION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(what (happens |do i do |do you do )?if|what if|in case|just (asking|curious|wondering|checking)|before (i|we) (order|buy|purchase)|(if|when) (it|something|anything|one|they|the \w+|an? \w+|my \w+) (arrives?|comes?|shows? up|gets? (here )?|turns? up|is|are)\b)")
            .expect("valid")
    });
    static REPORTED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(arrived|came|showed up|was|were|got here|is already|are already)\s+(\w+\s+)?(broken|cracked|damaged|shattered|leaking|smashed|dented|torn|ripped)\b")
            .expect("valid")
    });
    SUPPOSITION.is_match(text) && !REPORTED.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_examples_parse_and_cover_every_intent() {
        let examples = builtin_examples();
        for intent in Intent::ALL {
            assert!(
                examples.iter().filter(|e| e.intent == intent).count() >= 10,
                "too few examples for {intent}"
            );
        }
    }

    #[test]
    fn risk_rules_catch_the_obvious() {
        let check = |text: &str, expected: &[Risk]| {
            assert_eq!(detect_risks(text, &[]), expected, "{text}");
        };
        check("I'm filing a chargeback", &[Risk::LegalThreat]);
        check(
            "my headlamp started smoking while charging",
            &[Risk::SafetyHealth],
        );
        check("the tent pole arrived snapped in half", &[Risk::DamagedItem]);
        check("you sent men's instead of women's", &[Risk::DamagedItem]);
        check("does the spf 50 protect against sunburn", &[]);
        check("how much is shipping?", &[]);
        check("DO U SHIP TO CANADA???", &[]);
    }

    #[test]
    fn supposed_damage_is_a_policy_question() {
        for text in [
            "what happens if something arrives broken? just asking before I order glass bottles",
            "what if the tent pole is cracked when it gets here?",
            "in case the bottle leaks in the mail, do you replace it?",
        ] {
            assert!(detect_risks(text, &[]).is_empty(), "{text}");
        }
        for text in [
            "my bottle arrived broken, what if I want a refund instead?",
            "the pole came cracked, just checking what to do",
        ] {
            assert_eq!(detect_risks(text, &[]), [Risk::DamagedItem], "{text}");
        }
    }

    #[test]
    fn a_different_item_than_ordered_is_a_wrong_item() {
        for text in [
            "I ordered the Nude lip shield and you sent me Rose",
            "ordered a medium but got a large",
        ] {
            assert!(detect_risks(text, &[]).contains(&Risk::DamagedItem), "{text}");
        }
        assert!(
            detect_risks(
                "I ordered the boots and got them yesterday, how do I clean them?",
                &[]
            )
            .is_empty()
        );
    }

    #[test]
    fn human_request_rule() {
        let boosted = |text: &str| rule_boosts(text).iter().any(|(i, _)| *i == Intent::HumanRequest);
        assert!(boosted("agent"));
        assert!(boosted("can I talk to a real person please"));
        assert!(boosted("I want to speak to a manager right now"));
        assert!(!boosted("what's the agent fee"));
    }
}
