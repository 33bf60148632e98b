//! The agent's vocabulary: intents, risks, routes, conversation state and the [`Decision`]
//! that the server and the eval harness both consume.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the customer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    OrderStatus,
    Shipping,
    ReturnsExchanges,
    ProductQuestion,
    SizingFit,
    Availability,
    DiscountRequest,
    CheckoutHelp,
    HumanRequest,
    Complaint,
    FeedbackPositive,
    GreetingSmalltalk,
    AbuseSpam,
    Other,
}

impl Intent {
    pub const ALL: [Intent; 14] = [
        Intent::OrderStatus,
        Intent::Shipping,
        Intent::ReturnsExchanges,
        Intent::ProductQuestion,
        Intent::SizingFit,
        Intent::Availability,
        Intent::DiscountRequest,
        Intent::CheckoutHelp,
        Intent::HumanRequest,
        Intent::Complaint,
        Intent::FeedbackPositive,
        Intent::GreetingSmalltalk,
        Intent::AbuseSpam,
        Intent::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::OrderStatus => "order_status",
            Intent::Shipping => "shipping",
            Intent::ReturnsExchanges => "returns_exchanges",
            Intent::ProductQuestion => "product_question",
            Intent::SizingFit => "sizing_fit",
            Intent::Availability => "availability",
            Intent::DiscountRequest => "discount_request",
            Intent::CheckoutHelp => "checkout_help",
            Intent::HumanRequest => "human_request",
            Intent::Complaint => "complaint",
            Intent::FeedbackPositive => "feedback_positive",
            Intent::GreetingSmalltalk => "greeting_smalltalk",
            Intent::AbuseSpam => "abuse_spam",
            Intent::Other => "other",
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Intent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Intent::ALL
            .into_iter()
            .find(|intent| intent.as_str() == s)
            .ok_or_else(|| format!("unknown intent {s:?}"))
    }
}

/// Something about a message that makes answering it alone unwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Angry,
    LegalThreat,
    SafetyHealth,
    DamagedItem,
}

impl Risk {
    pub const ALL: [Risk; 4] = [
        Risk::Angry,
        Risk::LegalThreat,
        Risk::SafetyHealth,
        Risk::DamagedItem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Angry => "angry",
            Risk::LegalThreat => "legal_threat",
            Risk::SafetyHealth => "safety_health",
            Risk::DamagedItem => "damaged_item",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Risk {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Risk::ALL
            .into_iter()
            .find(|risk| risk.as_str() == s)
            .ok_or_else(|| format!("unknown risk {s:?}"))
    }
}

/// What happens with a customer's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The AI answers.
    Reply,
    /// A human takes over; the customer may get a holding message.
    Escalate,
    OptOut,
    OptIn,
    /// A keyword sign-up for marketing texts; the reply is the program's confirmation.
    Join,
    Help,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Reply => "reply",
            Route::Escalate => "escalate",
            Route::OptOut => "opt_out",
            Route::OptIn => "opt_in",
            Route::Join => "join",
            Route::Help => "help",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Route::Reply,
            Route::Escalate,
            Route::OptOut,
            Route::OptIn,
            Route::Join,
            Route::Help,
        ]
        .into_iter()
        .find(|route| route.as_str() == s)
        .ok_or_else(|| format!("unknown route {s:?}"))
    }
}

/// Why a conversation went to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum EscalationReason {
    HumanRequested,
    Risk(Vec<Risk>),
    Complaint,
    Abuse,
    LowConfidence,
    /// Order questions we cannot answer from data: no order for this phone, or an order
    /// number that belongs to someone else.
    UnknownOrder,
    GuardrailsFailed,
    TurnLimit,
    GeneratorUnavailable,
    KnowledgeUnavailable,
    /// The customer is opted out: nothing may be texted, a person reads the message.
    OptedOut,
    /// The conversation is already with a person; the AI stays silent.
    AlreadyEscalated,
    /// The customer wrote in a language the configured generator cannot answer in (the
    /// offline responder quotes the merchant's English knowledge).
    UnsupportedLanguage,
}

impl fmt::Display for EscalationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EscalationReason::HumanRequested => f.write_str("customer asked for a person"),
            EscalationReason::Risk(risks) => {
                let names: Vec<&str> = risks.iter().map(|r| r.as_str()).collect();
                write!(f, "risk: {}", names.join(", "))
            }
            EscalationReason::Complaint => f.write_str("complaint"),
            EscalationReason::Abuse => f.write_str("abusive or spam message"),
            EscalationReason::LowConfidence => f.write_str("low confidence in an answer"),
            EscalationReason::UnknownOrder => f.write_str("order not found for this customer"),
            EscalationReason::GuardrailsFailed => f.write_str("drafts failed the guardrails twice"),
            EscalationReason::TurnLimit => f.write_str("AI turn limit reached without resolution"),
            EscalationReason::GeneratorUnavailable => f.write_str("reply generator unavailable"),
            EscalationReason::KnowledgeUnavailable => f.write_str("knowledge base unavailable"),
            EscalationReason::OptedOut => f.write_str("customer is opted out"),
            EscalationReason::AlreadyEscalated => f.write_str("conversation is with a person"),
            EscalationReason::UnsupportedLanguage => {
                f.write_str("customer wrote in a language the offline responder cannot answer in")
            }
        }
    }
}

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Agent,
    Human,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// What the agent remembers about one conversation between turns. The server persists it;
/// the eval harness keeps it in memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    pub opted_out: bool,
    /// A person owns the conversation until they resolve it.
    pub escalated: bool,
    /// Recent turns, oldest first (bounded by the pipeline).
    pub turns: Vec<Turn>,
    /// The product (and options) last discussed, for follow-ups like "what about in black?".
    #[serde(default)]
    pub last_product: Option<crate::tools::ProductMatch>,
    /// Order names discussed, for follow-ups like "and when will it arrive?".
    #[serde(default)]
    pub last_orders: Vec<String>,
    /// The intent of the last answered question, for follow-ups.
    pub last_intent: Option<Intent>,
    /// AI answers since the conversation was last resolved or handed back.
    pub ai_turns: u32,
    /// AI answers to a complex (non-informational) issue without a resolution.
    pub ai_turns_on_issue: u32,
}

impl ConversationState {
    /// A message the store sent first (a cart reminder, a welcome) that the customer's next
    /// text answers: it joins the turns, and the first product it was about (a catalog
    /// handle) becomes the product under discussion, so "is it in XL?" is about that product.
    /// Carrying the same message twice adds it once.
    pub fn carry_store_message(&mut self, text: &str, product_handles: &[String]) {
        let already = self
            .turns
            .last()
            .is_some_and(|turn| turn.role == Role::Agent && turn.text == text);
        if !already {
            self.turns.push(Turn {
                role: Role::Agent,
                text: text.to_owned(),
            });
        }
        if let Some(handle) = product_handles.first() {
            self.last_product = Some(crate::tools::ProductMatch {
                handle: handle.clone(),
                options: Vec::new(),
                sku: None,
                named: true,
            });
        }
    }
}

/// A finding from the guardrails about a draft reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The offending text, e.g. `$19.99` or `SAVE50`.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    UnsupportedPrice,
    UnsupportedPercentage,
    UnsupportedDuration,
    UnknownDiscountCode,
    UnsupportedUrl,
    UnsupportedOrderOrTracking,
    PromptLeak,
    MedicalOrLegalAdvice,
    TooManySegments,
    PiiEcho,
    /// Looping or garbled model output.
    Degenerate,
}

impl Finding {
    /// True for claims the knowledge does not support (as opposed to form problems).
    pub fn is_unsupported_claim(&self) -> bool {
        matches!(
            self.kind,
            FindingKind::UnsupportedPrice
                | FindingKind::UnsupportedPercentage
                | FindingKind::UnsupportedDuration
                | FindingKind::UnknownDiscountCode
                | FindingKind::UnsupportedUrl
                | FindingKind::UnsupportedOrderOrTracking
        )
    }
}

/// Microseconds spent in each stage of one decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    pub compliance_us: u64,
    pub embed_us: u64,
    pub classify_us: u64,
    pub retrieve_us: u64,
    pub tools_us: u64,
    pub generate_us: u64,
    pub guardrails_us: u64,
    pub total_us: u64,
}

/// A retrieved passage as reported in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedSource {
    pub source: String,
    pub score: f32,
    pub similarity: Option<f32>,
}

/// Handed to the support agent when the AI steps back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub reason: EscalationReason,
    pub summary: String,
    /// A draft the human may edit and send; grounded like any AI reply, or absent.
    pub suggested_reply: Option<String>,
}

/// Everything the agent decided about one inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub route: Route,
    pub intent: Option<Intent>,
    pub confidence: f32,
    pub risks: Vec<Risk>,
    /// The text to send to the customer now (answer, holding message, confirmation), if any.
    pub reply: Option<String>,
    /// Sources the reply is grounded in.
    pub sources_used: Vec<String>,
    /// Everything retrieved, best first.
    pub retrieved: Vec<RetrievedSource>,
    pub guardrail_findings: Vec<Finding>,
    pub handoff: Option<Handoff>,
    /// Which generator wrote the reply (`extractive`, `llm`, `template`).
    pub generator: String,
    pub prompt_version: String,
    pub timings: StageTimings,
    /// The state to keep for the conversation's next message.
    pub state: ConversationState,
}

impl Decision {
    pub fn escalation_reason(&self) -> Option<&EscalationReason> {
        self.handoff.as_ref().map(|h| &h.reason)
    }
}
