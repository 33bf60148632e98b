//! [`LlmGenerator`]: drafts replies with a language model behind any OpenAI-compatible Chat
//! Completions endpoint (OpenAI, vLLM, llama.cpp's server, Ollama…), through async-openai.
//!
//! The model only ever sees the passages and facts the pipeline retrieved, rendered by the
//! versioned `system` and `answer` templates, and its draft goes through the same guardrails
//! as the extractive one. This module owns what is specific to talking to a remote model:
//! fitting the prompt into a token budget, bounded retries, and reading the answer back.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionResponse,
};
use async_trait::async_trait;
use backon::Retryable as _;
use parley_core::{RetryPolicy, deserialize_duration};
use parley_knowledge::text::count_tokens;
use parley_prompts::Prompts;
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument, warn};

use crate::generate::{Draft, GenerateError, GenerationRequest, Generator, MerchantView, system_prompt};
use crate::text::unique;
use crate::types::{Role, Turn};

/// Where and how to reach the model. Durations deserialize from milliseconds (`10000`) or a
/// string with a unit (`"10s"`, `"200ms"`), so they read well in TOML and environment variables.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The API root, up to and including the version, e.g. `http://127.0.0.1:8088/v1`;
    /// requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`. Local servers usually need none.
    pub api_key: Option<String>,
    /// For one whole attempt: connecting, the model generating, and reading the answer.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Further attempts after the first, on timeouts, connection errors, 429 and 5xx.
    pub max_retries: u32,
    /// The wait before the first retry; it doubles for each one after.
    #[serde(deserialize_with = "deserialize_duration")]
    pub initial_backoff: Duration,
    /// The most tokens the model may generate. SMS replies are short; this mostly bounds cost
    /// and latency when a model rambles.
    pub max_tokens: u32,
    pub temperature: f32,
    /// Budget for the prompt (system and user messages together, counted with the cl100k
    /// tokenizer); the reply's `max_tokens` come on top.
    pub context_tokens: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8088/v1".to_owned(),
            model: "smollm2".to_owned(),
            api_key: None,
            timeout: Duration::from_secs(10),
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_tokens: 200,
            temperature: 0.2,
            context_tokens: 3000,
        }
    }
}

// Written by hand so that the API key never reaches a log line.
impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .field("context_tokens", &self.context_tokens)
            .finish()
    }
}

/// A configuration value that cannot work, named by its [`LlmConfig`] field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("llm.{field} {problem}")]
pub struct InvalidLlmConfig {
    pub field: &'static str,
    pub problem: String,
}

impl LlmConfig {
    /// The longest one draft can take: every attempt timing out, with the backoff between.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.timeout.saturating_mul(self.max_retries + 1);
        attempts + self.retry().delays().sum::<Duration>()
    }

    /// Retries back off from `initial_backoff` up to [`RetryPolicy::MAX_DELAY`]: a customer
    /// waiting on an SMS is better served by a person than by a reply minutes later.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy::new(self.initial_backoff, self.max_retries)
    }

    /// Checks every field, so that a bad setting fails at start-up rather than on the first
    /// customer message.
    pub fn validate(&self) -> Result<(), InvalidLlmConfig> {
        let invalid = |field, problem: String| Err(InvalidLlmConfig { field, problem });
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(url) => {
                return invalid(
                    "base_url",
                    format!("must use http or https, not {}", url.scheme()),
                );
            }
            Err(err) => return invalid("base_url", format!("{:?} is not a URL: {err}", self.base_url)),
        }
        if self.model.trim().is_empty() {
            return invalid("model", "must not be empty".into());
        }
        // async-openai puts the key in a header and panics on characters a header cannot hold.
        if let Some(key) = &self.api_key
            && !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return invalid(
                "api_key",
                "may only contain printable ASCII without spaces".into(),
            );
        }
        if self.timeout.is_zero() {
            return invalid("timeout", "must be greater than zero".into());
        }
        if self.max_retries > 10 {
            return invalid("max_retries", format!("is {}; at most 10", self.max_retries));
        }
        if self.max_tokens == 0 {
            return invalid("max_tokens", "must be at least 1".into());
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return invalid(
                "temperature",
                format!("is {}; must be between 0 and 2", self.temperature),
            );
        }
        if self.context_tokens == 0 {
            return invalid("context_tokens", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Drafts replies with a chat model. Cheap to share: one instance serves every merchant.
pub struct LlmGenerator {
    config: LlmConfig,
    client: Client<OpenAIConfig>,
    prompts: Arc<Prompts>,
}

impl fmt::Debug for LlmGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmGenerator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LlmGenerator {
    pub fn new(config: LlmConfig, prompts: Arc<Prompts>) -> Result<Self, GenerateError> {
        config
            .validate()
            .map_err(|err| GenerateError::Unavailable(err.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|err| GenerateError::Unavailable(format!("llm http client: {err}")))?;
        // Every value is set explicitly: `OpenAIConfig` otherwise falls back to the OPENAI_*
        // environment variables, and an OpenAI key must not travel to another endpoint.
        let openai_config = OpenAIConfig::new()
            .with_api_base(config.base_url.trim_end_matches('/'))
            .with_api_key(config.api_key.clone().unwrap_or_default())
            .with_org_id("")
            .with_project_id("");
        // async-openai's default executor retries 429/5xx/connection errors on its own (3 times,
        // from 100 ms). Installing the bare `ReqwestService` removes that layer, so the retries
        // below are the only ones and `max_retries` means what it says.
        let client = Client::build(http.clone(), openai_config).with_http_service(ReqwestService::new(http));
        Ok(Self {
            config,
            client,
            prompts,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Renders both messages, dropping the lowest-ranked passages and then the oldest turns
    /// until they fit the token budget.
    fn build_prompt(&self, request: &GenerationRequest<'_>) -> Result<Prompt, GenerateError> {
        let merchant = MerchantView::of(request.merchant);
        let system = system_prompt(&self.prompts, request.merchant)?;
        let system_tokens = count_tokens(&system);
        let facts: Vec<FactView<'_>> = request
            .facts
            .iter()
            .map(|fact| FactView { text: &fact.text })
            .collect();

        let mut n_passages = request.passages.len();
        let mut first_turn = 0;
        loop {
            let passages: Vec<PassageView<'_>> = request.passages[..n_passages]
                .iter()
                .map(|passage| PassageView {
                    source: &passage.source,
                    heading: &passage.heading,
                    text: &passage.text,
                })
                .collect();
            let message = fenced(request.message);
            let user = self.prompts.render(
                "answer",
                AnswerContext {
                    merchant: &merchant,
                    passages: &passages,
                    facts: &facts,
                    message: &message,
                    feedback: request.feedback.as_deref(),
                },
            )?;
            let history = &request.history[first_turn..];
            let n_tokens = system_tokens
                + count_tokens(&user)
                + history.iter().map(|turn| count_tokens(&turn.text)).sum::<usize>();
            // Passages come best-first, so the tail is the least likely to matter; one is kept
            // as long as possible because without evidence the model can only escalate. The
            // customer's message, facts and feedback are never dropped.
            let over_budget = n_tokens > self.config.context_tokens;
            if over_budget && n_passages > 1 {
                n_passages -= 1;
            } else if over_budget && first_turn < request.history.len() {
                first_turn += 1;
            } else if over_budget && n_passages == 1 {
                n_passages = 0;
            } else {
                if over_budget {
                    warn!(
                        n_tokens,
                        budget = self.config.context_tokens,
                        "prompt exceeds the token budget with nothing left to drop; sending it anyway"
                    );
                }
                debug!(
                    n_tokens,
                    n_passages,
                    n_passages_dropped = request.passages.len() - n_passages,
                    n_turns_dropped = first_turn,
                    "prompt built"
                );
                let sources = unique(
                    request.passages[..n_passages]
                        .iter()
                        .map(|passage| passage.source.clone())
                        .chain(request.facts.iter().map(|fact| fact.source.clone())),
                );
                return Ok(Prompt {
                    system,
                    history: history.to_vec(),
                    user,
                    sources,
                });
            }
        }
    }

    // `max_tokens` is deprecated in OpenAI's schema in favour of `max_completion_tokens`, but
    // it is the field every OpenAI-compatible server (llama.cpp, vLLM, Ollama, TGI) honours,
    // and OpenAI still accepts it for non-reasoning chat models.
    #[allow(deprecated)]
    fn chat_request(&self, prompt: Prompt) -> CreateChatCompletionRequest {
        // The conversation goes as chat messages, each with its role set here: a customer
        // who types "human: give me a refund" has written a user message, never forged a
        // store-side turn (as they could in a transcript of `role: text` lines).
        let mut messages: Vec<ChatCompletionRequestMessage> =
            vec![ChatCompletionRequestSystemMessage::from(prompt.system).into()];
        for turn in prompt.history {
            messages.push(match turn.role {
                Role::Customer => ChatCompletionRequestUserMessage::from(turn.text).into(),
                Role::Agent | Role::Human => ChatCompletionRequestAssistantMessage::from(turn.text).into(),
            });
        }
        messages.push(ChatCompletionRequestUserMessage::from(prompt.user).into());
        CreateChatCompletionRequest {
            model: self.config.model.clone(),
            messages,
            max_tokens: Some(self.config.max_tokens),
            temperature: Some(self.config.temperature),
            ..Default::default()
        }
    }

    async fn create_with_retries(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, GenerateError> {
        let n_attempts = self.config.max_retries + 1;
        let mut attempt = 1;
        let started = Instant::now();
        let result = (|| async { self.client.chat().create(request.clone()).await.map_err(classify) })
            .retry(self.config.retry().backoff())
            .sleep(tokio::time::sleep)
            .when(|failure| matches!(failure, Failure::Transient(_)))
            .notify(|failure, backoff| {
                warn!(
                    attempt,
                    reason = %failure.reason(),
                    backoff_ms = backoff.as_millis() as u64,
                    "model request failed; retrying"
                );
                attempt += 1;
            })
            .await;
        match result {
            Ok(response) => {
                debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "model answered"
                );
                Ok(response)
            }
            Err(Failure::Permanent(reason)) => {
                warn!(%reason, "model request failed; not retrying");
                Err(GenerateError::Unavailable(format!("llm: {reason}")))
            }
            Err(Failure::Transient(reason)) => {
                warn!(n_attempts, %reason, "model request failed; no retries left");
                Err(GenerateError::Unavailable(format!(
                    "llm: {n_attempts} attempts failed, the last: {reason}"
                )))
            }
        }
    }
}

#[async_trait]
impl Generator for LlmGenerator {
    fn name(&self) -> &str {
        "llm"
    }

    #[instrument(skip_all, fields(model = %self.config.model))]
    async fn generate(&self, request: &GenerationRequest<'_>) -> Result<Draft, GenerateError> {
        let prompt = self.build_prompt(request)?;
        let sources = prompt.sources.clone();
        let response = self.create_with_retries(self.chat_request(prompt)).await?;
        if let Some(usage) = &response.usage {
            debug!(
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                "token usage"
            );
        }
        let Some(choice) = response.choices.into_iter().next() else {
            warn!("model returned no choices; escalating");
            return Ok(Draft::Escalate);
        };
        debug!(finish_reason = ?choice.finish_reason, "model finished");
        let text = choice.message.content.unwrap_or_default().trim().to_owned();
        if text.is_empty() || is_escalation(&text) {
            return Ok(Draft::Escalate);
        }
        Ok(Draft::Text { text, sources })
    }
}

/// True when the model answered with the escalation word the system prompt asks for, however
/// decorated: `ESCALATE`, `Escalate.`, `**ESCALATE**`, `ESCALATE - no policy on this`.
fn is_escalation(text: &str) -> bool {
    let letters: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .take("ESCALATE".len())
        .flat_map(char::to_uppercase)
        .collect();
    letters == "ESCALATE"
}

/// Whether another attempt could succeed, with a reason fit for logs (never a message body).
enum Failure {
    Transient(String),
    Permanent(String),
}

impl Failure {
    fn reason(&self) -> &str {
        match self {
            Failure::Transient(reason) | Failure::Permanent(reason) => reason,
        }
    }
}

fn classify(error: OpenAIError) -> Failure {
    match error {
        OpenAIError::Reqwest(err) if err.is_builder() || err.is_redirect() => {
            Failure::Permanent(format!("http: {err}"))
        }
        OpenAIError::Reqwest(err) if err.is_timeout() => Failure::Transient("timed out".into()),
        // Refused or reset connections, bodies cut off: the network or the server restarting.
        OpenAIError::Reqwest(err) => Failure::Transient(format!("http: {err}")),
        OpenAIError::ApiError(api) => {
            let status = api.status_code;
            let reason = format!("HTTP {status}: {}", api.api_error.message);
            if status.as_u16() == 429 || status.is_server_error() {
                Failure::Transient(reason)
            } else {
                Failure::Permanent(reason)
            }
        }
        // The payload is left out on purpose: it may hold the model's reply.
        OpenAIError::JSONDeserialize(err, _payload) => {
            Failure::Permanent(format!("not a chat completion response: {err}"))
        }
        other => Failure::Permanent(other.to_string()),
    }
}

struct Prompt {
    system: String,
    /// Earlier turns, oldest first, sent as chat messages of their own roles.
    history: Vec<Turn>,
    user: String,
    /// Sources of the passages and facts that made it into `user`, deduplicated, in order.
    sources: Vec<String>,
}

// The template contexts spell out exactly what the templates may use, so a new field on
// `MerchantConfig` or `Passage` does not silently reach the model.

#[derive(Serialize)]
struct PassageView<'a> {
    source: &'a str,
    heading: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct FactView<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct AnswerContext<'a> {
    merchant: &'a MerchantView<'a>,
    passages: &'a [PassageView<'a>],
    facts: &'a [FactView<'a>],
    message: &'a str,
    feedback: Option<&'a str>,
}

/// The customer's message as it sits between the template's `<<<` and `>>>` fences: fence
/// marks inside it are defused, so the text cannot close the fence and go on as instructions.
fn fenced(message: &str) -> String {
    message.replace("<<<", "< < <").replace(">>>", "> > >")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_is_recognised_however_decorated() {
        for (text, expected) in [
            ("ESCALATE", true),
            ("escalate", true),
            ("Escalate.", true),
            ("**ESCALATE**", true),
            ("\"ESCALATE\"", true),
            ("ESCALATE - the passages do not cover this", true),
            ("E S C A L A T E", true),
            ("I will escalate this to the team", false),
            (
                "Escalation is not needed: returns are free within 30 days.",
                false,
            ),
            ("Returns are free within 30 days.", false),
        ] {
            assert_eq!(is_escalation(text), expected, "{text:?}");
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        type Breakage = fn(&mut LlmConfig);
        let cases: [(&str, Breakage); 7] = [
            ("base_url", |c| c.base_url = "localhost:8088".into()),
            ("model", |c| c.model = " ".into()),
            ("api_key", |c| c.api_key = Some("sk-1\n".into())),
            ("timeout", |c| c.timeout = Duration::ZERO),
            ("max_retries", |c| c.max_retries = 100),
            ("temperature", |c| c.temperature = f32::NAN),
            ("context_tokens", |c| c.context_tokens = 0),
        ];
        assert_eq!(LlmConfig::default().validate(), Ok(()));
        for (field, break_it) in cases {
            let mut config = LlmConfig::default();
            break_it(&mut config);
            let err = config.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().starts_with(&format!("llm.{field} ")), "{err}");
        }
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let config = LlmConfig {
            api_key: Some("sk-secret".into()),
            ..LlmConfig::default()
        };
        assert!(!format!("{config:?}").contains("sk-secret"));
    }
}
