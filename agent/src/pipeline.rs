//! The conversation pipeline: one customer message in, one [`Decision`] out.
//!
//! Stages, in order, each timed and traced: compliance keywords → consent/ownership and
//! language gates → embedding → classifier → retrieval (with follow-up resolution) →
//! escalation policy → tools (orders, products, offers) → turn limit → coverage →
//! generation → guardrails (regenerate once, then escalate). Each stage goes on or stops
//! with the decision's outcome, and `Agent::stages` lists them in one place: the order is
//! the policy. A STOP never reaches anything after the first stage, and a conversation a
//! person owns never reaches the generator.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use parley_knowledge::{KnowledgeBase, MerchantData, MerchantId, Order, SearchHit};
use parley_prompts::Prompts;
use regex::Regex;
use serde::Deserialize;
use serde_json::json;
use tracing::{Instrument, info_span};

use crate::classifier::{Classification, Classifier};
use crate::compliance::{self, ComplianceAction};
use crate::extractive::ExtractiveResponder;
use crate::generate::{Draft, Fact, GenerateError, GenerationRequest, Generator, Passage};
use crate::guardrails::{self, Evidence, GuardrailConfig};
use crate::sms;
use crate::tools::{self, Catalog, OrderLookup};
use crate::types::*;

/// Tunables of the decision policy, loaded from the `[agent]` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Below this classifier confidence, with weak retrieval, a person answers.
    pub min_confidence: f32,
    /// Dense similarity of the best passage below which the knowledge base is judged not to
    /// cover the question (when no tool produced facts either).
    pub min_passage_similarity: f32,
    /// AI answers to one unresolved issue before a person takes over ("a complex issue
    /// reaches a human within two AI responses").
    pub max_ai_turns_per_issue: u32,
    pub max_segments: usize,
    pub retrieval_limit: usize,
    /// Turns of history kept in the state and shown to an LLM.
    pub history_turns: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            min_confidence: 0.35,
            min_passage_similarity: 0.30,
            max_ai_turns_per_issue: 2,
            max_segments: 3,
            retrieval_limit: 5,
            history_turns: 8,
        }
    }
}

impl AgentConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return Err(format!(
                "agent.min_confidence must be in 0..1, got {}",
                self.min_confidence
            ));
        }
        if !(-1.0..=1.0).contains(&self.min_passage_similarity) {
            return Err(format!(
                "agent.min_passage_similarity must be in -1..1, got {}",
                self.min_passage_similarity
            ));
        }
        if self.max_segments == 0 || self.max_segments > 10 {
            return Err(format!(
                "agent.max_segments must be 1..=10, got {}",
                self.max_segments
            ));
        }
        if self.retrieval_limit == 0 || self.retrieval_limit > 50 {
            return Err(format!(
                "agent.retrieval_limit must be 1..=50, got {}",
                self.retrieval_limit
            ));
        }
        if self.max_ai_turns_per_issue == 0 {
            return Err("agent.max_ai_turns_per_issue must be at least 1".into());
        }
        Ok(())
    }
}

/// One inbound message.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub merchant: &'a MerchantId,
    /// The customer's phone (E.164), used for order lookup; `None` when unknown.
    pub customer_phone: Option<&'a str>,
    pub text: &'a str,
}

/// The merchant as compliance texts (HELP, STOP/START confirmations) name it. The service
/// keeps it in its store, so a STOP is honoured even when the merchant's catalog or index
/// cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MerchantContact {
    pub name: String,
    pub support_email: Option<String>,
    pub support_hours: Option<String>,
    /// How often the marketing program texts ("2-4 msgs/month"), for HELP and the sign-up
    /// confirmation; absent: "Msg frequency varies".
    pub message_frequency: Option<String>,
}

impl MerchantContact {
    pub fn of(data: &MerchantData) -> Self {
        Self {
            name: data.config.name.clone(),
            support_email: Some(data.config.support_email.clone()),
            support_hours: Some(data.config.support_hours.clone()),
            message_frequency: None,
        }
    }

    fn context(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "support_email": self.support_email,
            "support_hours": self.support_hours,
            "message_frequency": self.message_frequency,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The merchant is not known to the knowledge base.
    #[error(transparent)]
    Knowledge(#[from] parley_knowledge::KnowledgeError),
    #[error(transparent)]
    Prompt(#[from] parley_prompts::PromptError),
}

/// The reply agent. Cheap to share: everything inside is behind `Arc`.
#[derive(Clone)]
pub struct Agent {
    knowledge: Arc<KnowledgeBase>,
    classifier: Arc<Classifier>,
    generator: Arc<dyn Generator>,
    /// What `generator` is: the policy treats the offline responder differently.
    generator_kind: GeneratorKind,
    /// Always available: drafts suggested replies for humans, and answers when the
    /// configured LLM is down.
    extractive: Arc<ExtractiveResponder>,
    prompts: Arc<Prompts>,
    config: AgentConfig,
    /// Per merchant, the tools' lookups over its data as last ingested (shared by clones).
    catalogs: Arc<Mutex<HashMap<MerchantId, Arc<Catalog>>>>,
    /// Where customers' orders are read; `None`: the directory's orders as ingested.
    orders: Option<Arc<dyn tools::OrderSource>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("generator", &self.generator.name())
            .field("config", &self.config)
            .finish()
    }
}

/// The generators the policy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GeneratorKind {
    /// The offline extractive responder. It quotes only the merchant's (English) knowledge,
    /// it is deterministic (a second attempt would repeat the first), and it also drafts
    /// the suggested replies for people.
    Offline,
    /// The configured generator, an LLM: it answers in the customer's language, can word a
    /// second attempt differently, and falls back to the offline responder when down.
    Llm,
}

/// What a stage hands on: its result, or the [`Stop`] that ends the pipeline there.
type Stage<T> = ControlFlow<Stop, T>;

/// How a decision is reached when the stages end before a checked reply.
enum Stop {
    /// A person takes over.
    Escalate(Escalation),
    /// A `smalltalk` template answers; `kind` is greeting, thanks, feedback or automated.
    Smalltalk {
        intent: Intent,
        confidence: f32,
        kind: &'static str,
    },
    /// A generator's prompt template failed to render.
    Failed(AgentError),
}

impl Stop {
    fn escalate(reason: EscalationReason, send_holding: bool) -> Self {
        Self::Escalate(Escalation {
            reason,
            send_holding,
            findings: Vec::new(),
        })
    }
}

/// A handoff to a person, as a stage asks for it.
struct Escalation {
    reason: EscalationReason,
    /// Whether the customer is sent the holding message.
    send_holding: bool,
    /// What the guardrails found in the drafts they rejected.
    findings: Vec<Finding>,
}

/// What the classify stage read in the message.
struct Classified {
    classification: Classification,
    /// A short message that leans on what came before ("what about black?").
    follow_up: bool,
    /// The topic of the previous turn, which a follow-up carries on (never small talk).
    carried: Option<Intent>,
}

/// A reply the guardrails passed: what the last stage hands on.
struct Drafted {
    intent: Intent,
    text: String,
    sources: Vec<String>,
    /// What the guardrails found in an earlier draft they rejected.
    findings: Vec<Finding>,
    generator: GeneratorKind,
}

/// How a decision ended; [`Agent::finish`] adds what the work carries (risks, retrieved
/// sources, timings, state).
struct Outcome<'a> {
    route: Route,
    intent: Option<Intent>,
    confidence: f32,
    reply: Option<String>,
    sources_used: Vec<String>,
    guardrail_findings: Vec<Finding>,
    handoff: Option<Handoff>,
    /// What wrote the reply: a generator's name, `template`, or `none` for no reply.
    generator: &'a str,
}

/// What the stages found, threaded through to the decision.
struct Work<'a> {
    inbound: Inbound<'a>,
    catalog: Arc<Catalog>,
    /// The merchant's passage-sentence vectors from ingest, for the responder's ranking.
    sentences: Arc<parley_knowledge::SentenceVectors>,
    state: ConversationState,
    timings: StageTimings,
    classification: Option<Classification>,
    hits: Vec<SearchHit>,
    facts: Vec<Fact>,
    resolved_query: String,
    /// Embedding of `resolved_query`.
    query_vector: Option<Vec<f32>>,
    /// The offline responder already drafted this turn and declined or was rejected: a
    /// suggested reply from it would be the same draft again.
    extractive_failed: bool,
    /// `products/<handle>` of the product this message is about, when the tools found one.
    product_source: Option<String>,
    /// The customer named that product, rather than a kind of product it is.
    product_named: bool,
    /// The customer's orders, newest first (`Agent::load_orders`); `None` without a phone.
    orders: Option<Vec<Order>>,
    orders_loaded: bool,
    orders_unreadable: bool,
    started: Instant,
}

/// [`Work::timed`] for a stage that awaits: the body is written in place, not passed as an
/// async closure, because a future borrowing through an `AsyncFnOnce(&mut Work)` bound is not
/// `Send` for every lifetime and could no longer be spawned by the server.
macro_rules! timed_async {
    ($work:ident . $slot:ident, $body:expr) => {{
        let clock = Instant::now();
        let output = $body.await;
        $work.timings.$slot += micros(clock);
        output
    }};
}

/// Picks a stage's field of [`StageTimings`].
type TimingSlot = fn(&mut StageTimings) -> &mut u64;

impl Work<'_> {
    /// Runs a stage and adds the time it took to its timing slot, whether the stage goes on
    /// or stops the pipeline.
    fn timed<T>(&mut self, slot: TimingSlot, stage: impl FnOnce(&mut Self) -> T) -> T {
        let clock = Instant::now();
        let output = stage(self);
        *slot(&mut self.timings) += micros(clock);
        output
    }

    /// What a generator gets to draft this message's reply from.
    fn request<'w>(
        &'w self,
        intent: Intent,
        passages: &'w [Passage],
        product_categories: &'w [String],
        feedback: Option<String>,
    ) -> GenerationRequest<'w> {
        GenerationRequest {
            merchant: &self.catalog.data().config,
            message: self.inbound.text,
            resolved_query: &self.resolved_query,
            intent,
            history: history_before_current(&self.state),
            passages,
            facts: &self.facts,
            feedback,
            query_vector: self.query_vector.as_deref(),
            categories: self.catalog.categories(),
            product: self.product_source.as_deref(),
            product_named: self.product_named,
            product_titles: self.catalog.product_titles(),
            product_categories,
            sentence_vectors: Some(&self.sentences),
        }
    }
}

impl Agent {
    pub fn new(
        knowledge: Arc<KnowledgeBase>,
        classifier: Arc<Classifier>,
        generator: Option<Arc<dyn Generator>>,
        prompts: Arc<Prompts>,
        config: AgentConfig,
    ) -> Self {
        // Passage sentences recur across questions: cache their vectors (about 1.5 KB each).
        let sentence_embedder = Arc::new(parley_knowledge::CachingEmbedder::new(
            crate::extractive::SharedEmbedder(knowledge.embedder().clone()),
            20_000,
        ));
        let extractive = Arc::new(ExtractiveResponder::new(prompts.clone()).with_embedder(sentence_embedder));
        let (generator, generator_kind) = match generator {
            Some(generator) => (generator, GeneratorKind::Llm),
            None => (extractive.clone() as Arc<dyn Generator>, GeneratorKind::Offline),
        };
        Self {
            knowledge,
            classifier,
            generator,
            generator_kind,
            extractive,
            prompts,
            config,
            catalogs: Arc::default(),
            orders: None,
        }
    }

    /// Reads customers' orders from `source` (the service's store, which Shopify's webhooks
    /// keep current) instead of the directory's `orders.json` as ingested.
    pub fn with_order_source(mut self, source: Arc<dyn tools::OrderSource>) -> Self {
        self.orders = Some(source);
        self
    }

    /// The customer's orders, newest first, into `work` (once per message): `None` without
    /// a phone. A source that cannot be read leaves them unknown, and order questions go to
    /// a person.
    async fn load_orders(&self, work: &mut Work<'_>) {
        if work.orders_loaded {
            return;
        }
        work.orders_loaded = true;
        let Some(phone) = work.inbound.customer_phone.and_then(tools::order_phone) else {
            return;
        };
        work.orders = match &self.orders {
            None => Some(work.catalog.orders_of(&phone)),
            Some(source) => match source.orders_of(work.inbound.merchant, &phone).await {
                Ok(orders) => Some(orders),
                Err(err) => {
                    tracing::error!(error = %err, "the customer's orders could not be read");
                    work.orders_unreadable = true;
                    None
                }
            },
        };
    }

    /// The merchant's data with its lookups, rebuilt only when the knowledge base holds a
    /// newer ingest than the cached one.
    fn catalog(&self, merchant: &MerchantId) -> Result<Arc<Catalog>, AgentError> {
        let data = self.knowledge.merchant(merchant)?;
        let lock = || self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(catalog) = lock().get(merchant).filter(|c| Arc::ptr_eq(c.data(), &data)) {
            return Ok(catalog.clone());
        }
        // Built outside the lock (it chunks every product): other merchants' messages do not
        // wait for it. Two racing builds of the same data are equal; the last one is kept.
        let catalog = Arc::new(Catalog::new(data, self.knowledge.chunk_config()));
        lock().insert(merchant.clone(), catalog.clone());
        Ok(catalog)
    }

    pub fn knowledge(&self) -> &Arc<KnowledgeBase> {
        &self.knowledge
    }

    pub fn generator_name(&self) -> &str {
        self.generator.name()
    }

    pub fn prompt_version(&self) -> &str {
        self.prompts.version()
    }

    fn generator(&self, kind: GeneratorKind) -> &dyn Generator {
        match kind {
            GeneratorKind::Offline => self.extractive.as_ref(),
            GeneratorKind::Llm => self.generator.as_ref(),
        }
    }

    /// Decides what happens with one customer message, given the conversation so far.
    pub async fn decide(
        &self,
        inbound: Inbound<'_>,
        state: ConversationState,
    ) -> Result<Decision, AgentError> {
        let span = info_span!("decide", merchant = %inbound.merchant, generator = self.generator.name());
        self.decide_inner(inbound, state).instrument(span).await
    }

    async fn decide_inner(
        &self,
        inbound: Inbound<'_>,
        state: ConversationState,
    ) -> Result<Decision, AgentError> {
        let started = Instant::now();
        // 1. Compliance keywords: before anything else, never sent to a model.
        let action = info_span!("compliance")
            .in_scope(|| compliance::detect_with_language(inbound.text, state.opted_out));
        if let Some(action) = action {
            let contact = MerchantContact::of(self.knowledge.merchant(inbound.merchant)?.as_ref());
            return self.compliance_decision(inbound.text, state, action, &contact, started);
        }
        let mut work = self.work(inbound, state, started)?;
        match self.stages(&mut work).await {
            ControlFlow::Continue(drafted) => Ok(self.reply(work, drafted)),
            ControlFlow::Break(Stop::Escalate(escalation)) => self.escalate(work, escalation).await,
            ControlFlow::Break(Stop::Smalltalk {
                intent,
                confidence,
                kind,
            }) => self.smalltalk(work, intent, confidence, kind),
            ControlFlow::Break(Stop::Failed(err)) => Err(err),
        }
    }

    /// The stages after compliance, in order; the first to stop decides. The order is the
    /// policy: a person's conversation never reaches the model, a risk is escalated before
    /// any tool runs, and nothing is sent that the guardrails have not passed.
    async fn stages(&self, work: &mut Work<'_>) -> Stage<Drafted> {
        // 2. Gates: nothing may be texted to an opted-out number; a person owns an escalated
        // conversation until they hand it back. Then the language the generator can answer in.
        self.gates(work)?;
        self.language_gate(work)?;
        // 3. Embed once; the classifier and retrieval share the vector.
        let vector = self.embed(work).await?;
        // 4. Classify, carrying the topic over for short follow-ups.
        let classified = self.classify(work, &vector);
        // 5. Retrieve; a follow-up searches with what the conversation is about (topic,
        // places, product: `carried_query`), so "what about in black?" finds the product
        // discussed.
        self.retrieve(work, &classified, vector).await?;
        // 6. Escalation policy on what the message is (a complaint about the customer's own
        // order that the order data answers is an order question: read their orders first).
        if classified.classification.intent == Intent::Complaint && asks_about_own_order(work.inbound.text) {
            self.load_orders(work).await;
        }
        let intent = self.escalation_policy(work, &classified)?;
        // Orders are read only for order questions: most messages never touch them.
        if is_order_question(intent, work.inbound.text) {
            self.load_orders(work).await;
        }
        // 7. Tools: orders, products, offers.
        self.tools(work, intent, classified.follow_up)?;
        // 8. Turn limit: a complex issue reaches a person within N AI answers.
        self.turn_limit(work, intent)?;
        // 9. Does the knowledge cover the question at all?
        self.coverage(work, classified.classification.confidence)?;
        // 10. Generate and check; one regeneration with the findings as feedback.
        self.generate_checked(work, intent).await
    }

    /// The work on a message past the compliance stage, its turn added to the history.
    fn work<'a>(
        &self,
        inbound: Inbound<'a>,
        state: ConversationState,
        started: Instant,
    ) -> Result<Work<'a>, AgentError> {
        let catalog = self.catalog(inbound.merchant)?;
        let mut work = Work {
            inbound,
            catalog,
            sentences: self.knowledge.sentence_vectors(inbound.merchant),
            state,
            timings: StageTimings::default(),
            classification: None,
            hits: Vec::new(),
            facts: Vec::new(),
            resolved_query: inbound.text.to_owned(),
            query_vector: None,
            extractive_failed: false,
            product_source: None,
            product_named: false,
            orders: None,
            orders_loaded: false,
            orders_unreadable: false,
            started,
        };
        // Counted from the start of the decision: loading the merchant's data is part of it.
        work.timings.compliance_us = micros(started);
        push_turn(
            &mut work.state,
            Role::Customer,
            inbound.text,
            self.config.history_turns,
        );
        Ok(work)
    }

    fn gates(&self, work: &Work<'_>) -> Stage<()> {
        if work.state.opted_out {
            return ControlFlow::Break(Stop::escalate(EscalationReason::OptedOut, false));
        }
        if work.state.escalated {
            return ControlFlow::Break(Stop::escalate(EscalationReason::AlreadyEscalated, false));
        }
        ControlFlow::Continue(())
    }

    /// The offline responder can only quote the merchant's (English) knowledge: a Spanish
    /// question goes to a person, with the holding message in Spanish. An LLM answers in
    /// the customer's language (system prompt rule 7).
    fn language_gate(&self, work: &Work<'_>) -> Stage<()> {
        let spanish =
            crate::language::detect(work.inbound.text).template == crate::language::Language::Spanish;
        if spanish && self.generator_kind == GeneratorKind::Offline {
            return ControlFlow::Break(Stop::escalate(EscalationReason::UnsupportedLanguage, true));
        }
        ControlFlow::Continue(())
    }

    async fn embed(&self, work: &mut Work<'_>) -> Stage<Vec<f32>> {
        let embedded = timed_async!(work.embed_us, async {
            self.knowledge
                .embed_query(work.inbound.text)
                .instrument(info_span!("embed"))
                .await
        });
        match embedded {
            Ok(vector) => ControlFlow::Continue(vector),
            Err(err) => {
                tracing::error!(error = %err, "embedding failed; escalating");
                // Embedding time is reported for a vector only: without one it stays 0, as
                // for a message that never reached the model.
                work.timings.embed_us = 0;
                ControlFlow::Break(Stop::escalate(EscalationReason::KnowledgeUnavailable, true))
            }
        }
    }

    fn classify(&self, work: &mut Work<'_>, vector: &[f32]) -> Classified {
        let classified = work.timed(
            |t| &mut t.classify_us,
            |work| {
                // Rules read the message with product names masked: words inside a name ("Melt
                // Away Cleansing Balm", "Fire Starter Kit") are not what the customer reports.
                let rule_text = work.catalog.mask_titles(work.inbound.text);
                let mut classification =
                    info_span!("classify").in_scope(|| self.classifier.classify(&rule_text, vector));
                let follow_up = is_follow_up(work.inbound.text);
                let carried = work.state.last_intent.filter(|previous| {
                    !matches!(previous, Intent::GreetingSmalltalk | Intent::FeedbackPositive)
                });
                if let Some(previous) = carried.filter(|_| {
                    follow_up && classification.confidence < 0.6 && classification.risks.is_empty()
                }) {
                    classification.intent = previous;
                }
                Classified {
                    classification,
                    follow_up,
                    carried,
                }
            },
        );
        work.classification = Some(classified.classification.clone());
        classified
    }

    async fn retrieve(&self, work: &mut Work<'_>, classified: &Classified, vector: Vec<f32>) -> Stage<()> {
        let retrieval = timed_async!(work.retrieve_us, async {
            let text = work.inbound.text;
            let (query, query_vector) =
                match previous_customer_text(&work.state).filter(|_| classified.follow_up) {
                    Some(previous) => {
                        let resolved = carried_query(
                            text,
                            &previous,
                            &earlier_place(&work.state, text),
                            classified.carried,
                            &work.catalog,
                            work.state.last_product.as_ref(),
                        );
                        let resolved_vector = self.knowledge.embed_query(&resolved).await?;
                        (resolved, resolved_vector)
                    }
                    None => (text.to_owned(), vector),
                };
            work.resolved_query = query;
            work.query_vector = Some(query_vector.clone());
            // The lexical side also searches for the names of countries given by
            // abbreviation ("UK" → "United Kingdom") and for "international"; the
            // words a sentence must cover stay the customer's.
            self.knowledge
                .search_with_vector(
                    work.inbound.merchant,
                    &crate::scope::with_country_names(&work.resolved_query),
                    query_vector,
                    self.config.retrieval_limit,
                )
                .instrument(info_span!("retrieve"))
                .await
        });
        match retrieval {
            Ok(mut hits) => {
                // "If it doesn't fit can I send it back?" shares its words with the fit guide and
                // the return-shipping rules, not with the window that answers it: when no hit
                // holds a return window, the policy passage that does joins them, after them.
                if crate::question::asks_to_return(work.inbound.text) && !hits.iter().any(holds_return_window)
                {
                    let window = timed_async!(
                        work.retrieve_us,
                        self.knowledge
                            .search(
                                work.inbound.merchant,
                                RETURN_WINDOW_QUERY,
                                self.config.retrieval_limit,
                            )
                            .instrument(info_span!("retrieve_window"))
                    );
                    if let Some(hit) = window.ok().into_iter().flatten().find(holds_return_window) {
                        hits.push(hit);
                    }
                }
                work.hits = hits;
                ControlFlow::Continue(())
            }
            Err(err) => {
                // Answering without knowledge would be guessing.
                tracing::error!(error = %err, "retrieval failed; escalating");
                ControlFlow::Break(Stop::escalate(EscalationReason::KnowledgeUnavailable, true))
            }
        }
    }

    /// Risks, requests for a person, complaints, abuse and small talk are decided on what
    /// the message is, before any tool runs; the intent the later stages see comes out.
    fn escalation_policy(&self, work: &mut Work<'_>, classified: &Classified) -> Stage<Intent> {
        let classification = &classified.classification;
        let text = work.inbound.text;
        if !classification.risks.is_empty() {
            let reason = EscalationReason::Risk(classification.risks.clone());
            return ControlFlow::Break(Stop::escalate(reason, true));
        }
        // Routing intents act only when the classifier is sure, or a rule saw the signal:
        // "am I texting with a bot?" is a question, not a request for a person.
        let sure = |threshold: f32| classification.rule_matched || classification.confidence >= threshold;
        let intent = classification.intent;
        // "why was my order cancelled?", "did you get the helmet I sent back?": a question about
        // the customer's own order that the order data answers is an order question, not a
        // complaint to hand off — unless the words are angry.
        let intent = if intent == Intent::Complaint
            && asks_about_own_order(text)
            && matches!(
                tools::lookup_orders(work.orders.as_deref(), text, &work.state.last_orders),
                OrderLookup::Found(_)
            ) {
            Intent::OrderStatus
        } else {
            intent
        };
        // "WHATS THE WARRANTY ON YOUR BACKPACKS", "how do I stop my serum going brown?": a
        // question for information with nothing gone wrong in it reads like a complaint to
        // the embedding (the topic is warranties and problems) but is a question to answer.
        let intent =
            if intent == Intent::Complaint && !classification.rule_matched && asks_for_information(text) {
                Intent::Other
            } else {
                intent
            };
        // Whoever asks whether they are texting a machine gets a truthful yes, whatever the
        // store's policies say (bot-disclosure laws such as California's SB 1001 require it).
        if asks_if_automated(text) {
            return ControlFlow::Break(Stop::Smalltalk {
                intent: Intent::GreetingSmalltalk,
                confidence: classification.confidence,
                kind: "automated",
            });
        }
        let intent = match intent {
            Intent::HumanRequest if sure(0.7) => {
                return ControlFlow::Break(Stop::escalate(EscalationReason::HumanRequested, true));
            }
            Intent::Complaint if sure(0.6) => {
                return ControlFlow::Break(Stop::escalate(EscalationReason::Complaint, true));
            }
            Intent::AbuseSpam if sure(0.6) => {
                return ControlFlow::Break(Stop::escalate(EscalationReason::Abuse, false));
            }
            // "is da tinted spf good 4 dark skin 🙏🏾" is warm, and a question to answer.
            Intent::GreetingSmalltalk | Intent::FeedbackPositive if sure(0.5) && !asks_question(text) => {
                return ControlFlow::Break(Stop::Smalltalk {
                    intent,
                    confidence: classification.confidence,
                    kind: smalltalk_kind(text, intent),
                });
            }
            Intent::HumanRequest
            | Intent::Complaint
            | Intent::AbuseSpam
            | Intent::GreetingSmalltalk
            | Intent::FeedbackPositive => Intent::Other,
            other => other,
        };
        if let Some(c) = work.classification.as_mut() {
            c.intent = intent;
        }
        ControlFlow::Continue(intent)
    }

    fn tools(&self, work: &mut Work<'_>, intent: Intent, follow_up: bool) -> Stage<()> {
        // Timed as a whole: an order lookup that ends in an escalation ran all the same.
        work.timed(
            |t| &mut t.tools_us,
            |work| {
                let text = work.inbound.text;
                if is_order_question(intent, text) {
                    return look_up_orders(work);
                }
                // "price?" and "is it on sale?" sound like discount talk to the embedding but
                // are about the product; only a question about codes gets codes.
                let asks_codes = tools::mentions_codes(text);
                look_up_product(work, follow_up);
                if asks_codes {
                    work.facts.extend(tools::offer_facts(work.catalog.data(), text));
                }
                ControlFlow::Continue(())
            },
        )
    }

    fn turn_limit(&self, work: &mut Work<'_>, intent: Intent) -> Stage<()> {
        let complex = matches!(intent, Intent::OrderStatus | Intent::CheckoutHelp | Intent::Other);
        if complex && work.state.last_intent == Some(intent) {
            if work.state.ai_turns_on_issue >= self.config.max_ai_turns_per_issue {
                return ControlFlow::Break(Stop::escalate(EscalationReason::TurnLimit, true));
            }
        } else if work.state.last_intent != Some(intent) {
            work.state.ai_turns_on_issue = 0;
        }
        ControlFlow::Continue(())
    }

    /// Without facts from a tool, a message the classifier is unsure of and no passage is
    /// close to goes to a person rather than to a generator.
    fn coverage(&self, work: &Work<'_>, confidence: f32) -> Stage<()> {
        let best_similarity = work
            .hits
            .iter()
            .filter_map(|h| h.dense_score)
            .fold(f32::MIN, f32::max);
        if work.facts.is_empty()
            && best_similarity < self.config.min_passage_similarity
            && confidence < self.config.min_confidence
        {
            return ControlFlow::Break(Stop::escalate(EscalationReason::LowConfidence, true));
        }
        ControlFlow::Continue(())
    }

    async fn generate_checked(&self, work: &mut Work<'_>, intent: Intent) -> Stage<Drafted> {
        let passages = passages(work);
        let product_categories = work.catalog.category_terms(work.product_source.as_deref());
        let evidence = self.evidence(work, &passages);
        let mut feedback: Option<String> = None;
        let mut all_findings: Vec<Finding> = Vec::new();
        let mut kind = self.generator_kind;
        for attempt in 0..2 {
            let generator = self.generator(kind);
            let draft = timed_async!(work.generate_us, async {
                let request = work.request(intent, &passages, &product_categories, feedback.clone());
                generator
                    .generate(&request)
                    .instrument(info_span!("generate", attempt))
                    .await
            });
            let (text, sources) = match draft {
                Ok(Draft::Text { text, sources }) => (text, sources),
                Ok(Draft::Escalate) => {
                    work.extractive_failed |= kind == GeneratorKind::Offline;
                    return ControlFlow::Break(Stop::escalate(EscalationReason::LowConfidence, true));
                }
                Err(GenerateError::Unavailable(reason)) => {
                    tracing::warn!(%reason, generator = generator.name(), "generator unavailable");
                    let spanish = crate::language::detect(work.inbound.text).template
                        == crate::language::Language::Spanish;
                    if kind == GeneratorKind::Llm && !spanish {
                        // The customer still gets a grounded answer, or a person.
                        kind = GeneratorKind::Offline;
                        continue;
                    }
                    return ControlFlow::Break(Stop::escalate(EscalationReason::GeneratorUnavailable, true));
                }
                Err(GenerateError::Prompt(err)) => return ControlFlow::Break(Stop::Failed(err.into())),
            };
            let (text, findings) = work.timed(
                |t| &mut t.guardrails_us,
                |work| {
                    let text = sms::fit_segments(&sms::to_gsm_friendly(&text), self.config.max_segments);
                    let findings = info_span!("guardrails").in_scope(|| {
                        guardrails::check(
                            &text,
                            &evidence,
                            work.inbound.text,
                            &GuardrailConfig {
                                max_segments: self.config.max_segments,
                            },
                        )
                    });
                    (text, findings)
                },
            );
            if findings.is_empty() {
                return ControlFlow::Continue(Drafted {
                    intent,
                    text,
                    sources,
                    findings: all_findings,
                    generator: kind,
                });
            }
            tracing::debug!(
                attempt,
                n_findings = findings.len(),
                "draft rejected by guardrails"
            );
            feedback = Some(
                findings
                    .iter()
                    .map(|f| format!("{:?} \"{}\"", f.kind, f.text))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            all_findings.extend(findings);
            if kind == GeneratorKind::Offline {
                work.extractive_failed = true;
                // The extractive responder is deterministic: a second try would repeat itself.
                break;
            }
        }
        ControlFlow::Break(Stop::Escalate(Escalation {
            reason: EscalationReason::GuardrailsFailed,
            send_holding: true,
            findings: all_findings,
        }))
    }

    fn evidence(&self, work: &Work<'_>, passages: &[Passage]) -> Evidence {
        let config = &work.catalog.data().config;
        let mut texts: Vec<String> = passages.iter().map(|p| p.text.clone()).collect();
        texts.extend(work.facts.iter().map(|f| f.text.clone()));
        texts.extend(config.offers.iter().map(|o| {
            format!(
                "{} {} {}",
                o.code,
                o.description,
                o.conditions.as_deref().unwrap_or("")
            )
        }));
        texts.push(format!("{} {}", config.support_email, config.support_hours));
        let system_prompt = crate::generate::system_prompt(&self.prompts, config).ok();
        Evidence {
            texts,
            offer_codes: config.offers.iter().map(|o| o.code.clone()).collect(),
            merchant_contacts: vec![config.support_email.clone()],
            system_prompt,
        }
    }

    /// The compliance stage alone, for a caller that must honour STOP/START/HELP whatever
    /// else is broken: it needs only the customer's words, the state and the merchant's
    /// contact (no catalog, index, model or classifier). `None` when the text is not a
    /// compliance keyword; then `decide` takes it from there.
    pub fn decide_compliance(
        &self,
        text: &str,
        state: ConversationState,
        merchant: &MerchantContact,
    ) -> Result<Option<Decision>, AgentError> {
        let started = Instant::now();
        match compliance::detect_with_language(text, state.opted_out) {
            Some(action) => self
                .compliance_decision(text, state, action, merchant, started)
                .map(Some),
            None => Ok(None),
        }
    }

    fn compliance_decision(
        &self,
        text: &str,
        mut state: ConversationState,
        detection: compliance::Detection,
        merchant: &MerchantContact,
        started: Instant,
    ) -> Result<Decision, AgentError> {
        let action = detection.action;
        let compliance_us = micros(started);
        // One confirmation per opt-out: a number already opted out that says STOP again is
        // still an opt-out (the caller records it) but gets no second text.
        let already_opted_out = state.opted_out;
        let (route, template) = match action {
            ComplianceAction::OptOut => {
                state.opted_out = true;
                (Route::OptOut, (!already_opted_out).then_some("opt_out"))
            }
            ComplianceAction::OptIn => {
                state.opted_out = false;
                (Route::OptIn, Some("opt_in"))
            }
            ComplianceAction::Join => {
                state.opted_out = false;
                (Route::Join, Some("opt_in"))
            }
            ComplianceAction::Help => (Route::Help, Some("help")),
        };
        let reply = template
            .map(|template| {
                self.prompts.render(
                    template,
                    json!({
                        "merchant": merchant.context(),
                        "lang": detection.language.code(),
                        "marketing": route == Route::Join,
                    }),
                )
            })
            .transpose()?;
        push_turn(&mut state, Role::Customer, text, self.config.history_turns);
        if let Some(reply) = &reply {
            push_turn(&mut state, Role::Agent, reply, self.config.history_turns);
        }
        Ok(Decision {
            route,
            intent: None,
            confidence: 1.0,
            risks: Vec::new(),
            reply,
            sources_used: Vec::new(),
            retrieved: Vec::new(),
            guardrail_findings: Vec::new(),
            handoff: None,
            generator: "template".to_owned(),
            prompt_version: self.prompts.version().to_owned(),
            timings: StageTimings {
                compliance_us,
                total_us: micros(started),
                ..StageTimings::default()
            },
            state,
        })
    }

    /// A `smalltalk` template reply of the given kind (greeting, thanks, feedback, automated).
    fn smalltalk(
        &self,
        mut work: Work<'_>,
        intent: Intent,
        confidence: f32,
        kind: &str,
    ) -> Result<Decision, AgentError> {
        let reply = self.prompts.render(
            "smalltalk",
            json!({ "merchant": merchant_context(work.catalog.data()), "kind": kind }),
        )?;
        push_turn(&mut work.state, Role::Agent, &reply, self.config.history_turns);
        work.state.last_intent = Some(intent);
        Ok(self.finish(
            work,
            Outcome {
                route: Route::Reply,
                intent: Some(intent),
                confidence,
                reply: Some(reply),
                sources_used: Vec::new(),
                guardrail_findings: Vec::new(),
                handoff: None,
                generator: "template",
            },
        ))
    }

    fn reply(&self, mut work: Work<'_>, drafted: Drafted) -> Decision {
        let Drafted {
            intent,
            text,
            sources,
            findings,
            generator,
        } = drafted;
        push_turn(&mut work.state, Role::Agent, &text, self.config.history_turns);
        work.state.ai_turns += 1;
        if work.state.last_intent == Some(intent) {
            work.state.ai_turns_on_issue += 1;
        } else {
            work.state.ai_turns_on_issue = 1;
        }
        work.state.last_intent = Some(intent);
        let confidence = work.classification.as_ref().map_or(0.0, |c| c.confidence);
        self.finish(
            work,
            Outcome {
                route: Route::Reply,
                intent: Some(intent),
                confidence,
                reply: Some(text),
                sources_used: sources,
                guardrail_findings: findings,
                handoff: None,
                generator: self.generator(generator).name(),
            },
        )
    }

    /// Hands the conversation to a person: a holding message (unless the customer must not
    /// be texted, or is abusive), a summary and a suggested reply for the human.
    async fn escalate(&self, mut work: Work<'_>, escalation: Escalation) -> Result<Decision, AgentError> {
        let Escalation {
            reason,
            send_holding,
            findings,
        } = escalation;
        let already = matches!(
            reason,
            EscalationReason::AlreadyEscalated | EscalationReason::OptedOut
        );
        let config = &work.catalog.data().config;
        // The holding message goes out in the customer's language; the person taking over is
        // told which language that is whenever it is not English.
        let language = crate::language::detect(work.inbound.text);
        let reply = if send_holding && !work.state.opted_out {
            Some(self.prompts.render(
                "holding",
                json!({
                    "merchant": merchant_context(work.catalog.data()),
                    "support_hours": config.support_hours,
                    "lang": language.template.code(),
                }),
            )?)
        } else {
            None
        };
        let intent = work.classification.as_ref().map(|c| c.intent);
        let wants_suggestion = !already && !matches!(reason, EscalationReason::Abuse);
        let suggested = if wants_suggestion {
            self.suggest(&work).await
        } else {
            None
        };
        self.load_orders(&mut work).await;
        let own_orders: Vec<String> = match tools::lookup_orders(work.orders.as_deref(), "", &[]) {
            OrderLookup::Found(orders) => orders
                .iter()
                .flat_map(|o| tools::order_facts(o, ""))
                .map(|f| f.text)
                .collect(),
            _ => Vec::new(),
        };
        let summary = self.prompts.render(
            "handoff_summary",
            json!({
                "reason": reason.to_string(),
                "intent": intent.map_or("unknown".to_owned(), |i| i.to_string()),
                "risks": work.classification.as_ref().map(|c| c.risks.iter().map(|r| r.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
                "message": work.inbound.text,
                "orders": own_orders,
                "sources": crate::text::unique(work.hits.iter().map(|h| h.chunk.source.clone())).into_iter().take(3).collect::<Vec<_>>(),
                "ai_turns": work.state.ai_turns,
                "language": language_note(language),
            }),
        )?;
        if let Some(reply) = &reply {
            push_turn(&mut work.state, Role::Agent, reply, self.config.history_turns);
        }
        work.state.escalated = !matches!(reason, EscalationReason::OptedOut) || work.state.escalated;
        let confidence = work.classification.as_ref().map_or(0.0, |c| c.confidence);
        let handoff = Handoff {
            reason,
            summary,
            suggested_reply: suggested,
        };
        let generator = if reply.is_some() { "template" } else { "none" };
        Ok(self.finish(
            work,
            Outcome {
                route: Route::Escalate,
                intent,
                confidence,
                reply,
                sources_used: Vec::new(),
                guardrail_findings: findings,
                handoff: Some(handoff),
                generator,
            },
        ))
    }

    /// A grounded draft for the human, from the offline responder (fast, never invents).
    async fn suggest(&self, work: &Work<'_>) -> Option<String> {
        let passages = passages(work);
        let product_categories = work.catalog.category_terms(work.product_source.as_deref());
        if work.extractive_failed || (passages.is_empty() && work.facts.is_empty()) {
            return None;
        }
        let intent = work.classification.as_ref().map_or(Intent::Other, |c| c.intent);
        let request = work.request(intent, &passages, &product_categories, None);
        match self.extractive.generate(&request).await {
            Ok(Draft::Text { text, .. }) => {
                let text = sms::to_gsm_friendly(&text);
                let findings = guardrails::check(
                    &text,
                    &self.evidence(work, &passages),
                    work.inbound.text,
                    &GuardrailConfig {
                        max_segments: self.config.max_segments,
                    },
                );
                findings.is_empty().then_some(text)
            }
            _ => None,
        }
    }

    fn finish(&self, mut work: Work<'_>, outcome: Outcome<'_>) -> Decision {
        work.timings.total_us = micros(work.started);
        let risks = work
            .classification
            .as_ref()
            .map(|c| c.risks.clone())
            .unwrap_or_default();
        let retrieved = work
            .hits
            .iter()
            .map(|hit| RetrievedSource {
                source: hit.chunk.source.clone(),
                score: hit.score,
                similarity: hit.dense_score,
            })
            .collect();
        Decision {
            route: outcome.route,
            intent: outcome.intent,
            confidence: outcome.confidence,
            risks,
            reply: outcome.reply,
            sources_used: outcome.sources_used,
            retrieved,
            guardrail_findings: outcome.guardrail_findings,
            handoff: outcome.handoff,
            generator: outcome.generator.to_owned(),
            prompt_version: self.prompts.version().to_owned(),
            timings: work.timings,
            state: work.state,
        }
    }
}

/// Whether the tools answer this message from the customer's orders.
fn is_order_question(intent: Intent, text: &str) -> bool {
    intent == Intent::OrderStatus || !tools::mentioned_order_numbers(text).is_empty()
}

/// The tools for an order question: the customer's orders as facts, or a person when the
/// order named is not theirs (or not found).
fn look_up_orders(work: &mut Work<'_>) -> Stage<()> {
    if work.orders_unreadable {
        return ControlFlow::Break(Stop::escalate(EscalationReason::KnowledgeUnavailable, true));
    }
    match tools::lookup_orders(work.orders.as_deref(), work.inbound.text, &work.state.last_orders) {
        OrderLookup::Found(orders) => {
            work.state.last_orders = orders.iter().map(|o| o.name.clone()).collect();
            for order in &orders {
                work.facts.extend(tools::order_facts(order, work.inbound.text));
            }
        }
        OrderLookup::NotFound { .. } => {
            // Never guess about an order, and never confirm whose it is.
            return ControlFlow::Break(Stop::escalate(EscalationReason::UnknownOrder, true));
        }
        // No phone to look up by (a channel without caller id): the policies may still
        // answer a general question ("tracking says delivered but nothing's here").
        OrderLookup::NoCustomer => {}
    }
    ControlFlow::Continue(())
}

/// The product named (or discussed) is looked up whatever the intent: "what comes in the jet
/// set kit?" reads as shipping to the embedding, and "how much is it?" after it must still
/// know which product "it" is.
fn look_up_product(work: &mut Work<'_>, follow_up: bool) {
    let text = work.inbound.text;
    let handles: Vec<String> = work
        .hits
        .iter()
        .filter_map(|hit| hit.chunk.source.strip_prefix("products/").map(str::to_owned))
        .collect();
    // A message that names no product is still about the one under discussion: "no more of
    // the blue one in stock?", "I'm 6'3, which length?" need not start with "and" to lean on
    // it. One that names another product moves on (find_product decides).
    let previous = work.state.last_product.as_ref();
    let found = tools::find_product(&work.catalog, text, &handles, previous);
    tracing::debug!(product = ?found.as_ref().map(|f| &f.handle), follow_up, "product lookup");
    // A measurement ("I'm 5'10") is answered from the chart that holds it.
    let charts: Vec<(String, String, String)> = work
        .hits
        .iter()
        .filter(|hit| !hit.chunk.source.starts_with("products/"))
        .map(|hit| {
            (
                hit.chunk.source.clone(),
                hit.chunk.heading_path.join(" > "),
                hit.chunk.text.clone(),
            )
        })
        .collect();
    let sized = tools::size_answer(&work.catalog, found.as_ref(), &charts, text);
    let sized_answer = sized.is_some();
    work.facts.extend(sized);
    if sized_answer && let Some(found) = &found {
        work.product_source = Some(format!("products/{}", found.handle));
        work.product_named = found.named;
        work.state.last_product = Some(found.clone());
    }
    if let Some(found) = found.filter(|_| !sized_answer) {
        // A yes/no question gets its yes or no first ("No, the Tempo Carbon doesn't come in
        // green; it comes in …").
        let direct = tools::sale_answer(&work.catalog, &found, text)
            .or_else(|| tools::option_answer(&work.catalog, &found, text));
        let answered = direct.is_some();
        work.facts.extend(direct);
        if !answered && (asks_price_or_stock(text) || !found.options.is_empty()) {
            work.facts.extend(tools::product_facts(&work.catalog, &found));
        }
        work.product_source = Some(format!("products/{}", found.handle));
        work.product_named = found.named;
        work.state.last_product = Some(found);
    } else if !sized_answer {
        // "are any of your bikes on sale?": the catalogue's sale items, of the category
        // asked about.
        work.facts.extend(tools::sale_listing(&work.catalog, text));
    }
}

/// Which `smalltalk` reply answers a warm message: feedback, thanks or a greeting.
fn smalltalk_kind(text: &str, intent: Intent) -> &'static str {
    let lower = text.to_lowercase();
    if intent == Intent::FeedbackPositive {
        "feedback"
    } else if [
        "thank",
        "thx",
        "ty",
        "appreciate",
        "great",
        "awesome",
        "perfect",
        "cool",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        "thanks"
    } else {
        "greeting"
    }
}

/// Resolves the conversation back to the AI after a person handled it.
pub fn hand_back(state: &mut ConversationState) {
    state.escalated = false;
    state.ai_turns_on_issue = 0;
}

/// The language line of a handoff summary: named when it is not English.
fn language_note(language: crate::language::Detected) -> Option<&'static str> {
    match (language.template, language.name) {
        (crate::language::Language::Spanish, _) => Some("Spanish"),
        (_, Some(name)) if name != "English" => Some(name),
        _ => None,
    }
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64
}

/// The merchant as the customer-facing templates (HELP, holding, confirmations) see it; the
/// system prompt has its own view in `generate`.
fn merchant_context(data: &MerchantData) -> serde_json::Value {
    MerchantContact::of(data).context()
}

/// The retrieved passages, with the text of the product under discussion brought in when
/// retrieval left it out: "how heavy is the Loam?" is answered from the Loam's own
/// description, even when a warranty page about its suspension ranked above it. The
/// responder reads every passage of that product, wherever it is in the list.
fn passages(work: &Work<'_>) -> Vec<Passage> {
    let passage = |chunk: &parley_knowledge::Chunk, score: f32, similarity: Option<f32>| Passage {
        source: chunk.source.clone(),
        heading: chunk.heading_path.join(" > "),
        title: chunk.title.clone(),
        text: chunk.text.clone(),
        score,
        similarity,
    };
    let mut out: Vec<Passage> = work
        .hits
        .iter()
        .map(|hit| passage(&hit.chunk, hit.score, hit.dense_score))
        .collect();
    if let Some(product) = work.product_source.as_deref() {
        let missing: Vec<Passage> = work
            .catalog
            .product_chunks(product)
            .iter()
            .filter(|chunk| !work.hits.iter().any(|hit| hit.chunk.id == chunk.id))
            .map(|chunk| passage(chunk, 0.0, None))
            .collect();
        out.extend(missing);
    }
    out
}

fn push_turn(state: &mut ConversationState, role: Role, text: &str, keep: usize) {
    state.turns.push(Turn {
        role,
        text: text.to_owned(),
    });
    if state.turns.len() > keep {
        let excess = state.turns.len() - keep;
        state.turns.drain(..excess);
    }
}

/// History shown to a generator: everything before the current customer turn.
fn history_before_current(state: &ConversationState) -> &[Turn] {
    match state.turns.split_last() {
        Some((last, rest)) if last.role == Role::Customer => rest,
        _ => &state.turns,
    }
}

/// What a return window is asked as, for finding the policy passage that states it.
const RETURN_WINDOW_QUERY: &str = "how many days do I have to start a return or exchange";

/// A policy passage with a sentence saying how long a return may be started.
fn holds_return_window(hit: &parley_knowledge::SearchHit) -> bool {
    crate::question::policy_states_return_window(&hit.chunk.source, &hit.chunk.text)
}

/// How many earlier customer texts a follow-up's place may come from.
const PLACE_MEMORY_TURNS: usize = 3;

/// A follow-up's search text: its own words plus what the conversation is about — the topic
/// of the previous answer (from its intent), the places the conversation named and the
/// product under discussion. Not the whole previous question: that dragged retrieval back to
/// it, so "is it cruelty free?" then "can I use it with retinol?" was answered a turn late.
fn carried_query(
    text: &str,
    previous: &str,
    places: &[String],
    topic: Option<Intent>,
    catalog: &Catalog,
    product: Option<&tools::ProductMatch>,
) -> String {
    // An elliptical follow-up ("is it vegan?", "black?") says too little to search with on
    // its own: it still takes the previous question along.
    let own_terms = crate::text::terms(text)
        .into_iter()
        .filter(|t| {
            !matches!(
                t.as_str(),
                "it" | "they" | "that" | "one" | "what" | "about" | "and"
            )
        })
        .count();
    // "how much is it?", "how long does it take?" ask their own question (a price, a
    // duration): they take only the product, places and topic along.
    let asks_own = !crate::question::Wants::of(text).is_empty() || asks_price_or_stock(text);
    let elliptical = own_terms <= 1 && !asks_own;
    let mut parts = vec![text.to_owned()];
    if elliptical {
        parts.insert(0, previous.to_owned());
    }
    let topic = match topic {
        Some(Intent::Shipping) => Some("shipping delivery"),
        Some(Intent::ReturnsExchanges) => Some("return exchange"),
        Some(Intent::SizingFit) => Some("size fit"),
        Some(Intent::OrderStatus) => Some("order"),
        Some(Intent::DiscountRequest) => Some("discount code"),
        Some(Intent::CheckoutHelp) => Some("checkout payment"),
        Some(Intent::Availability) => Some("in stock"),
        _ => None,
    };
    parts.extend(topic.map(str::to_owned));
    parts.extend(places.iter().cloned());
    // The previous question already names the product when it is taken along.
    if let Some(title) = product
        .and_then(|p| catalog.title(&p.handle))
        .filter(|_| !elliptical)
    {
        parts.push(title.to_owned());
    }
    parts.join(" ")
}

/// The place the conversation is about, for a follow-up that names none: the words naming
/// a place in the latest earlier customer text that has one. "do you ship to canada?", "how
/// long does it take?", "and how much for a helmet?" — the helmet's rate is Canada's.
fn earlier_place(state: &ConversationState, text: &str) -> Vec<String> {
    if !crate::scope::places(text).is_empty() {
        return Vec::new();
    }
    history_before_current(state)
        .iter()
        .rev()
        .filter(|t| t.role == Role::Customer)
        .take(PLACE_MEMORY_TURNS)
        .map(|t| {
            t.text
                .split_whitespace()
                .filter(|word| !crate::scope::places(word).is_empty())
                .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
                .collect::<Vec<_>>()
        })
        .find(|words| !words.is_empty())
        .unwrap_or_default()
}

fn previous_customer_text(state: &ConversationState) -> Option<String> {
    history_before_current(state)
        .iter()
        .rev()
        .find(|t| t.role == Role::Customer)
        .map(|t| t.text.clone())
}

/// Short messages that lean on what came before: "what about brown?", "price?", "and the
/// sleeping bag?", "is that one in stock?".
fn is_follow_up(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    let n_words = lower.split_whitespace().count();
    let starts = [
        "and ",
        "what about",
        "how about",
        "also ",
        "ok and",
        "so ",
        "what if",
        "is that",
        "is it",
        "are they",
        "does it",
        "do they",
        "will it",
        "which ",
    ];
    let pronoun = [
        " it",
        " it?",
        " they",
        " them",
        " that one",
        " those",
        " this one",
        " the shorter",
        " the longer",
        " the long",
        " the short",
    ];
    n_words <= 3
        || (n_words <= 9 && starts.iter().any(|s| lower.starts_with(s)))
        || (n_words <= 6
            && pronoun.iter().any(|p| {
                format!("{lower} ").contains(&format!("{p} ")) || lower.ends_with(p.trim_end_matches('?'))
            }))
}

/// A calm question about an order's state ("why was it cancelled?", "did you get my return?",
/// "it says my order is cancelled??"), not an angry complaint.
fn asks_about_own_order(text: &str) -> bool {
    static STATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(cancel+ed|cancel+ation|refund(ed)?|sent (it )?back|returned|return|shipped|delivered|tracking|arrive[ds]?|pick ?up|received|get (the|my)|got (the|my)|order|package|parcel|delivery)\b")
            .expect("valid")
    });
    static QUESTION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)(\?|^\W*(why|what|where|when|did|has|have|is|was|how come|any)\b|what happened|it says)",
        )
        .expect("valid")
    });
    static ANGRY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(ridiculous|unacceptable|terrible|worst|angry|furious|scam|disgusting|never again|fed up|lawyer|chargeback|bbb|joke|pathetic|wtf|fraud)\b").expect("valid")
    });
    STATE.is_match(text) && QUESTION.is_match(text) && !ANGRY.is_match(text)
}

/// Words a question opens with ("what", "is", "do you", "can").
const QUESTION_OPENERS: &str =
    "what|whats|what's|wat|how|when|where|which|who|is|are|does|do|can|could|will|would|should|any";

/// A question asking for information, with no grievance in it: no "still", "again", "never
/// arrived", "not happy". Complaints are statements of what went wrong ("my boots fell apart",
/// "why is my order late AGAIN"), sometimes phrased as questions, and keep their cue words.
fn asks_for_information(text: &str) -> bool {
    static QUESTION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!(r"(?i)^\W*({QUESTION_OPENERS})\b")).expect("valid"));
    static GRIEVANCE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(still|again|yet|never|nobody|no one|ignored|ignoring|waiting|waited|late|lost|refused|disappoint\w*|unhappy|not happy|upset|angry|annoyed|frustrat\w*|problem|issue|wrong|haven'?t|hasn'?t|didn'?t|wasn'?t|weren'?t|won'?t|can'?t believe|why (is|was|did|does|hasn|haven|isn|are|do)|fell apart|ruined|worse)\b")
            .expect("valid")
    });
    QUESTION.is_match(text) && !GRIEVANCE.is_match(text)
}

/// The message asks something: a question mark after a few words, or an opening question
/// word ("is", "do you", "what").
fn asks_question(text: &str) -> bool {
    static OPENING: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(r"(?i)^\W*({QUESTION_OPENERS}|hw)\s+\w+\s+\w+")).expect("valid")
    });
    OPENING.is_match(text) || (text.contains('?') && text.split_whitespace().count() >= 4)
}

/// "am I texting with a bot?", "is this a real person?", "are you AI?".
fn asks_if_automated(text: &str) -> bool {
    static AUTOMATED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(am i|are you|is this|is that|r u|are u|im|i'm)\s+(texting|talking|chatting|speaking)?\s*(with|to)?\s*(a|an|the)?\s*(bot|robot|ai|machine|automated|computer|real person|real human|human|person|chatbot|auto ?reply)\b")
            .expect("valid")
    });
    static DEMAND: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(need|want|give me|get me|let me|put me|connect|transfer|talk to a|speak to a|not a bot)\b").expect("valid")
    });
    AUTOMATED.is_match(text) && text.contains('?') && !DEMAND.is_match(text)
}

fn asks_price_or_stock(text: &str) -> bool {
    // Whole words, not substrings: "restocking fee" is not a stock question.
    static PRICE_OR_STOCK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(\$|\b(how much|hw much|price|prices|priced|cost|costs|in stock|stock|available|availability|have (the|it|them)|do you have|u have|you have|comes? in|sold out|on sale|sale|sizes|colou?rs|sku|carry|do you (sell|make|offer)|(sell|make) (a|an|any))\b)")
            .expect("valid")
    });
    // "how much does it weigh?" asks for a weight.
    let other_figure = {
        let wants = crate::question::Wants::of(text);
        !wants.is_empty() && !wants.kinds().contains(&crate::question::Kind::Money)
    };
    PRICE_OR_STOCK.is_match(text) && !tools::asks_pricing_policy(text) && !other_figure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_recognised() {
        for text in [
            "what about brown?",
            "price?",
            "and the sleeping bag?",
            "is that one in stock?",
            "black?",
            "moss?",
        ] {
            assert!(is_follow_up(text), "{text}");
        }
        for text in [
            "How much are the Ridgeline 2 boots?",
            "do you ship to Canada and how much is it?",
        ] {
            assert!(!is_follow_up(text), "{text}");
        }
    }

    #[test]
    fn information_questions_and_automation_questions() {
        for text in [
            "WHATS THE WARRANTY ON YOUR BACKPACKS",
            "how do I stop my vitamin c serum from going brown so fast?",
        ] {
            assert!(asks_for_information(text), "{text}");
        }
        for text in [
            "why is my order late again?",
            "my boots fell apart after two hikes",
            "is anyone going to answer me? I've been waiting a week",
        ] {
            assert!(!asks_for_information(text), "{text}");
        }
        for text in [
            "am I texting with a bot?",
            "is this a real person?",
            "are you AI?",
        ] {
            assert!(asks_if_automated(text), "{text}");
        }
        for text in ["I need a human, not a bot", "agent", "are you open today?"] {
            assert!(!asks_if_automated(text), "{text}");
        }
    }

    #[test]
    fn config_validation_names_the_key() {
        let config = AgentConfig {
            max_segments: 0,
            ..AgentConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("agent.max_segments"));
    }
}
