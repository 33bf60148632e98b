//! The jobs table: work due at a time (today a scheduled text; flows add their steps), taken
//! once when due, and settled from the outcome of the message it made.
//!
//! At most one send per job: a job's message is made in the same transaction that moves the
//! job to `running`, and a job goes back to `pending` (a later attempt, a new message) only
//! when its message definitely did not go — the provider was unreachable (`failed` with
//! `unavailable`). A send a crash cut off is `unknown`, and so is its job: never retried.

use serde::Serialize;
use sqlx::{FromRow as _, Row as _};

use super::{Author, MessageStatus, Result, Store, StoreError};

/// What a job does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, strum::IntoStaticStr, utoipa::ToSchema,
)]
#[sqlx(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobKind {
    /// Text one customer (payload: `SendPayload`).
    Send,
    /// Decide a flow enrollment's next step (payload: `FlowPayload`): send it (as a `send`
    /// job), wait, or end the enrollment. Deciding twice decides the same, so a crash before
    /// the job is marked done only repeats a decision.
    Flow,
}

/// A `flow` job's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FlowPayload {
    pub enrollment: i64,
}

/// What a job carries, by kind.
#[derive(Debug, Clone, Copy)]
pub enum JobPayload<'a> {
    Send(&'a SendPayload),
    Flow(FlowPayload),
}

impl JobPayload<'_> {
    fn kind(self) -> JobKind {
        match self {
            Self::Send(_) => JobKind::Send,
            Self::Flow(_) => JobKind::Flow,
        }
    }

    fn json(self) -> serde_json::Result<String> {
        match self {
            Self::Send(payload) => serde_json::to_string(payload),
            Self::Flow(payload) => serde_json::to_string(&payload),
        }
    }
}

/// Where a job is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    sqlx::Type,
    strum::IntoStaticStr,
    utoipa::ToSchema,
)]
#[sqlx(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its due time (or for its next attempt).
    Pending,
    /// Its message is made and on the send path (possibly deferred by quiet hours).
    Running,
    /// The provider took the message.
    Done,
    /// The provider rejected it, or stayed unreachable through every attempt.
    Failed,
    /// The send policy refused it (no consent for the purpose, no allowed time).
    Refused,
    /// A crash cut the send off: it may or may not have gone, so it is never retried.
    Unknown,
    /// Cancelled by a person before it was due.
    Cancelled,
}

/// A `send` job's payload: what to text, to whom, for what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SendPayload {
    /// E.164.
    pub to: String,
    pub body: String,
    pub purpose: parley_core::ConsentPurpose,
    /// What the text is about, for the same-subject limit (a campaign's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Sent by a flow rather than written by a person: the message is the store's automated
    /// voice (`ai`), not `human`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automated: bool,
    /// A flow's message: what it is about (JSON, `flows::FlowMessageContext`), kept on the
    /// message for the reply that answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_context: Option<String>,
}

/// A job to schedule.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub merchant_id: &'a str,
    pub payload: JobPayload<'a>,
    pub key: Option<&'a str>,
    pub due_at: i64,
    pub max_attempts: u32,
    pub created_by: Option<i64>,
}

/// A stored job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub kind: JobKind,
    pub payload: String,
    pub key: Option<String>,
    pub due_at: i64,
    pub status: JobStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub message_id: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const JOB_COLUMNS: &str = "id, kind, payload, key, due_at, status, attempts, max_attempts, message_id, last_error, created_at, updated_at";

impl Store {
    /// Schedules a job. With a key already used by this merchant, nothing new is written and
    /// the existing job is returned with `false`.
    pub async fn schedule_job(&self, job: &NewJob<'_>, now: i64) -> Result<(JobRow, bool)> {
        let payload = job.payload.json()?;
        let kind = job.payload.kind();
        let inserted = self
            .guard(async move {
                let id: Option<i64> = sqlx::query(
                    "INSERT INTO jobs (merchant_id, kind, payload, key, due_at, status, max_attempts, created_by,
                     created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)
                     ON CONFLICT (merchant_id, key) DO NOTHING RETURNING id",
                )
                .bind(job.merchant_id)
                .bind(kind)
                .bind(&payload)
                .bind(job.key)
                .bind(job.due_at)
                .bind(i64::from(job.max_attempts))
                .bind(job.created_by)
                .bind(now)
                .bind(now)
                .fetch_optional(&self.writer)
                .await?
                .map(|row| row.get("id"));
                Ok(id)
            })
            .await?;
        // Read on the writer: the job was committed by it a moment ago.
        let row = match (inserted, job.key) {
            (Some(id), _) => {
                sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
                    .bind(id)
                    .fetch_one(&self.writer)
                    .await?
            }
            (None, Some(key)) => {
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE merchant_id = ? AND key = ?"
                ))
                .bind(job.merchant_id)
                .bind(key)
                .fetch_one(&self.writer)
                .await?
            }
            // Without a key there is no conflict to lose the insert to.
            (None, None) => return Err(StoreError::NotFound("job")),
        };
        Ok((JobRow::from_row(&row)?, inserted.is_some()))
    }

    /// One merchant's job; another merchant's id is `None`.
    pub async fn job(&self, merchant_id: &str, id: i64) -> Result<Option<JobRow>> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE merchant_id = ? AND id = ?"
        ))
        .bind(merchant_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(JobRow::from_row).transpose()?)
    }

    /// A merchant's jobs, newest first, optionally of one status.
    pub async fn jobs(
        &self,
        merchant_id: &str,
        status: Option<JobStatus>,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE merchant_id = ? AND (? IS NULL OR status = ?)
             ORDER BY id DESC LIMIT ?"
        ))
        .bind(merchant_id)
        .bind(status)
        .bind(status)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(JobRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Cancels a job that has not started; `None` for no such job, `Some(false)` when it
    /// already has (its row says where it is).
    pub async fn cancel_job(&self, merchant_id: &str, id: i64, now: i64) -> Result<Option<bool>> {
        let changed = self
            .guard(async move {
                Ok(sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', updated_at = ?
                     WHERE merchant_id = ? AND id = ? AND status = 'pending'",
                )
                .bind(now)
                .bind(merchant_id)
                .bind(id)
                .execute(&self.writer)
                .await?
                .rows_affected())
            })
            .await?;
        if changed > 0 {
            return Ok(Some(true));
        }
        Ok(self.job(merchant_id, id).await?.map(|_| false))
    }

    /// Pending jobs due by `now`, soonest first, at most `limit`.
    pub async fn due_jobs(&self, now: i64, limit: i64) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(JobRow::from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Starts a due `send` job: in one transaction the job moves to `running` (one more
    /// attempt) and its outbound message is made in the customer's conversation. Returns the
    /// message to deliver; `None` when the job is not pending and due (another poller took it,
    /// or it was cancelled).
    pub async fn start_send_job(&self, id: i64, body: &str, now: i64) -> Result<Option<i64>> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let row = sqlx::query(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ?
                 WHERE id = ? AND status = 'pending' AND due_at <= ? AND kind = 'send'
                 RETURNING merchant_id, payload, created_by",
            )
            .bind(now)
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let merchant_id: String = row.get("merchant_id");
            let payload: SendPayload = serde_json::from_str(&row.get::<String, _>("payload"))?;
            let created_by: Option<i64> = row.get("created_by");
            let (_, conversation_id) =
                super::inbound::customer_and_conversation(&mut tx, &merchant_id, &payload.to, now).await?;
            // A text a person scheduled is theirs; `human` is who wrote it. A flow's is the
            // store's automated voice.
            let author = if payload.automated {
                Author::Ai
            } else {
                Author::Human
            };
            let message_id = super::outbound::insert_outbound(
                &mut tx,
                &merchant_id,
                conversation_id,
                author,
                body,
                None,
                created_by,
                now,
            )
            .await?;
            sqlx::query(
                "UPDATE messages SET purpose = ?, subject = ?, job_id = ?, flow_context = ? WHERE id = ?",
            )
            .bind(<&str>::from(payload.purpose))
            .bind(&payload.subject)
            .bind(id)
            .bind(&payload.flow_context)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE jobs SET message_id = ? WHERE id = ?")
                .bind(message_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(message_id))
        })
        .await
    }

    /// Marks a due `flow` job done once its decision is acted on; `false` if it was not
    /// pending (cancelled meanwhile, or done by another poller).
    pub async fn finish_flow_job(&self, id: i64, now: i64) -> Result<bool> {
        self.write_changed(
            sqlx::query(
                "UPDATE jobs SET status = 'done', attempts = attempts + 1, updated_at = ?
                 WHERE id = ? AND status = 'pending' AND kind = 'flow'",
            )
            .bind(now)
            .bind(id),
        )
        .await
    }

    /// Fails a due job that cannot start (its payload no longer reads); it is not retried.
    pub async fn fail_job(&self, id: i64, error: &str, now: i64) -> Result<()> {
        self.guard(async move {
            sqlx::query(
                "UPDATE jobs SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// Running jobs whose message is already final: a crash between the message's outcome
    /// and the job's left them behind (start-up settles them).
    pub async fn unsettled_jobs(&self) -> Result<Vec<(i64, MessageStatus, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT m.id, m.status, m.error_code FROM jobs j JOIN messages m ON m.id = j.message_id
             WHERE j.status = 'running' AND m.status NOT IN ('pending', 'sending', 'deferred')",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((row.get("id"), row.try_get("status")?, row.get("error_code"))))
            .collect()
    }

    /// Settles the job of `message_id` (if it is running) from the message's outcome:
    /// taken by the provider → done; refused by the policy → refused; cut off → unknown;
    /// rejected → failed; the provider unreachable → pending again after `retry`'s next wait
    /// while attempts remain, else failed. Returns the job's new status.
    pub async fn settle_job(
        &self,
        message_id: i64,
        outcome: JobOutcome<'_>,
        retry: &parley_core::RetryPolicy,
        now: i64,
    ) -> Result<Option<JobStatus>> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let job = sqlx::query(
                "SELECT id, attempts, max_attempts FROM jobs WHERE message_id = ? AND status = 'running'",
            )
            .bind(message_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(job) = job else { return Ok(None) };
            let attempts: i64 = job.get("attempts");
            let max_attempts: i64 = job.get("max_attempts");
            let (status, due_at, error) = match outcome {
                JobOutcome::Sent => (JobStatus::Done, None, None),
                JobOutcome::Refused(reason) => (JobStatus::Refused, None, Some(reason)),
                JobOutcome::Unknown => (JobStatus::Unknown, None, Some("interrupted")),
                JobOutcome::Rejected(code) => (JobStatus::Failed, None, Some(code)),
                JobOutcome::Unreachable => {
                    let wait = usize::try_from(attempts - 1)
                        .ok()
                        .and_then(|retry_number| retry.delays().nth(retry_number))
                        .filter(|_| attempts < max_attempts);
                    match wait {
                        Some(wait) => {
                            let wait = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                            (
                                JobStatus::Pending,
                                Some(now.saturating_add(wait)),
                                Some("unavailable"),
                            )
                        }
                        None => (JobStatus::Failed, None, Some("unavailable")),
                    }
                }
            };
            sqlx::query(
                "UPDATE jobs SET status = ?, due_at = COALESCE(?, due_at), last_error = ?, updated_at = ?
                 WHERE id = ?",
            )
            .bind(status)
            .bind(due_at)
            .bind(error)
            .bind(now)
            .bind(job.get::<i64, _>("id"))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(status))
        })
        .await
    }
}

/// What became of a job's message.
#[derive(Debug, Clone, Copy)]
pub enum JobOutcome<'a> {
    Sent,
    Refused(&'a str),
    Unknown,
    Rejected(&'a str),
    /// The provider could not be reached: the message surely did not go.
    Unreachable,
}

impl<'a> JobOutcome<'a> {
    /// The outcome a message's final status and error code mean for its job; `None` while
    /// the message is still on its way.
    pub fn of(status: MessageStatus, error: Option<&'a str>) -> Option<Self> {
        use MessageStatus::*;
        Some(match status {
            Pending | Sending | Deferred | Received | Processed => return None,
            Suppressed => JobOutcome::Refused(error.unwrap_or("refused")),
            Unknown => JobOutcome::Unknown,
            Failed if error == Some("unavailable") => JobOutcome::Unreachable,
            Failed | Undelivered | Canceled => JobOutcome::Rejected(error.unwrap_or("rejected")),
            reached if reached.reached_provider() => JobOutcome::Sent,
            _ => return None,
        })
    }
}
