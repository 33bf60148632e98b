//! The outbox: the one question every send asks before it leaves — `may_send` (consent for
//! the purpose, quiet hours, caps) over what the store knows about the recipient — and what
//! is done with the answer: send, wait for the first allowed minute (`deferred`, picked up by
//! the sweeper, restart-safe because the due time is in the row), or refuse with the reason.
//! Every answer is recorded in `send_decisions`.

use parley_core::send_policy::{
    Caps, MarketingConsent, Outgoing, Policy, QuietHours, Recipient, SentMarketing,
};
use parley_core::{ConsentPurpose, Phone, TimeZoneName, Verdict};
use serde::Deserialize;

use crate::service::{Service, ServiceError};
use crate::store::{Author, OutboundJob, SendDecision};

/// The merchant-independent part of the send policy, from `[outbox]`.
#[derive(Debug, Clone)]
pub struct SendRules {
    pub quiet_hours: QuietHours,
    pub caps: Caps,
    pub conversational_quiet_hours: bool,
    /// What the program's compliance texts (HELP, the JOIN confirmation) say of its frequency.
    pub message_frequency: Option<String>,
}

impl Default for SendRules {
    fn default() -> Self {
        Self {
            quiet_hours: QuietHours::builtin(),
            caps: Caps::default(),
            conversational_quiet_hours: false,
            message_frequency: None,
        }
    }
}

/// `[outbox]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// Hold replies to a customer's own texts to quiet hours too (off: a reply is not marketing).
    #[serde(default)]
    pub conversational_quiet_hours: bool,
    /// Marketing texts per customer per rolling 24 hours / 7 days; absent: no cap.
    #[serde(default)]
    pub max_marketing_per_day: Option<u32>,
    #[serde(default)]
    pub max_marketing_per_week: Option<u32>,
    /// Windows and same-subject limits added to the built-in table (they can only narrow it).
    #[serde(default)]
    pub quiet_hours: QuietHours,
    /// How often the marketing program texts, as HELP and the JOIN confirmation say it
    /// ("2-4 msgs/month"); absent: "Msg frequency varies".
    #[serde(default)]
    pub message_frequency: Option<String>,
}

impl OutboxSettings {
    /// What is wrong with these settings, naming the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_marketing_per_day == Some(0) {
            return Err(("outbox.max_marketing_per_day", "must be at least 1".into()));
        }
        if self.max_marketing_per_week == Some(0) {
            return Err(("outbox.max_marketing_per_week", "must be at least 1".into()));
        }
        if let Some(frequency) = &self.message_frequency
            && (frequency.trim().is_empty() || frequency.chars().count() > 40)
        {
            return Err((
                "outbox.message_frequency",
                "must be 1 to 40 characters, e.g. \"2-4 msgs/month\"".into(),
            ));
        }
        self.quiet_hours
            .validate()
            .map_err(|err| ("outbox.quiet_hours", err.to_string()))
    }

    pub fn rules(&self) -> SendRules {
        SendRules {
            quiet_hours: QuietHours::builtin().extended(self.quiet_hours.clone()),
            caps: Caps {
                per_day: self.max_marketing_per_day,
                per_week: self.max_marketing_per_week,
            },
            conversational_quiet_hours: self.conversational_quiet_hours,
            message_frequency: self.message_frequency.as_ref().map(|f| f.trim().to_owned()),
        }
    }
}

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

impl Service {
    /// Asks the send policy about a taken message and records the answer.
    pub(crate) async fn send_verdict(&self, job: &OutboundJob) -> Result<Verdict, ServiceError> {
        let now = self.now();
        let verdict = match Phone::parse(&job.to) {
            Ok(phone) => self.verdict_for(job, &phone, now).await?,
            // Stored numbers are E.164 by construction; one that is not is nobody to text.
            Err(_) => Verdict::Refuse(parley_core::send_policy::RefuseReason::NoAllowedTime),
        };
        let (word, reason, until) = match verdict {
            Verdict::Allow => ("allow", None, None),
            Verdict::Defer { until_ms, reason } => ("defer", Some(<&str>::from(reason)), Some(until_ms)),
            Verdict::Refuse(reason) => ("refuse", Some(<&str>::from(reason)), None),
        };
        let purpose: &str = if job.author == Author::Compliance {
            "compliance"
        } else {
            job.purpose.into()
        };
        self.store
            .record_send_decision(
                &SendDecision {
                    merchant_id: &job.merchant_id,
                    message_id: job.id,
                    phone: &job.to,
                    purpose,
                    verdict: word,
                    reason,
                    until,
                },
                now,
            )
            .await?;
        Ok(verdict)
    }

    async fn verdict_for(&self, job: &OutboundJob, phone: &Phone, now: i64) -> Result<Verdict, ServiceError> {
        let rules = &self.send_rules;
        let recent = if job.purpose == ConsentPurpose::Marketing {
            self.store
                .recent_marketing(&job.merchant_id, &job.to, now - WEEK_MS)
                .await?
        } else {
            Vec::new()
        };
        let recent: Vec<SentMarketing<'_>> = recent
            .iter()
            .map(|(at_ms, subject)| SentMarketing {
                at_ms: *at_ms,
                subject: subject.as_deref(),
            })
            .collect();
        let zone = job.time_zone.as_deref().and_then(|z| TimeZoneName::parse(z).ok());
        let merchant_zone = job
            .merchant_zone
            .as_deref()
            .and_then(|z| TimeZoneName::parse(z).ok())
            .unwrap_or_else(|| TimeZoneName::parse("UTC").expect("UTC is a zone"));
        let policy = Policy {
            quiet_hours: rules.quiet_hours.clone(),
            caps: rules.caps,
            merchant_zone,
            conversational_quiet_hours: rules.conversational_quiet_hours,
        };
        let marketing = match job.marketing.as_str() {
            "confirmed" => MarketingConsent::Confirmed,
            "awaiting_confirmation" => MarketingConsent::AwaitingConfirmation,
            _ => MarketingConsent::None,
        };
        let recipient = Recipient {
            phone,
            opted_out: job.opted_out,
            marketing,
            ship_to_region: job.ship_to_region.as_deref(),
            zone: zone.as_ref(),
            recent_marketing: &recent,
        };
        let message = Outgoing {
            purpose: job.purpose,
            compliance: job.author == Author::Compliance,
            subject: job.subject.as_deref(),
            not_after_ms: None,
        };
        Ok(policy.may_send(&recipient, &message, now))
    }
}
