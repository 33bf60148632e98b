//! The compliance detector over the labelled tables in `fixtures/compliance/`, written without
//! reading the detector: opt-out precision and recall are printed. On the tuned tables
//! (`messages.yaml`, `second.yaml`, `third.yaml`) every misclassified message fails the test by name; the
//! held-out table (`held_out.yaml`) is measured against a floor and never tuned on.

use std::path::Path;

use parley_agent::compliance::{ComplianceAction, detect_with_language};
use parley_agent::language::Language;
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    messages: Vec<Labelled>,
}

#[derive(Deserialize)]
struct Labelled {
    text: String,
    label: String,
    lang: String,
}

fn table(name: &str) -> Vec<Labelled> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/compliance")
        .join(name);
    let raw = std::fs::read_to_string(&path).expect("read the compliance table");
    let table: Table = serde_yaml::from_str(&raw).expect("parse the compliance table");
    table.messages
}

fn expected(label: &str) -> Option<ComplianceAction> {
    match label {
        "opt_out" => Some(ComplianceAction::OptOut),
        "opt_in" => Some(ComplianceAction::OptIn),
        "join" => Some(ComplianceAction::Join),
        "help" => Some(ComplianceAction::Help),
        "none" => None,
        other => panic!("unknown label {other:?}"),
    }
}

/// What the detector got right and wrong over one table.
struct Score {
    true_out: usize,
    false_out: usize,
    missed_out: usize,
    wrong: Vec<String>,
}

impl Score {
    fn precision(&self) -> f64 {
        self.true_out as f64 / (self.true_out + self.false_out).max(1) as f64
    }

    fn recall(&self) -> f64 {
        self.true_out as f64 / (self.true_out + self.missed_out).max(1) as f64
    }

    fn print(&self, name: &str, n: usize) {
        println!(
            "{name}: {n} messages; opt-out precision {:.3}, recall {:.3} ({} caught, {} false, {} missed); {} wrong",
            self.precision(),
            self.recall(),
            self.true_out,
            self.false_out,
            self.missed_out,
            self.wrong.len()
        );
    }
}

#[test]
fn the_labelled_table_is_classified_exactly() {
    // The tuned tables: `second.yaml` and `third.yaml` were each held out until their misses
    // (measured once, in their headers) drove a rewrite.
    let mut messages = table("messages.yaml");
    messages.extend(table("second.yaml"));
    messages.extend(table("third.yaml"));
    assert!(messages.len() >= 150, "the table must hold at least 150 messages");
    let score = score(&messages);
    score.print("compliance table", messages.len());
    assert!(
        score.wrong.is_empty(),
        "{} misclassified:\n{}",
        score.wrong.len(),
        score.wrong.join("\n")
    );
}

/// The held-out table is never tuned on: it measures whether the rules generalise. Its first
/// (and so far only) measurement was precision 0.953, recall 0.849 — well below the tuned
/// tables' 1.0. The floors sit just under that figure, to catch a regression; they are not
/// the target (that is 1.0 on unseen wording, which the rules alone do not reach).
#[test]
fn the_held_out_table_generalises() {
    let messages = table("held_out.yaml");
    let score = score(&messages);
    score.print("held-out compliance table", messages.len());
    for line in &score.wrong {
        println!("  {line}");
    }
    assert!(
        score.precision() >= 0.95,
        "more false opt-outs on the held-out table"
    );
    assert!(
        score.recall() >= 0.84,
        "more missed opt-outs on the held-out table"
    );
}

fn score(messages: &[Labelled]) -> Score {
    let (mut true_out, mut false_out, mut missed_out) = (0, 0, 0);
    let mut wrong = Vec::new();
    for message in messages {
        let want = expected(&message.label);
        // Opt-in only exists for an opted-out customer; every other message must mean the
        // same whichever state the customer is in ("yes I want the XL" is never an opt-in).
        let states: &[bool] = if want == Some(ComplianceAction::OptIn) {
            &[true]
        } else {
            &[false, true]
        };
        for &opted_out in states {
            let got = detect_with_language(&message.text, opted_out);
            let action = got.map(|d| d.action);
            if !opted_out || want == Some(ComplianceAction::OptIn) {
                match (
                    want == Some(ComplianceAction::OptOut),
                    action == Some(ComplianceAction::OptOut),
                ) {
                    (true, true) => true_out += 1,
                    (false, true) => false_out += 1,
                    (true, false) => missed_out += 1,
                    (false, false) => {}
                }
            }
            if action != want {
                wrong.push(format!(
                    "{:?} (opted_out={opted_out}): want {}, got {action:?}",
                    message.text, message.label
                ));
                continue;
            }
            // A Spanish keyword is confirmed in Spanish.
            if let Some(found) = got.filter(|d| message.lang == "es" && d.language != Language::Spanish) {
                wrong.push(format!("{:?}: confirmed in {:?}", message.text, found.language));
            }
        }
    }
    Score {
        true_out,
        false_out,
        missed_out,
        wrong,
    }
}
