//! The durable scheduler: jobs kept in the database (`store::jobs`), polled on the injected
//! clock, each started once when due and sent through the one send path — so quiet hours,
//! caps and consent apply to a scheduled text exactly as to any other. A provider outage
//! retries a job with backoff, a bounded number of times; a send a crash cut off is never
//! retried (`unknown`, the same rule as replies).

use std::time::Duration;

use parley_core::{ConsentPurpose, Phone, RetryPolicy};
use serde::Deserialize;

use crate::service::{Service, ServiceError};
use crate::store::jobs::JobPayload;
use crate::store::{JobKind, JobOutcome, JobRow, JobStatus, MessageStatus, NewJob, SendPayload};

/// `[scheduler]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// How often due jobs are looked for: a job goes at most this long after its time.
    #[serde(
        default = "default_poll_every",
        deserialize_with = "parley_core::deserialize_duration"
    )]
    pub poll_every: Duration,
    /// Attempts after the first when the provider is unreachable.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The wait before the first of them; each later one doubles, up to `max_retry_delay`.
    #[serde(
        default = "default_retry_after",
        deserialize_with = "parley_core::deserialize_duration"
    )]
    pub retry_after: Duration,
    #[serde(
        default = "default_max_retry_delay",
        deserialize_with = "parley_core::deserialize_duration"
    )]
    pub max_retry_delay: Duration,
}

fn default_poll_every() -> Duration {
    Duration::from_secs(1)
}

fn default_max_retries() -> u32 {
    3
}

fn default_retry_after() -> Duration {
    Duration::from_secs(60)
}

fn default_max_retry_delay() -> Duration {
    Duration::from_secs(3600)
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            poll_every: default_poll_every(),
            max_retries: default_max_retries(),
            retry_after: default_retry_after(),
            max_retry_delay: default_max_retry_delay(),
        }
    }
}

impl SchedulerSettings {
    /// What is wrong with these settings, naming the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.poll_every.is_zero() {
            return Err(("scheduler.poll_every", "must be greater than zero".into()));
        }
        if self.max_retries > 20 {
            return Err(("scheduler.max_retries", "must be at most 20".into()));
        }
        if self.retry_after.is_zero() || self.max_retry_delay < self.retry_after {
            return Err((
                "scheduler.retry_after",
                "must be greater than zero and at most scheduler.max_retry_delay".into(),
            ));
        }
        Ok(())
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy::new(self.retry_after, self.max_retries).with_max_delay(self.max_retry_delay)
    }
}

/// The longest text a scheduled send may carry: ten GSM-7 segments.
pub const MAX_BODY_CHARS: usize = 1530;
/// How far ahead a send may be scheduled.
const MAX_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;
/// Jobs started per poll at most; the rest wait for the next one.
const BATCH: i64 = 256;

/// A send someone asks to schedule, before it is checked.
#[derive(Debug, Clone)]
pub struct SendRequest<'a> {
    pub to: &'a str,
    pub body: &'a str,
    pub purpose: ConsentPurpose,
    pub subject: Option<&'a str>,
    /// When; `None` is now.
    pub send_at_ms: Option<i64>,
    pub key: Option<&'a str>,
    pub created_by: Option<i64>,
}

/// Why a send cannot be scheduled: the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidSend {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidSend {
    InvalidSend {
        field,
        problem: problem.into(),
    }
}

/// Checks a send request and makes its payload (the phone in E.164). Pure.
pub fn check_send(request: &SendRequest<'_>, now_ms: i64) -> Result<(SendPayload, i64), InvalidSend> {
    let to = Phone::parse(request.to).map_err(|err| invalid("to", err.to_string()))?;
    let body = request.body.trim();
    if body.is_empty() {
        return Err(invalid("body", "must not be empty"));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(invalid(
            "body",
            format!("is longer than {MAX_BODY_CHARS} characters"),
        ));
    }
    if request.purpose == ConsentPurpose::Conversational {
        return Err(invalid(
            "purpose",
            "a scheduled text is marketing or transactional; conversational texts answer the customer's own",
        ));
    }
    let subject = request.subject.map(str::trim).filter(|s| !s.is_empty());
    if subject.is_some_and(|s| s.chars().count() > 100) {
        return Err(invalid("subject", "is longer than 100 characters"));
    }
    if let Some(key) = request.key
        && (key.trim().is_empty() || key.len() > 200)
    {
        return Err(invalid("key", "must be 1 to 200 characters"));
    }
    let due = request.send_at_ms.unwrap_or(now_ms);
    if due > now_ms.saturating_add(MAX_AHEAD_MS) {
        return Err(invalid("send_at", "is more than a year ahead"));
    }
    // A time already past means "as soon as possible", which a missed poll means anyway.
    Ok((
        SendPayload {
            to: to.as_str().to_owned(),
            body: body.to_owned(),
            purpose: request.purpose,
            subject: subject.map(str::to_owned),
            automated: false,
            flow_context: None,
        },
        due.max(now_ms),
    ))
}

/// A marketing text as it is sent: with the opt-out line at the end unless it already says
/// how to stop. The line is part of the stored body, so segment counts include it.
pub fn with_opt_out_line(body: &str) -> String {
    if has_opt_out_instruction(body) {
        body.to_owned()
    } else {
        format!("{} Reply STOP to opt out", body.trim_end())
    }
}

/// "Reply STOP to opt out", "Txt STOP to end", "text STOP", "responde BAJA", "to unsubscribe …":
/// a stop keyword after an instruction to send it, or an unsubscribe/opt-out wording.
fn has_opt_out_instruction(body: &str) -> bool {
    let words: Vec<String> = body
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let keyword = |w: &str| {
        matches!(
            w,
            "stop" | "end" | "quit" | "cancel" | "unsubscribe" | "baja" | "parar" | "alto"
        )
    };
    let instruction = |w: &str| {
        matches!(
            w,
            "reply" | "text" | "txt" | "send" | "msg" | "responde" | "responda" | "envia"
        )
    };
    words
        .windows(2)
        .any(|pair| instruction(&pair[0]) && keyword(&pair[1]))
        || words.windows(2).any(|pair| pair[0] == "opt" && pair[1] == "out")
        || words.iter().any(|w| w == "unsubscribe" || w == "optout")
}

impl Service {
    /// Schedules a send for `merchant_id`; the same `key` twice schedules one job (returned
    /// with `false`).
    pub async fn schedule_send(
        &self,
        merchant_id: &str,
        request: &SendRequest<'_>,
    ) -> Result<Result<(JobRow, bool), InvalidSend>, ServiceError> {
        let now = self.now();
        let (payload, due_at) = match check_send(request, now) {
            Ok(checked) => checked,
            Err(invalid) => return Ok(Err(invalid)),
        };
        Ok(Ok(self
            .schedule_job(
                merchant_id,
                JobPayload::Send(&payload),
                request.key,
                due_at,
                request.created_by,
            )
            .await?))
    }

    /// Schedules a checked job with the scheduler's attempt budget.
    pub(crate) async fn schedule_job(
        &self,
        merchant_id: &str,
        payload: JobPayload<'_>,
        key: Option<&str>,
        due_at: i64,
        created_by: Option<i64>,
    ) -> Result<(JobRow, bool), ServiceError> {
        let job = NewJob {
            merchant_id,
            payload,
            key,
            due_at,
            max_attempts: self.scheduler.max_retries + 1,
            created_by,
        };
        Ok(self.store.schedule_job(&job, self.now()).await?)
    }

    /// Starts every job due now and hands its message to the send path; returns how many
    /// started. Safe to run concurrently and after a crash: a job starts once.
    pub async fn run_due_jobs(self: &std::sync::Arc<Self>) -> Result<usize, ServiceError> {
        let now = self.now();
        let mut started = 0;
        for job in self.store.due_jobs(now, BATCH).await? {
            match job.kind {
                JobKind::Send => {
                    if let Some(message_id) = self.start_job(&job, now).await? {
                        self.spawn_deliver(message_id);
                        started += 1;
                    }
                }
                JobKind::Flow => {
                    self.run_flow_job(&job, now).await?;
                    started += 1;
                }
            }
        }
        Ok(started)
    }

    /// Makes a due job's message; `None` when it did not start (another poller took it, it
    /// was cancelled meanwhile, or its payload no longer reads).
    async fn start_job(&self, job: &JobRow, now: i64) -> Result<Option<i64>, ServiceError> {
        let id = job.id;
        // The payload was checked when scheduled; it is read here for the opt-out line.
        let payload: SendPayload = match serde_json::from_str(&job.payload) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(job = id, error = %err, "a job's payload is unreadable; failing it");
                self.store.fail_job(id, "unreadable payload", now).await?;
                return Ok(None);
            }
        };
        let body = if payload.purpose.is_marketing() {
            with_opt_out_line(&payload.body)
        } else {
            payload.body.clone()
        };
        Ok(self.store.start_send_job(id, &body, now).await?)
    }

    /// Settles the job a finished message was made for (no-op for other messages).
    pub(crate) async fn settle_job(
        &self,
        message_id: i64,
        status: MessageStatus,
        error: Option<&str>,
    ) -> Result<Option<JobStatus>, ServiceError> {
        let Some(outcome) = JobOutcome::of(status, error) else {
            return Ok(None);
        };
        let settled = self
            .store
            .settle_job(message_id, outcome, &self.scheduler.retry(), self.now())
            .await?;
        if settled == Some(JobStatus::Pending) {
            tracing::warn!(
                message_id,
                "the provider was unreachable; the scheduled send will be retried"
            );
        }
        Ok(settled)
    }

    /// Jobs whose message finished while the process died before the job was settled.
    pub(crate) async fn settle_left_jobs(&self) -> Result<usize, ServiceError> {
        let left = self.store.unsettled_jobs().await?;
        for (message_id, status, error) in &left {
            self.settle_job(*message_id, *status, error.as_deref()).await?;
        }
        Ok(left.len())
    }

    /// Polls for due jobs every `poll_every` until `stop` is cancelled.
    pub async fn poll_jobs_until(self: std::sync::Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.scheduler.poll_every) => {}
            }
            if let Err(err) = self.run_due_jobs().await {
                tracing::error!(error = %err, "running due jobs failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn request(to: &str, body: &str) -> SendRequest<'static> {
        SendRequest {
            to: Box::leak(to.to_owned().into_boxed_str()),
            body: Box::leak(body.to_owned().into_boxed_str()),
            purpose: ConsentPurpose::Marketing,
            subject: None,
            send_at_ms: None,
            key: None,
            created_by: None,
        }
    }

    #[test]
    fn a_send_request_is_checked_field_by_field() {
        let (payload, due) = check_send(&request("+1 (415) 555-0100", " Spring sale! "), NOW).unwrap();
        assert_eq!(payload.to, "+14155550100");
        assert_eq!(payload.body, "Spring sale!");
        assert_eq!(due, NOW);
        let field = |r: SendRequest<'_>| check_send(&r, NOW).unwrap_err().field;
        assert_eq!(field(request("415", "hi")), "to");
        assert_eq!(field(request("+14155550100", "  ")), "body");
        assert_eq!(
            field(request("+14155550100", &"x".repeat(MAX_BODY_CHARS + 1))),
            "body"
        );
        let mut conversational = request("+14155550100", "hi");
        conversational.purpose = ConsentPurpose::Conversational;
        assert_eq!(field(conversational), "purpose");
        let mut far = request("+14155550100", "hi");
        far.send_at_ms = Some(NOW + MAX_AHEAD_MS + 1);
        assert_eq!(field(far), "send_at");
        let mut past = request("+14155550100", "hi");
        past.send_at_ms = Some(NOW - 1000);
        assert_eq!(check_send(&past, NOW).unwrap().1, NOW, "a past time means now");
    }

    #[test]
    fn marketing_texts_end_with_the_opt_out_line_once() {
        assert_eq!(
            with_opt_out_line("20% off today only."),
            "20% off today only. Reply STOP to opt out"
        );
        for already in [
            "20% off! Reply STOP to opt out",
            "20% off! Txt STOP to end.",
            "20% off! Text END to quit",
            "Oferta: responde BAJA para salir",
            "20% off. To unsubscribe, visit the link",
            "20% off. Opt-out: reply stop",
        ] {
            assert_eq!(with_opt_out_line(already), already, "{already}");
        }
        // Words that only look like it.
        assert_eq!(
            with_opt_out_line("Don't stop now: 20% off"),
            "Don't stop now: 20% off Reply STOP to opt out"
        );
    }

    #[test]
    fn only_a_send_that_reached_nobody_is_retried() {
        let of = JobOutcome::of;
        assert!(matches!(
            of(MessageStatus::Failed, Some("unavailable")),
            Some(JobOutcome::Unreachable)
        ));
        // A request Twilio never answered may have gone: the job is unknown, never retried.
        assert!(matches!(
            of(MessageStatus::Unknown, Some("unanswered")),
            Some(JobOutcome::Unknown)
        ));
        assert!(matches!(of(MessageStatus::Queued, None), Some(JobOutcome::Sent)));
        assert!(matches!(
            of(MessageStatus::Failed, Some("21211")),
            Some(JobOutcome::Rejected("21211"))
        ));
        assert!(matches!(
            of(MessageStatus::Suppressed, Some("no_consent")),
            Some(JobOutcome::Refused(_))
        ));
        assert!(
            of(MessageStatus::Deferred, None).is_none(),
            "held for quiet hours: still running"
        );
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_the_cap() {
        let settings = SchedulerSettings::default();
        let waits: Vec<u64> = settings.retry().delays().map(|d| d.as_secs()).collect();
        assert_eq!(waits, [60, 120, 240]);
        assert!(
            SchedulerSettings {
                poll_every: Duration::ZERO,
                ..SchedulerSettings::default()
            }
            .validate()
            .is_err_and(|(key, _)| key == "scheduler.poll_every")
        );
        assert!(
            SchedulerSettings {
                retry_after: Duration::from_secs(7200),
                ..SchedulerSettings::default()
            }
            .validate()
            .is_err_and(|(key, _)| key == "scheduler.retry_after")
        );
    }
}
