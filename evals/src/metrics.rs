//! Scoring: each turn's outcome against its expectations, and the suite-level metrics
//! (route/intent accuracy, include satisfaction, retrieval hit rate and MRR, escalation
//! precision/recall, resolution rate, guardrail catches, segments, latency percentiles).

use serde::Serialize;

use crate::suite::Expect;
use parley_agent::{Decision, Route};

/// One turn as run: what was expected, what happened, and what was wrong.
#[derive(Debug, Clone, Serialize)]
pub struct TurnOutcome {
    pub suite: String,
    pub case: String,
    pub turn: usize,
    pub say: String,
    pub route: Route,
    pub expected_route: Option<Route>,
    pub intent: Option<String>,
    pub expected_intent: Option<String>,
    pub reply: Option<String>,
    pub escalation_reason: Option<String>,
    pub retrieved: Vec<String>,
    pub expected_sources: Vec<String>,
    pub segments: usize,
    /// Findings the guardrails raised about unsupported claims in drafts (caught, not sent).
    pub unsupported_claims: usize,
    pub latency_ms: f64,
    pub stage_ms: Vec<(String, f64)>,
    /// Each check that failed, in words.
    pub problems: Vec<String>,
    #[serde(skip)]
    pub checks: Checks,
}

/// Which expectations applied to a turn and whether each held.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub route: Option<bool>,
    pub intent: Option<bool>,
    /// All `include` and `include_any` held (None when the turn has neither).
    pub include: Option<bool>,
    pub exclude_violated: bool,
    /// Rank (1-based) of the first expected source among the retrieved, if any were expected.
    pub source_rank: Option<Option<usize>>,
}

/// Scores one decision against its expectations.
pub fn score_turn(expect: &Expect, decision: &Decision) -> (Checks, Vec<String>) {
    let mut problems = Vec::new();
    let mut checks = Checks::default();
    let reply = decision.reply.as_deref().unwrap_or("");
    if let Some(expected) = expect.route {
        let ok = decision.route == expected;
        if !ok {
            let reason = decision
                .escalation_reason()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            problems.push(format!(
                "route: expected {expected}, got {}{reason}",
                decision.route
            ));
        }
        checks.route = Some(ok);
    }
    if let Some(expected) = expect.intent {
        let ok = decision.intent == Some(expected);
        if !ok {
            let got = decision.intent.map_or("none".to_owned(), |i| i.to_string());
            problems.push(format!("intent: expected {expected}, got {got}"));
        }
        checks.intent = Some(ok);
    }
    if !expect.include.is_empty() || !expect.include_any.is_empty() {
        let mut ok = true;
        for pattern in &expect.include {
            if !pattern.matches(reply) {
                problems.push(format!("include: {:?} not in the reply", pattern.as_str()));
                ok = false;
            }
        }
        if !expect.include_any.is_empty() && !expect.include_any.iter().any(|p| p.matches(reply)) {
            let all: Vec<String> = expect.include_any.iter().map(|p| p.as_str()).collect();
            problems.push(format!("include_any: none of {all:?} in the reply"));
            ok = false;
        }
        checks.include = Some(ok);
    }
    for pattern in &expect.exclude {
        if pattern.matches(reply) {
            problems.push(format!("exclude: {:?} is in the reply", pattern.as_str()));
            checks.exclude_violated = true;
        }
    }
    if !expect.sources.is_empty() {
        let rank = decision
            .retrieved
            .iter()
            .position(|r| expect.sources.iter().any(|s| source_matches(&r.source, s)))
            .map(|idx| idx + 1);
        if rank.is_none() {
            problems.push(format!("sources: none of {:?} retrieved", expect.sources));
        }
        checks.source_rank = Some(rank);
    }
    if let Some(max) = expect.max_segments {
        let segments = decision
            .reply
            .as_deref()
            .map_or(0, |r| parley_agent::sms::segments(r).segments);
        if segments > max {
            problems.push(format!("max_segments: {segments} > {max}"));
        }
    }
    (checks, problems)
}

/// `policies/returns.md` matches itself; `products/x` matches `products/x` and its
/// description chunks.
fn source_matches(retrieved: &str, expected: &str) -> bool {
    retrieved == expected
        || retrieved.starts_with(&format!("{expected}#"))
        || retrieved.starts_with(&format!("{expected}/"))
}

/// Suite-level figures. Rates are in 0..1; a rate with nothing to measure is 1.0 (vacuous)
/// and its denominator is reported next to it in `counts`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Metrics {
    pub route_accuracy: f64,
    pub intent_accuracy: f64,
    pub include_rate: f64,
    pub exclude_violations: usize,
    pub retrieval_hit_rate: f64,
    pub mrr: f64,
    pub escalation_precision: f64,
    pub escalation_recall: f64,
    pub resolution_rate: f64,
    pub unsupported_claims: usize,
    pub max_segments: usize,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
}

pub fn compute(outcomes: &[TurnOutcome]) -> Metrics {
    let rate = |hits: usize, total: usize| {
        if total == 0 {
            1.0
        } else {
            hits as f64 / total as f64
        }
    };
    let count = |f: &dyn Fn(&TurnOutcome) -> Option<bool>| -> (usize, usize) {
        let applicable: Vec<bool> = outcomes.iter().filter_map(f).collect();
        (applicable.iter().filter(|ok| **ok).count(), applicable.len())
    };
    let (route_ok, route_n) = count(&|o| o.checks.route);
    let (intent_ok, intent_n) = count(&|o| o.checks.intent);
    let (include_ok, include_n) = count(&|o| o.checks.include);

    let ranks: Vec<Option<usize>> = outcomes.iter().filter_map(|o| o.checks.source_rank).collect();
    let hits = ranks.iter().filter(|r| r.is_some()).count();
    let mrr = if ranks.is_empty() {
        1.0
    } else {
        ranks
            .iter()
            .map(|r| r.map_or(0.0, |rank| 1.0 / rank as f64))
            .sum::<f64>()
            / ranks.len() as f64
    };

    // Escalation as a binary classifier over turns with an expected route.
    let with_route: Vec<&TurnOutcome> = outcomes.iter().filter(|o| o.expected_route.is_some()).collect();
    let true_pos = with_route
        .iter()
        .filter(|o| o.expected_route == Some(Route::Escalate) && o.route == Route::Escalate)
        .count();
    let predicted_pos = with_route.iter().filter(|o| o.route == Route::Escalate).count();
    let actual_pos = with_route
        .iter()
        .filter(|o| o.expected_route == Some(Route::Escalate))
        .count();

    let expected_reply: Vec<&TurnOutcome> = outcomes
        .iter()
        .filter(|o| o.expected_route == Some(Route::Reply))
        .collect();
    let resolved = expected_reply
        .iter()
        .filter(|o| o.route == Route::Reply && o.checks.include != Some(false) && !o.checks.exclude_violated)
        .count();

    let mut latencies: Vec<f64> = outcomes.iter().map(|o| o.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    Metrics {
        route_accuracy: rate(route_ok, route_n),
        intent_accuracy: rate(intent_ok, intent_n),
        include_rate: rate(include_ok, include_n),
        exclude_violations: outcomes.iter().filter(|o| o.checks.exclude_violated).count(),
        retrieval_hit_rate: rate(hits, ranks.len()),
        mrr,
        escalation_precision: rate(true_pos, predicted_pos),
        escalation_recall: rate(true_pos, actual_pos),
        resolution_rate: rate(resolved, expected_reply.len()),
        unsupported_claims: outcomes.iter().map(|o| o.unsupported_claims).sum(),
        max_segments: outcomes.iter().map(|o| o.segments).max().unwrap_or(0),
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p99: percentile(&latencies, 0.99),
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(
        expected: Option<Route>,
        got: Route,
        include: Option<bool>,
        rank: Option<Option<usize>>,
    ) -> TurnOutcome {
        TurnOutcome {
            suite: "s".into(),
            case: "c".into(),
            turn: 1,
            say: String::new(),
            route: got,
            expected_route: expected,
            intent: None,
            expected_intent: None,
            reply: None,
            escalation_reason: None,
            retrieved: Vec::new(),
            expected_sources: Vec::new(),
            segments: 1,
            unsupported_claims: 0,
            latency_ms: 1.0,
            stage_ms: Vec::new(),
            problems: Vec::new(),
            checks: Checks {
                route: expected.map(|e| e == got),
                intent: None,
                include,
                exclude_violated: false,
                source_rank: rank,
            },
        }
    }

    #[test]
    fn hand_computed_metrics() {
        use Route::*;
        let outcomes = vec![
            // reply expected, replied, includes ok, source at rank 1
            outcome(Some(Reply), Reply, Some(true), Some(Some(1))),
            // reply expected, replied, includes failed, source at rank 2
            outcome(Some(Reply), Reply, Some(false), Some(Some(2))),
            // reply expected, escalated (false positive), source missed
            outcome(Some(Reply), Escalate, None, Some(None)),
            // escalate expected, escalated (true positive)
            outcome(Some(Escalate), Escalate, None, None),
            // escalate expected, replied (false negative)
            outcome(Some(Escalate), Reply, None, None),
            // no expected route: excluded from route and escalation metrics
            outcome(None, Escalate, None, None),
        ];
        let m = compute(&outcomes);
        assert!((m.route_accuracy - 3.0 / 5.0).abs() < 1e-9);
        assert!((m.include_rate - 0.5).abs() < 1e-9);
        assert!((m.retrieval_hit_rate - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.mrr - (1.0 + 0.5 + 0.0) / 3.0).abs() < 1e-9);
        assert!((m.escalation_precision - 0.5).abs() < 1e-9);
        assert!((m.escalation_recall - 0.5).abs() < 1e-9);
        // Of three expected replies, only the first routed reply with includes met.
        assert!((m.resolution_rate - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.exclude_violations, 0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn nothing_to_measure_is_vacuously_perfect() {
        let m = compute(&[]);
        assert_eq!(m.route_accuracy, 1.0);
        assert_eq!(m.escalation_recall, 1.0);
    }
}
