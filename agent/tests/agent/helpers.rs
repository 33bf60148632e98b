//! Shared setup for the pipeline tests: an [`Agent`] over the demo knowledge base and the
//! classifier `parley-testkit` builds once per test binary, and scripted conversations.

use std::sync::Arc;

use parley_agent::{Agent, AgentConfig, ConversationState, Decision, Generator, Inbound};
use parley_knowledge::MerchantId;
use parley_prompts::Prompts;

pub use parley_testkit::fakes::completion;
pub use parley_testkit::{classifier, embedder, workspace_root};

/// The agent as shipped: offline extractive responder, default policy.
pub async fn agent() -> Agent {
    agent_with(None, AgentConfig::default()).await
}

pub async fn agent_with(generator: Option<Arc<dyn Generator>>, config: AgentConfig) -> Agent {
    Agent::new(
        parley_testkit::demo_knowledge().await,
        classifier().await,
        generator,
        Arc::new(Prompts::builtin()),
        config,
    )
}

/// A scripted conversation with one customer of one merchant.
pub struct Conversation {
    pub agent: Agent,
    pub merchant: MerchantId,
    pub phone: Option<String>,
    pub state: ConversationState,
}

impl Conversation {
    pub async fn new(merchant: &str, phone: Option<&str>) -> Self {
        Self::with_agent(agent().await, merchant, phone)
    }

    pub fn with_agent(agent: Agent, merchant: &str, phone: Option<&str>) -> Self {
        Self {
            agent,
            merchant: MerchantId::parse(merchant).unwrap(),
            phone: phone.map(str::to_owned),
            state: ConversationState::default(),
        }
    }

    pub async fn say(&mut self, text: &str) -> Decision {
        let inbound = Inbound {
            merchant: &self.merchant,
            customer_phone: self.phone.as_deref(),
            text,
        };
        let decision = self.agent.decide(inbound, self.state.clone()).await.unwrap();
        self.state = decision.state.clone();
        decision
    }
}
