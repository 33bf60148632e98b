//! The suite file format (a public contract: others write suites in it) and its loader.
//!
//! Unknown keys are errors that name the file, the case and the key: a typo such as
//! `exclud:` would otherwise silently turn a check off.

use std::path::{Path, PathBuf};

use parley_agent::{Intent, Route};
use regex::Regex;
use serde::Deserialize;
use serde_yaml::Value;

/// Why a suite could not be loaded: the file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SuiteError {
    pub path: PathBuf,
    #[source]
    pub problem: SuiteProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteProblem {
    #[error(transparent)]
    Unreadable(#[from] std::io::Error),
    /// Not YAML, an unknown key, no cases, a repeated id: the message says which.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Suite {
    pub suite: String,
    /// A directory name under `--merchants`.
    pub merchant: String,
    pub cases: Vec<Case>,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub id: String,
    /// The customer's phone, for order lookup.
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub opted_out: bool,
    /// The store's message the case's first turn answers (a flow's cart reminder, a
    /// welcome): the conversation starts from it, as the server starts a reply to a flow.
    #[serde(default)]
    pub context: Option<StoreMessage>,
    pub turns: Vec<TurnSpec>,
}

/// A message the store sent first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreMessage {
    /// The flow that sent it (`cart_recovery`, `welcome`, …), for the report.
    pub flow: String,
    pub message: String,
    /// Catalog handles of the products it is about, most relevant first.
    #[serde(default)]
    pub products: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TurnSpec {
    pub say: String,
    #[serde(default)]
    pub expect: Expect,
}

/// What a turn must produce. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Expect {
    #[serde(default, deserialize_with = "route")]
    pub route: Option<Route>,
    #[serde(default, deserialize_with = "intent")]
    pub intent: Option<Intent>,
    #[serde(default)]
    pub include: Vec<Pattern>,
    #[serde(default)]
    pub include_any: Vec<Pattern>,
    #[serde(default)]
    pub exclude: Vec<Pattern>,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub max_segments: Option<usize>,
}

/// A substring (case-insensitive) or, written `/…/`, a regular expression.
#[derive(Debug, Clone)]
pub enum Pattern {
    Text(String),
    Regex(Regex),
}

impl Pattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(body) if raw.len() >= 2 => Regex::new(body)
                .map(Pattern::Regex)
                .map_err(|err| format!("bad regex {raw:?}: {err}")),
            _ => Ok(Pattern::Text(raw.to_owned())),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Text(needle) => text.to_lowercase().contains(&needle.to_lowercase()),
            Pattern::Regex(regex) => regex.is_match(text),
        }
    }

    pub fn as_str(&self) -> String {
        match self {
            Pattern::Text(text) => text.clone(),
            Pattern::Regex(regex) => format!("/{}/", regex.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Pattern::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn route<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Route>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    raw.map(|r| r.parse().map_err(serde::de::Error::custom))
        .transpose()
}

fn intent<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Intent>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    raw.map(|r| r.parse().map_err(serde::de::Error::custom))
        .transpose()
}

const SUITE_KEYS: &[&str] = &["suite", "merchant", "cases"];
const CASE_KEYS: &[&str] = &["id", "customer", "opted_out", "context", "turns"];
const TURN_KEYS: &[&str] = &["say", "expect"];
const EXPECT_KEYS: &[&str] = &[
    "route",
    "intent",
    "include",
    "include_any",
    "exclude",
    "sources",
    "max_segments",
];

impl Suite {
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|err| SuiteError {
            path: path.to_owned(),
            problem: err.into(),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, SuiteError> {
        let invalid = |message: String| SuiteError {
            path: path.to_owned(),
            problem: SuiteProblem::Invalid(message),
        };
        let value: Value = serde_yaml::from_str(text).map_err(|err| invalid(err.to_string()))?;
        check_keys(&value).map_err(invalid)?;
        let mut suite: Suite = serde_yaml::from_value(value).map_err(|err| invalid(err.to_string()))?;
        if suite.cases.is_empty() {
            return Err(invalid("the suite has no cases".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for case in &suite.cases {
            if !seen.insert(case.id.as_str()) {
                return Err(invalid(format!("case id {:?} appears twice", case.id)));
            }
            if case.turns.is_empty() {
                return Err(invalid(format!("case {:?} has no turns", case.id)));
            }
        }
        suite.path = path.to_owned();
        Ok(suite)
    }

    pub fn n_turns(&self) -> usize {
        self.cases.iter().map(|c| c.turns.len()).sum()
    }

    /// Turns in cases that start from a store's message (replies to flows).
    pub fn n_flow_turns(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.context.is_some())
            .map(|c| c.turns.len())
            .sum()
    }
}

/// Walks the raw YAML and rejects keys the format does not define, naming where they are.
fn check_keys(value: &Value) -> Result<(), String> {
    let unknown = |map: &serde_yaml::Mapping, allowed: &[&str]| -> Option<String> {
        map.keys()
            .map(|k| k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned))
            .find(|k| !allowed.contains(&k.as_str()))
    };
    let top = value
        .as_mapping()
        .ok_or("a suite must be a mapping with suite, merchant, cases")?;
    if let Some(key) = unknown(top, SUITE_KEYS) {
        return Err(format!(
            "unknown key {key:?} at the top level (allowed: {})",
            SUITE_KEYS.join(", ")
        ));
    }
    let cases = top
        .get("cases")
        .and_then(Value::as_sequence)
        .ok_or("`cases` must be a list")?;
    for (case_idx, case) in cases.iter().enumerate() {
        let case_map = case
            .as_mapping()
            .ok_or(format!("case #{} is not a mapping", case_idx + 1))?;
        let case_name = case_map
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", case_idx + 1), |id| format!("{id:?}"));
        if let Some(key) = unknown(case_map, CASE_KEYS) {
            return Err(format!(
                "case {case_name}: unknown key {key:?} (allowed: {})",
                CASE_KEYS.join(", ")
            ));
        }
        let Some(turns) = case_map.get("turns").and_then(Value::as_sequence) else {
            continue;
        };
        for (turn_idx, turn) in turns.iter().enumerate() {
            let turn_map = turn
                .as_mapping()
                .ok_or(format!("case {case_name}, turn {}: not a mapping", turn_idx + 1))?;
            if let Some(key) = unknown(turn_map, TURN_KEYS) {
                return Err(format!(
                    "case {case_name}, turn {}: unknown key {key:?} (allowed: {})",
                    turn_idx + 1,
                    TURN_KEYS.join(", ")
                ));
            }
            if let Some(expect) = turn_map.get("expect").and_then(Value::as_mapping)
                && let Some(key) = unknown(expect, EXPECT_KEYS)
            {
                return Err(format!(
                    "case {case_name}, turn {}: unknown key {key:?} in expect (allowed: {})",
                    turn_idx + 1,
                    EXPECT_KEYS.join(", ")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite, String> {
        Suite::parse(Path::new("s.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_keys_name_file_case_and_key() {
        let err = parse(
            "suite: s\nmerchant: m\ncases:\n  - id: returns\n    turns:\n      - say: hi\n        expect:\n          exclud: [x]\n",
        )
        .unwrap_err();
        assert!(err.contains("s.yaml"), "{err}");
        assert!(err.contains("\"returns\""), "{err}");
        assert!(err.contains("\"exclud\""), "{err}");
        let err = parse("suite: s\nmerchant: m\ncases:\n  - id: a\n    custmer: x\n    turns: [{say: hi}]\n")
            .unwrap_err();
        assert!(err.contains("\"custmer\""), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        let bad_route = parse(
            "suite: s\nmerchant: m\ncases:\n  - id: a\n    turns: [{say: hi, expect: {route: maybe}}]\n",
        );
        assert!(bad_route.unwrap_err().contains("unknown route"));
        let bad_regex = parse(
            "suite: s\nmerchant: m\ncases:\n  - id: a\n    turns: [{say: hi, expect: {include: ['/(/']}}]\n",
        );
        assert!(bad_regex.unwrap_err().contains("bad regex"));
    }

    #[test]
    fn patterns() {
        assert!(Pattern::parse("30 Days").unwrap().matches("you have 30 days"));
        assert!(Pattern::parse("/\\$\\d+/").unwrap().matches("it's $5"));
        assert!(!Pattern::parse("/(?-i)STOP/").unwrap().matches("stop"));
    }
}
