//! Parley's offline eval harness: scripted customer conversations (YAML suites) run through
//! the agent in-process against fixture merchants, scored, reported and gated. No network and
//! no LLM needed; when the agent is built with an LLM generator, that is what gets measured.

pub mod metrics;
pub mod report;
pub mod run;
pub mod suite;

pub use metrics::{Metrics, TurnOutcome};
pub use report::{Gates, check_gates};
pub use run::{Report, RunError, run_suites};
pub use suite::{Expect, Pattern, Suite, SuiteError, SuiteProblem};
