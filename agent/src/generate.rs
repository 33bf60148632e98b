//! Reply generation: the [`Generator`] trait that the pipeline drafts replies through, and the
//! inputs every generator gets (passages, facts from tools, conversation history).
//!
//! Two implementations ship: [`crate::extractive::ExtractiveResponder`] (offline, the default)
//! and [`crate::llm::LlmGenerator`] (any OpenAI-compatible Chat Completions endpoint). Both
//! are checked by the same guardrails afterwards, so neither is trusted.

use async_trait::async_trait;
use parley_knowledge::{MerchantConfig, Offer};
use parley_prompts::{PromptError, Prompts};
use serde::Serialize;

use crate::types::{Intent, Turn};

/// A retrieved passage handed to a generator, with the id it can be cited by.
#[derive(Debug, Clone, Serialize)]
pub struct Passage {
    pub source: String,
    /// The heading path inside the source, joined with " > " (empty for none).
    pub heading: String,
    pub title: String,
    pub text: String,
    /// Fused retrieval score, best first.
    pub score: f32,
    /// Cosine similarity of the passage to the question, when the dense side found it.
    pub similarity: Option<f32>,
}

/// A fact from the store's systems (order data, product catalogue), already phrased as a
/// sentence a customer can read, e.g. "Order #1042: shipped with UPS, tracking 1Z…".
#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    /// Where it came from, e.g. `orders/#1042` or `products/summit-fleece`.
    pub source: String,
    pub text: String,
    /// A direct answer to the question asked ("No, the X doesn't come in green; …"): it
    /// leads the reply, before any passage.
    pub direct: bool,
}

/// Everything a generator may use to draft one reply.
#[derive(Debug, Clone)]
pub struct GenerationRequest<'a> {
    pub merchant: &'a MerchantConfig,
    /// The customer's message, verbatim. Data, never instructions.
    pub message: &'a str,
    /// The message with follow-up context resolved ("what about black?" → with the product).
    pub resolved_query: &'a str,
    pub intent: Intent,
    pub history: &'a [Turn],
    pub passages: &'a [Passage],
    pub facts: &'a [Fact],
    /// Why the previous draft was rejected by the guardrails, on the second attempt.
    pub feedback: Option<String>,
    /// The embedding of `resolved_query`, when the pipeline has it (for ranking sentences).
    pub query_vector: Option<&'a [f32]>,
    /// The store's product categories (stemmed product-type words, "ebik", "helmet"), so a
    /// rule under an "E-bikes" heading is known to be scoped to them.
    pub categories: &'a [String],
    /// The source of the product under discussion (`products/<handle>`), if any: another
    /// product's sentences do not answer for it.
    pub product: Option<&'a str>,
    /// The customer named that product (not only a kind of product it is, "boots"): a rule
    /// of its own ("final sale") is said only then.
    pub product_named: bool,
    /// Every product's source and title: a policy section headed by one is about it.
    pub product_titles: &'a [(String, String)],
    /// That product's categories (its product type's stemmed words): a rule scoped to them
    /// is the rule for it ("Bikes: $129" for the Tempo Alloy, not "Parts: $19.95").
    pub product_categories: &'a [String],
    /// Passage sentences' vectors computed at ingest: the responder ranks by meaning without
    /// embedding them now (a sentence missing from it is embedded when needed).
    pub sentence_vectors: Option<&'a parley_knowledge::SentenceVectors>,
}

/// What a generator produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Draft {
    /// A reply for the guardrails to check.
    Text {
        text: String,
        /// The passage or fact sources the reply was built from (best effort for LLMs).
        sources: Vec<String>,
    },
    /// The generator judged that the evidence does not answer the question.
    Escalate,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The generator could not be reached or kept failing (timeouts, 5xx, bad responses).
    #[error("generator unavailable: {0}")]
    Unavailable(String),
    #[error("prompt: {0}")]
    Prompt(#[from] parley_prompts::PromptError),
}

#[async_trait]
pub trait Generator: Send + Sync {
    /// `extractive`, `llm`, …: recorded in every decision.
    fn name(&self) -> &str;
    async fn generate(&self, request: &GenerationRequest<'_>) -> Result<Draft, GenerateError>;
}

/// The merchant as the prompt templates see it.
#[derive(Debug, Serialize)]
pub(crate) struct MerchantView<'a> {
    pub name: &'a str,
    pub brand_voice: Option<&'a str>,
    pub offers: &'a [Offer],
}

impl<'a> MerchantView<'a> {
    pub fn of(merchant: &'a MerchantConfig) -> Self {
        Self {
            name: &merchant.name,
            brand_voice: merchant.brand_voice.as_deref(),
            offers: &merchant.offers,
        }
    }
}

/// The system prompt for a merchant: what an LLM generator sends, and what the guardrails
/// look for in a draft to catch leakage. One rendering serves both.
pub fn system_prompt(prompts: &Prompts, merchant: &MerchantConfig) -> Result<String, PromptError> {
    #[derive(Serialize)]
    struct SystemContext<'a> {
        merchant: MerchantView<'a>,
    }
    prompts.render(
        "system",
        SystemContext {
            merchant: MerchantView::of(merchant),
        },
    )
}
