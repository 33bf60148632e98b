//! The harness tested on itself: a real agent over a fixture merchant, a suite whose
//! expectations hold, and one with a deliberately wrong expectation that must fail and say why.

use std::path::Path;
use std::sync::Arc;

use parley_agent::{Agent, AgentConfig};
use parley_evals::{Gates, Suite, check_gates, run_suites};
use parley_prompts::Prompts;
use parley_testkit::{classifier, demo_knowledge, workspace_root};

/// One agent over the demo merchants (the knowledge base the other crates' tests share).
async fn agent() -> Agent {
    Agent::new(
        demo_knowledge().await,
        classifier().await,
        None,
        Arc::new(Prompts::builtin()),
        AgentConfig::default(),
    )
}

const SUITE: &str = r#"
suite: harness-check
merchant: trailhead
cases:
  - id: stop
    turns:
      - say: "STOP"
        expect: {route: opt_out, include: ["unsubscribed"]}
  - id: person
    turns:
      - say: "can I talk to a real person please"
        expect: {route: escalate, intent: human_request}
  - id: returns
    turns:
      - say: "do i have to pay for return shipping?"
        expect: {route: reply, exclude: ["SAVE50"], sources: ["policies/returns.md"], max_segments: 3}
"#;

#[tokio::test]
async fn a_suite_that_holds_passes_and_a_wrong_expectation_fails_clearly() {
    let agent = agent().await;
    let good = Suite::parse(Path::new("good.yaml"), SUITE).unwrap();
    let report = run_suites(&agent, &[good], &|_, _| {}).await.unwrap();
    assert_eq!(report.turns, 3);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.metrics.route_accuracy, 1.0);
    assert_eq!(report.metrics.escalation_recall, 1.0);
    assert_eq!(report.metrics.resolution_rate, 1.0);
    assert!(
        check_gates(
            &report,
            &Gates {
                min_resolution: Some(0.9),
                ..Gates::default()
            }
        )
        .is_empty()
    );

    // The same turns, with wrong expectations: STOP "should" be answered, and the returns
    // answer "must" contain a phrase it cannot.
    let wrong = SUITE
        .replace("{route: opt_out, include: [\"unsubscribed\"]}", "{route: reply}")
        .replace("exclude: [\"SAVE50\"]", "include: [\"we pay you to return\"]");
    let wrong = Suite::parse(Path::new("wrong.yaml"), &wrong).unwrap();
    let report = run_suites(&agent, &[wrong], &|_, _| {}).await.unwrap();
    assert_eq!(report.failures.len(), 2, "{:#?}", report.failures);
    let stop = report.failures.iter().find(|f| f.case == "stop").unwrap();
    assert_eq!(
        stop.problems,
        vec!["route: expected reply, got opt_out".to_owned()]
    );
    let returns = report.failures.iter().find(|f| f.case == "returns").unwrap();
    assert!(
        returns
            .problems
            .iter()
            .any(|p| p.contains("\"we pay you to return\" not in the reply")),
        "{:?}",
        returns.problems
    );
    assert!(report.metrics.resolution_rate < 1.0);
    let gate_failures = check_gates(
        &report,
        &Gates {
            min_resolution: Some(0.9),
            ..Gates::default()
        },
    );
    assert_eq!(gate_failures.len(), 1);
    assert!(
        gate_failures[0].starts_with("resolution_rate 0.000 is below the minimum 0.900"),
        "{gate_failures:?}"
    );

    // The report files are written and name the failing turns.
    let out = tempfile::tempdir().unwrap();
    parley_evals::report::write(&report, out.path()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap()).unwrap();
    for key in [
        "suite",
        "cases",
        "turns",
        "route_accuracy",
        "intent_accuracy",
        "include_rate",
        "exclude_violations",
        "retrieval_hit_rate",
        "mrr",
        "escalation_precision",
        "escalation_recall",
        "resolution_rate",
        "unsupported_claims",
        "max_segments",
        "latency_ms_p50",
        "latency_ms_p99",
        "failures",
    ] {
        assert!(json.get(key).is_some(), "report.json lacks {key}");
    }
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("we pay you to return") && !html.contains("<script"));
}

#[test]
fn the_fixture_suites_parse_and_cover_what_the_issue_asks() {
    let mut turns = 0;
    for name in ["trailhead", "glowleaf", "cadence", "lumen"] {
        let suite = Suite::load(&workspace_root().join(format!("fixtures/evals/{name}.yaml"))).unwrap();
        assert!(
            workspace_root()
                .join("fixtures/merchants")
                .join(&suite.merchant)
                .is_dir()
        );
        turns += suite.n_turns();
        // Replies to the store's own messages (issue 17): each suite starts some cases from one.
        assert!(
            suite.n_flow_turns() >= 20,
            "{name}: only {} turns reply to a flow message",
            suite.n_flow_turns()
        );
    }
    assert!(turns >= 700, "only {turns} turns");
}
