//! Runs suites through the agent in-process: each case is one conversation whose state
//! (consent, escalation, memory) carries from turn to turn, exactly as the server keeps it.

use parley_agent::{Agent, ConversationState, Inbound};
use parley_knowledge::MerchantId;
use serde::Serialize;

use crate::metrics::{self, Metrics, TurnOutcome};
use crate::suite::Suite;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("suite {suite}: merchant {merchant:?}: {source}")]
    Merchant {
        suite: String,
        merchant: String,
        #[source]
        source: parley_knowledge::KnowledgeError,
    },
    #[error("suite {suite}, case {case:?}, turn {turn}: {source}")]
    Agent {
        suite: String,
        case: String,
        turn: usize,
        #[source]
        source: parley_agent::AgentError,
    },
    /// A case's `context` names what the merchant does not have.
    #[error("suite {suite}, case {case:?}, context: {problem}")]
    Context {
        suite: String,
        case: String,
        problem: String,
    },
}

/// The scored result of one or more suites.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub suite: String,
    pub cases: usize,
    pub turns: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// p50/p99 per pipeline stage, in milliseconds.
    pub latency_stages_ms: Vec<StageLatency>,
    pub generator: String,
    pub prompt_version: String,
    /// Per-suite figures when several suites ran together.
    pub suites: Vec<SuiteSummary>,
    pub failures: Vec<TurnOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageLatency {
    pub stage: String,
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteSummary {
    pub suite: String,
    pub cases: usize,
    pub turns: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// Runs every suite; `progress` is called after each turn with (done, total).
pub async fn run_suites(
    agent: &Agent,
    suites: &[Suite],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report, RunError> {
    let total: usize = suites.iter().map(Suite::n_turns).sum();
    let mut done = 0;
    let mut all = Vec::new();
    let mut summaries = Vec::new();
    for suite in suites {
        let merchant = MerchantId::parse(&suite.merchant).map_err(|source| RunError::Merchant {
            suite: suite.suite.clone(),
            merchant: suite.merchant.clone(),
            source: source.into(),
        })?;
        let mut outcomes = Vec::new();
        for case in &suite.cases {
            let mut state = ConversationState {
                opted_out: case.opted_out,
                ..ConversationState::default()
            };
            if let Some(context) = &case.context {
                let catalog = agent
                    .knowledge()
                    .merchant(&merchant)
                    .map_err(|err| RunError::Context {
                        suite: suite.suite.clone(),
                        case: case.id.clone(),
                        problem: err.to_string(),
                    })?;
                if let Some(missing) = context
                    .products
                    .iter()
                    .find(|handle| !catalog.products.iter().any(|p| &p.handle == *handle))
                {
                    return Err(RunError::Context {
                        suite: suite.suite.clone(),
                        case: case.id.clone(),
                        problem: format!("no product with handle {missing:?} in {}", suite.merchant),
                    });
                }
                state.carry_store_message(&context.message, &context.products);
            }
            for (idx, turn) in case.turns.iter().enumerate() {
                let inbound = Inbound {
                    merchant: &merchant,
                    customer_phone: case.customer.as_deref(),
                    text: &turn.say,
                };
                let decision =
                    agent
                        .decide(inbound, state.clone())
                        .await
                        .map_err(|source| RunError::Agent {
                            suite: suite.suite.clone(),
                            case: case.id.clone(),
                            turn: idx + 1,
                            source,
                        })?;
                let (checks, problems) = metrics::score_turn(&turn.expect, &decision);
                let t = &decision.timings;
                let ms = |us: u64| us as f64 / 1000.0;
                outcomes.push(TurnOutcome {
                    suite: suite.suite.clone(),
                    case: case.id.clone(),
                    turn: idx + 1,
                    say: turn.say.clone(),
                    route: decision.route,
                    expected_route: turn.expect.route,
                    intent: decision.intent.map(|i| i.to_string()),
                    expected_intent: turn.expect.intent.map(|i| i.to_string()),
                    reply: decision.reply.clone(),
                    escalation_reason: decision.escalation_reason().map(|r| r.to_string()),
                    retrieved: decision.retrieved.iter().map(|r| r.source.clone()).collect(),
                    expected_sources: turn.expect.sources.clone(),
                    segments: decision
                        .reply
                        .as_deref()
                        .map_or(0, |r| parley_agent::sms::segments(r).segments),
                    unsupported_claims: decision
                        .guardrail_findings
                        .iter()
                        .filter(|f| f.is_unsupported_claim())
                        .count(),
                    latency_ms: ms(t.total_us),
                    stage_ms: vec![
                        ("compliance".into(), ms(t.compliance_us)),
                        ("embed".into(), ms(t.embed_us)),
                        ("classify".into(), ms(t.classify_us)),
                        ("retrieve".into(), ms(t.retrieve_us)),
                        ("tools".into(), ms(t.tools_us)),
                        ("generate".into(), ms(t.generate_us)),
                        ("guardrails".into(), ms(t.guardrails_us)),
                    ],
                    problems,
                    checks,
                });
                state = decision.state;
                done += 1;
                progress(done, total);
            }
        }
        summaries.push(SuiteSummary {
            suite: suite.suite.clone(),
            cases: suite.cases.len(),
            turns: outcomes.len(),
            metrics: metrics::compute(&outcomes),
        });
        all.extend(outcomes);
    }
    Ok(report(agent, suites, all, summaries))
}

fn report(
    agent: &Agent,
    suites: &[Suite],
    outcomes: Vec<TurnOutcome>,
    summaries: Vec<SuiteSummary>,
) -> Report {
    let stage_names: Vec<String> = outcomes
        .first()
        .map(|o| o.stage_ms.iter().map(|(name, _)| name.clone()).collect())
        .unwrap_or_default();
    let latency_stages_ms = stage_names
        .iter()
        .enumerate()
        .map(|(idx, stage)| {
            let mut values: Vec<f64> = outcomes.iter().map(|o| o.stage_ms[idx].1).collect();
            values.sort_by(f64::total_cmp);
            StageLatency {
                stage: stage.clone(),
                p50: metrics::percentile(&values, 0.5),
                p99: metrics::percentile(&values, 0.99),
            }
        })
        .collect();
    Report {
        suite: suites
            .iter()
            .map(|s| s.suite.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        cases: suites.iter().map(|s| s.cases.len()).sum(),
        turns: outcomes.len(),
        metrics: metrics::compute(&outcomes),
        latency_stages_ms,
        generator: agent.generator_name().to_owned(),
        prompt_version: agent.prompt_version().to_owned(),
        suites: summaries,
        failures: outcomes.into_iter().filter(|o| !o.problems.is_empty()).collect(),
    }
}
