//! The step planner: for one customer in one flow, given what has been sent and what the
//! store knows now, the next thing to do — send a step, wait until a time, or end — as a pure
//! function of its inputs and the injected time, so every timing and exit rule is tested by a
//! table.

use std::time::Duration;

use crate::flow::{Flow, Flows};

/// One customer's way through one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// When the trigger happened (ms): the first step's delay counts from here.
    pub started_at: i64,
    /// When each step sent so far went out (ms), in order.
    pub sent_at: Vec<i64>,
}

/// What the store knows about the customer when a step comes due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Consent for marketing (the outbox checks it again at the send).
    pub marketing_consent: bool,
    pub opted_out: bool,
    /// The customer is in an escalation a person has not resolved.
    pub in_open_escalation: bool,
    /// The goal happened after the trigger: the checkout completed or an order arrived (ends
    /// flows whose trigger [`ends_on_order`](crate::Trigger::ends_on_order)).
    pub ordered: bool,
    /// When the customer last texted the store (ms), if ever.
    pub last_customer_text_at: Option<i64>,
}

/// Why a flow ended for a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Every step was sent.
    Completed,
    OptedOut,
    NoConsent,
    /// The goal was reached (an order, the checkout completed).
    Ordered,
    /// A person is handling the customer.
    Escalated,
    /// The customer replied and the agent has the conversation.
    Replied,
    /// The flow was switched off or removed.
    Disabled,
}

impl Exit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::OptedOut => "opted_out",
            Self::NoConsent => "no_consent",
            Self::Ordered => "ordered",
            Self::Escalated => "escalated",
            Self::Replied => "replied",
            Self::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send step `step` (0-based) now; its offer, if any, holds until `offer_expires_at`.
    Send {
        step: usize,
        offer_expires_at: Option<i64>,
    },
    /// Nothing yet: ask again at this time (ms).
    WaitUntil(i64),
    Exit(Exit),
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The next thing to do for `progress` in `flow` at `now`.
///
/// Order matters: an opt-out and a missing consent end the flow before anything else; the
/// goal reached ends it before a reply does (the customer bought: nothing more to say); a
/// reply ends it unless the flow resumes after replies, and even then no step goes out within
/// `pause_after_customer_text` of the customer's last text.
pub fn next(flows: &Flows, flow: &Flow, progress: &Progress, facts: &Facts, now: i64) -> Next {
    if !flow.enabled {
        return Next::Exit(Exit::Disabled);
    }
    if facts.opted_out {
        return Next::Exit(Exit::OptedOut);
    }
    if !facts.marketing_consent {
        return Next::Exit(Exit::NoConsent);
    }
    if facts.ordered && flow.trigger.ends_on_order() {
        return Next::Exit(Exit::Ordered);
    }
    if facts.in_open_escalation {
        return Next::Exit(Exit::Escalated);
    }
    // Strictly after: the text that started the flow (a JOIN) is not a reply to it.
    let replied = facts
        .last_customer_text_at
        .is_some_and(|at| at > progress.started_at);
    if replied && !flow.resume_after_reply {
        return Next::Exit(Exit::Replied);
    }
    let done = progress.sent_at.len();
    let Some(step) = flow.steps.get(done) else {
        return Next::Exit(Exit::Completed);
    };
    let anchor = progress.sent_at.last().copied().unwrap_or(progress.started_at);
    let mut due = anchor.saturating_add(ms(step.delay));
    if let Some(at) = facts.last_customer_text_at {
        due = due.max(at.saturating_add(ms(flows.pause_after_customer_text)));
    }
    if now < due {
        return Next::WaitUntil(due);
    }
    Next::Send {
        step: done,
        offer_expires_at: step
            .offer
            .as_ref()
            .and(step.offer_valid_for)
            .map(|valid| now.saturating_add(ms(valid))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const M: i64 = 60_000;
    const T0: i64 = 1_800_000_000_000;

    fn consenting() -> Facts {
        Facts {
            marketing_consent: true,
            ..Facts::default()
        }
    }

    fn progress(sent_hours: &[i64]) -> Progress {
        Progress {
            started_at: T0,
            sent_at: sent_hours.iter().map(|h| T0 + h * H).collect(),
        }
    }

    fn cart_flows(resume: bool) -> Flows {
        let text = format!(
            r#"
            [[flow]]
            id = "cart_recovery"
            trigger = "checkout_abandoned"
            resume_after_reply = {resume}
            [[flow.step]]
            delay = "2h"
            template = "Questions about {{{{ product }}}}?"
            [[flow.step]]
            delay = "24h"
            offer = "FREESHIP"
            template = "Free shipping with {{{{ offer.code }}}}?"
            [[flow.step]]
            delay = "48h"
            offer = "SAVE15"
            offer_valid_for = "24h"
            template = "{{{{ offer.code }}}} ends {{{{ offer.expires }}}}. Ready?"
            "#
        );
        Flows::load(&text, &["FREESHIP", "SAVE15"]).unwrap()
    }

    #[test]
    fn cart_recovery_timing_and_offer_progression() {
        let flows = cart_flows(false);
        let flow = flows.get("cart_recovery").unwrap();
        let facts = consenting();
        // (steps sent at hours after the trigger, now in hours, expected)
        let table: &[(&[i64], i64, Next)] = &[
            (&[], 0, Next::WaitUntil(T0 + 2 * H)),
            (&[], 1, Next::WaitUntil(T0 + 2 * H)),
            (
                &[],
                2,
                Next::Send {
                    step: 0,
                    offer_expires_at: None,
                },
            ),
            // Sent late (quiet hours deferred it): the next delay counts from the send.
            (&[5], 6, Next::WaitUntil(T0 + 29 * H)),
            (
                &[2],
                26,
                Next::Send {
                    step: 1,
                    offer_expires_at: None,
                },
            ),
            (&[2, 26], 73, Next::WaitUntil(T0 + 74 * H)),
            (
                &[2, 26],
                74,
                Next::Send {
                    step: 2,
                    offer_expires_at: Some(T0 + 98 * H),
                },
            ),
            (&[2, 26, 74], 200, Next::Exit(Exit::Completed)),
        ];
        for (sent, now, expected) in table {
            let got = next(&flows, flow, &progress(sent), &facts, T0 + now * H);
            assert_eq!(&got, expected, "sent at {sent:?}, now +{now}h");
        }
        let offers: Vec<Option<&str>> = flow.steps.iter().map(|s| s.offer.as_deref()).collect();
        assert_eq!(offers, [None, Some("FREESHIP"), Some("SAVE15")]);
    }

    #[test]
    fn exits_come_in_order_and_at_any_point() {
        let flows = cart_flows(false);
        let flow = flows.get("cart_recovery").unwrap();
        let after_one = progress(&[2]);
        let now = T0 + 30 * H;
        let with = |change: &dyn Fn(&mut Facts)| {
            let mut facts = consenting();
            change(&mut facts);
            next(&flows, flow, &after_one, &facts, now)
        };
        let table: &[(&str, Next)] = &[
            ("stop", with(&|f| f.opted_out = true)),
            ("no consent", with(&|f| f.marketing_consent = false)),
            ("ordered", with(&|f| f.ordered = true)),
            ("escalated", with(&|f| f.in_open_escalation = true)),
            ("replied", with(&|f| f.last_customer_text_at = Some(T0 + 3 * H))),
            // STOP wins over everything else at once.
            (
                "stop and ordered",
                with(&|f| {
                    f.opted_out = true;
                    f.ordered = true;
                }),
            ),
            // An order ends it even though the customer also replied.
            (
                "ordered and replied",
                with(&|f| {
                    f.ordered = true;
                    f.last_customer_text_at = Some(T0 + 3 * H);
                }),
            ),
            // A text from before this flow began is not a reply to it.
            ("old text", with(&|f| f.last_customer_text_at = Some(T0 - 48 * H))),
            // Nor is the text that started it.
            (
                "the trigger's text",
                with(&|f| f.last_customer_text_at = Some(T0)),
            ),
        ];
        let expected = [
            Next::Exit(Exit::OptedOut),
            Next::Exit(Exit::NoConsent),
            Next::Exit(Exit::Ordered),
            Next::Exit(Exit::Escalated),
            Next::Exit(Exit::Replied),
            Next::Exit(Exit::OptedOut),
            Next::Exit(Exit::Ordered),
            Next::Send {
                step: 1,
                offer_expires_at: None,
            },
            Next::Send {
                step: 1,
                offer_expires_at: None,
            },
        ];
        assert_eq!(table.len(), expected.len());
        for ((name, got), want) in table.iter().zip(expected) {
            assert_eq!(got, &want, "{name}");
        }
    }

    #[test]
    fn a_flow_that_resumes_after_a_reply_waits_out_the_pause() {
        let flows = cart_flows(true);
        let flow = flows.get("cart_recovery").unwrap();
        let mut facts = consenting();
        // Step 2 is due at +26h; the customer texted at +25h50m: wait until the pause ends.
        facts.last_customer_text_at = Some(T0 + 25 * H + 50 * M);
        let got = next(&flows, flow, &progress(&[2]), &facts, T0 + 26 * H);
        assert_eq!(got, Next::WaitUntil(T0 + 26 * H + 20 * M));
        let got = next(&flows, flow, &progress(&[2]), &facts, T0 + 26 * H + 20 * M);
        assert!(matches!(got, Next::Send { step: 1, .. }), "{got:?}");
        // Without the pause in the way, the step's own time rules.
        facts.last_customer_text_at = Some(T0 + 3 * H);
        let got = next(&flows, flow, &progress(&[2]), &facts, T0 + 25 * H);
        assert_eq!(got, Next::WaitUntil(T0 + 26 * H));
    }

    #[test]
    fn a_disabled_flow_and_goals_that_do_not_end_a_flow() {
        let flows = Flows::builtin();
        let upsell = flows.get("upsell").unwrap();
        let got = next(&flows, upsell, &progress(&[]), &consenting(), T0);
        assert_eq!(got, Next::Exit(Exit::Disabled));
        // Another order does not end a feedback request: it is about the delivered one.
        let feedback = flows.get("feedback").unwrap();
        let facts = Facts {
            ordered: true,
            ..consenting()
        };
        let got = next(&flows, feedback, &progress(&[]), &facts, T0 + 72 * H);
        assert!(matches!(got, Next::Send { step: 0, .. }), "{got:?}");
        let got = next(&flows, feedback, &progress(&[]), &facts, T0 + 71 * H);
        assert_eq!(got, Next::WaitUntil(T0 + 72 * H));
    }
}
