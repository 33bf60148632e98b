//! Parley's reply agent: given a merchant, a conversation and a customer's new SMS, decide
//! whether to answer, hand to a person, or act on a compliance keyword. Pure logic: no HTTP.

pub mod classifier;
pub mod compliance;
pub mod extractive;
pub mod generate;
pub mod guardrails;
pub mod language;
pub mod llm;
pub mod pipeline;
pub mod question;
pub mod scope;
pub mod sizing;
pub mod sms;
pub mod text;
pub mod tools;
pub mod types;

pub use classifier::{Classification, Classifier};
pub use generate::{Draft, Fact, GenerateError, GenerationRequest, Generator, Passage};
pub use pipeline::{Agent, AgentConfig, AgentError, Inbound, MerchantContact};
pub use types::*;
