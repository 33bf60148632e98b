//! Flow definitions: `flows.toml` in the merchant directory over the built-in flows, read
//! and validated whole, with every problem naming the flow, the step and the key.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use crate::render;

/// What starts a flow for one customer. The server watches for these; the anchor time of an
/// enrollment is when the trigger happened (the checkout's last update, the opt-in, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A checkout with a phone and marketing consent, not completed.
    CheckoutAbandoned,
    /// A marketing opt-in, once its confirmation went out.
    MarketingOptIn,
    /// An order's shipment delivered.
    OrderDelivered,
    /// An order placed.
    OrderPlaced,
    /// No order and no reply since the anchor.
    Inactive,
}

impl Trigger {
    /// Whether an order (or the checkout completing) ends this flow: it reached its goal.
    pub fn ends_on_order(self) -> bool {
        matches!(self, Self::CheckoutAbandoned | Self::Inactive)
    }
}

/// One message of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// After the trigger (first step) or after the previous step was sent.
    pub delay: Duration,
    /// minijinja; see [`TemplateContext`] for the names it may use.
    pub template: String,
    /// A code from the merchant's `[[offers]]`.
    pub offer: Option<String>,
    /// How long the offer holds once sent; shown as its expiry.
    pub offer_valid_for: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: String,
    pub trigger: Trigger,
    pub enabled: bool,
    /// After the customer replies the agent has the conversation; with this set the flow
    /// carries on afterwards (the pause still applies), otherwise it ends.
    pub resume_after_reply: bool,
    pub steps: Vec<Step>,
}

/// A merchant's flows: the built-ins, with the merchant's `flows.toml` laid over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Flows {
    /// No flow texts a customer within this long of the customer's last text: the store does
    /// not talk over a conversation.
    pub pause_after_customer_text: Duration,
    pub flows: Vec<Flow>,
}

/// A problem in a flows file, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowsError {
    /// Not TOML, or a key or value of the wrong shape (toml's message names the line).
    #[error("{0}")]
    Syntax(String),
    #[error("flow `{flow}`{}, `{key}`: {problem}", step.map(|n| format!(", step {n}")).unwrap_or_default())]
    Invalid {
        flow: String,
        /// 1-based, as a merchant counts them.
        step: Option<usize>,
        key: &'static str,
        problem: String,
    },
}

impl FlowsError {
    fn invalid(flow: &str, step: Option<usize>, key: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            flow: flow.to_owned(),
            step,
            key,
            problem: problem.into(),
        }
    }
}

const BUILTIN: &str = include_str!("builtin.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, deserialize_with = "optional_duration")]
    pause_after_customer_text: Option<Duration>,
    #[serde(default)]
    flow: Vec<RawFlow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    id: String,
    trigger: Trigger,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    resume_after_reply: bool,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(deserialize_with = "parley_core::duration::deserialize_duration")]
    delay: Duration,
    template: String,
    #[serde(default)]
    offer: Option<String>,
    #[serde(default, deserialize_with = "optional_duration")]
    offer_valid_for: Option<Duration>,
}

fn yes() -> bool {
    true
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    parley_core::duration::deserialize_duration(deserializer).map(Some)
}

/// The longest delay a step may have: a flow step further out than a year is a typo.
const MAX_DELAY: Duration = Duration::from_secs(366 * 86_400);

impl Flows {
    /// The built-in flows alone (a merchant without a `flows.toml`).
    pub fn builtin() -> Self {
        Self::load("", &[]).expect("the built-in flows are valid")
    }

    /// The built-ins with `text` (a `flows.toml`) laid over them: a flow with a built-in's id
    /// replaces it whole, a new id adds a flow. `offer_codes` are the merchant's `[[offers]]`;
    /// a step may only offer one of them.
    pub fn load(text: &str, offer_codes: &[&str]) -> Result<Self, FlowsError> {
        let builtin: RawFile = toml::from_str(BUILTIN).map_err(|err| FlowsError::Syntax(err.to_string()))?;
        let custom: RawFile = toml::from_str(text).map_err(|err| FlowsError::Syntax(err.to_string()))?;
        let mut seen = HashSet::new();
        for flow in &custom.flow {
            if !seen.insert(flow.id.as_str()) {
                return Err(FlowsError::invalid(&flow.id, None, "id", "defined twice"));
            }
        }
        let mut raw: Vec<RawFlow> = builtin
            .flow
            .into_iter()
            .filter(|flow| !seen.contains(flow.id.as_str()))
            .collect();
        raw.extend(custom.flow);
        let flows = raw
            .into_iter()
            .map(|flow| validate(flow, offer_codes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            pause_after_customer_text: custom
                .pause_after_customer_text
                .or(builtin.pause_after_customer_text)
                .unwrap_or(Duration::from_secs(30 * 60)),
            flows,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Flow> {
        self.flows.iter().find(|flow| flow.id == id)
    }

    /// The enabled flows a trigger starts.
    pub fn started_by(&self, trigger: Trigger) -> impl Iterator<Item = &Flow> {
        self.flows
            .iter()
            .filter(move |flow| flow.enabled && flow.trigger == trigger)
    }
}

fn validate(raw: RawFlow, offer_codes: &[&str]) -> Result<Flow, FlowsError> {
    let id = raw.id.trim().to_owned();
    let id_ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !id_ok {
        return Err(FlowsError::invalid(
            &raw.id,
            None,
            "id",
            "use lowercase letters, digits, `_` and `-`",
        ));
    }
    if raw.step.is_empty() {
        return Err(FlowsError::invalid(
            &id,
            None,
            "step",
            "a flow needs at least one [[flow.step]]",
        ));
    }
    let mut steps = Vec::with_capacity(raw.step.len());
    for (i, step) in raw.step.into_iter().enumerate() {
        let n = Some(i + 1);
        if step.delay > MAX_DELAY {
            return Err(FlowsError::invalid(&id, n, "delay", "longer than a year"));
        }
        if step.template.trim().is_empty() {
            return Err(FlowsError::invalid(&id, n, "template", "empty"));
        }
        let offer = step.offer.map(|code| code.trim().to_owned());
        if let Some(code) = &offer
            && !offer_codes.iter().any(|known| known.eq_ignore_ascii_case(code))
        {
            let known = if offer_codes.is_empty() {
                "the merchant has no [[offers]] in merchant.toml".to_owned()
            } else {
                format!("the merchant's [[offers]] are {}", offer_codes.join(", "))
            };
            return Err(FlowsError::invalid(
                &id,
                n,
                "offer",
                format!("{code} is not one of the merchant's offers; {known}"),
            ));
        }
        if step.offer_valid_for.is_some() && offer.is_none() {
            return Err(FlowsError::invalid(
                &id,
                n,
                "offer_valid_for",
                "set without an offer",
            ));
        }
        // Rendered once with every name filled in, strictly: a misspelt name or a syntax
        // error is found now, not when the first customer is due a text.
        render::check(&step.template).map_err(|problem| FlowsError::invalid(&id, n, "template", problem))?;
        steps.push(Step {
            delay: step.delay,
            template: step.template,
            offer,
            offer_valid_for: step.offer_valid_for,
        });
    }
    Ok(Flow {
        id,
        trigger: raw.trigger,
        enabled: raw.enabled,
        resume_after_reply: raw.resume_after_reply,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtins_load_and_cart_recovery_is_three_messages_over_three_days() {
        let flows = Flows::builtin();
        let cart = flows.get("cart_recovery").unwrap();
        assert!(cart.enabled);
        let delays: Vec<u64> = cart.steps.iter().map(|s| s.delay.as_secs() / 3600).collect();
        assert_eq!(delays, [2, 24, 48]);
        assert_eq!(flows.pause_after_customer_text, Duration::from_secs(1800));
        assert_eq!(flows.started_by(Trigger::CheckoutAbandoned).count(), 1);
        // Off until configured.
        assert_eq!(flows.started_by(Trigger::Inactive).count(), 0);
        for flow in &flows.flows {
            for step in &flow.steps {
                assert!(
                    step.template.contains('?'),
                    "{}: every message asks something",
                    flow.id
                );
            }
        }
    }

    #[test]
    fn a_merchant_flow_replaces_the_builtin_with_its_id_and_offers_progress() {
        let text = r#"
            pause_after_customer_text = "1h"
            [[flow]]
            id = "cart_recovery"
            trigger = "checkout_abandoned"
            [[flow.step]]
            delay = "2h"
            template = "Questions about {{ product }}?"
            [[flow.step]]
            delay = "24h"
            offer = "FREESHIP"
            offer_valid_for = "48h"
            template = "Free shipping with {{ offer.code }}?"
            [[flow.step]]
            delay = "48h"
            offer = "save10"
            offer_valid_for = "24h"
            template = "{{ offer.code }} ends {{ offer.expires }}. Ready?"
        "#;
        let flows = Flows::load(text, &["FREESHIP", "SAVE10"]).unwrap();
        let cart = flows.get("cart_recovery").unwrap();
        let offers: Vec<Option<&str>> = cart.steps.iter().map(|s| s.offer.as_deref()).collect();
        assert_eq!(offers, [None, Some("FREESHIP"), Some("save10")]);
        assert_eq!(flows.pause_after_customer_text, Duration::from_secs(3600));
        // The other built-ins are still there.
        assert!(flows.get("welcome").is_some());
    }

    #[test]
    fn problems_name_the_flow_the_step_and_the_key() {
        let flow = |steps: &str| {
            format!("[[flow]]\nid = \"cart_recovery\"\ntrigger = \"checkout_abandoned\"\n{steps}")
        };
        let err = |text: &str| Flows::load(text, &["SAVE10"]).unwrap_err().to_string();
        let unknown_offer = err(&flow(
            "[[flow.step]]\ndelay = \"1h\"\noffer = \"BOGUS\"\ntemplate = \"hi?\"",
        ));
        assert!(
            unknown_offer.contains("cart_recovery")
                && unknown_offer.contains("step 1")
                && unknown_offer.contains("`offer`")
                && unknown_offer.contains("SAVE10"),
            "{unknown_offer}"
        );
        let typo = err(&flow(
            "[[flow.step]]\ndelay = \"1h\"\ntemplate = \"ok?\"\n[[flow.step]]\ndelay = \"1h\"\ntemplate = \"hi {{ frist_name }}?\"",
        ));
        assert!(
            typo.contains("step 2") && typo.contains("`template`") && typo.contains("frist_name"),
            "{typo}"
        );
        let syntax = err(&flow(
            "[[flow.step]]\ndelay = \"1h\"\ntemplate = \"hi {{ first_name ?\"",
        ));
        assert!(
            syntax.contains("step 1") && syntax.contains("`template`"),
            "{syntax}"
        );
        let no_steps = err(&flow(""));
        assert!(no_steps.contains("`step`"), "{no_steps}");
        let bad_delay = err(&flow("[[flow.step]]\ndelay = \"soon\"\ntemplate = \"hi?\""));
        assert!(bad_delay.contains("soon"), "{bad_delay}");
        let long = err(&flow("[[flow.step]]\ndelay = \"400d\"\ntemplate = \"hi?\""));
        assert!(long.contains("`delay`"), "{long}");
        let trigger = err("[[flow]]\nid = \"x\"\ntrigger = \"sometimes\"\n");
        assert!(trigger.contains("sometimes"), "{trigger}");
        let unknown_key = err(&flow(
            "colour = \"red\"\n[[flow.step]]\ndelay = \"1h\"\ntemplate = \"hi?\"",
        ));
        assert!(unknown_key.contains("colour"), "{unknown_key}");
        let twice = err(&format!(
            "{}{}",
            flow("[[flow.step]]\ndelay = \"1h\"\ntemplate = \"a?\"\n"),
            flow("[[flow.step]]\ndelay = \"1h\"\ntemplate = \"b?\"\n")
        ));
        assert!(twice.contains("defined twice"), "{twice}");
        let bad_id = err(
            "[[flow]]\nid = \"Cart Recovery\"\ntrigger = \"inactive\"\n[[flow.step]]\ndelay = \"1h\"\ntemplate = \"a?\"",
        );
        assert!(bad_id.contains("`id`"), "{bad_id}");
        let validity = err(&flow(
            "[[flow.step]]\ndelay = \"1h\"\noffer_valid_for = \"1h\"\ntemplate = \"a?\"",
        ));
        assert!(validity.contains("offer_valid_for"), "{validity}");
    }
}
