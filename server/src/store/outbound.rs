//! Outbound messages: taking one for the channel, recording what the provider said, and status callbacks that only move forward.

use parley_core::ConsentPurpose;
use sqlx::{FromRow as _, Row};

use super::{Author, Direction, MessageRow, MessageStatus, Result, Store};

/// An outbound message ready for the channel.
#[derive(Debug, Clone)]
pub struct OutboundJob {
    pub id: i64,
    pub merchant_id: String,
    pub to: String,
    pub from: Option<String>,
    pub body: String,
    pub author: Author,
    pub opted_out: bool,
    /// What the send policy needs about the text and the recipient.
    pub purpose: ConsentPurpose,
    pub subject: Option<String>,
    /// `none`, `awaiting_confirmation` or `confirmed`.
    pub marketing: String,
    pub ship_to_region: Option<String>,
    pub time_zone: Option<String>,
    pub merchant_zone: Option<String>,
    /// The scheduled job this message was made for, whose status follows its outcome.
    pub job_id: Option<i64>,
}

/// One `may_send` answer, for the record.
#[derive(Debug, Clone)]
pub struct SendDecision<'a> {
    pub merchant_id: &'a str,
    pub message_id: i64,
    pub phone: &'a str,
    pub purpose: &'a str,
    /// `allow`, `defer` or `refuse`.
    pub verdict: &'static str,
    pub reason: Option<&'a str>,
    pub until: Option<i64>,
}

/// A recorded send decision, as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SendDecisionRow {
    pub id: i64,
    pub merchant_id: String,
    pub message_id: i64,
    pub phone: String,
    pub purpose: String,
    pub verdict: String,
    pub reason: Option<String>,
    pub until: Option<i64>,
    pub decided_at: i64,
}

impl MessageStatus {
    /// How far along an outbound message is: a late callback never moves a message backwards
    /// (Twilio does not promise callback order, and replays happen).
    fn outbound_rank(self) -> u8 {
        use MessageStatus::*;
        match self {
            Received | Processed | Pending | Deferred | Suppressed | Unknown => 0,
            Sending => 1,
            Accepted | Scheduled | Queued => 2,
            SendingProvider => 3,
            Sent => 4,
            Delivered | Undelivered | Failed | Canceled => 5,
            Read => 6,
        }
    }

    /// Whether a stored status may still change to `next`: final ones are final, so a
    /// replayed "undelivered" cannot flip a delivered message. Only `read` may follow
    /// `delivered`.
    pub fn may_move_to(self, next: MessageStatus) -> bool {
        use MessageStatus::*;
        match self {
            Delivered => next == Read,
            Undelivered | Failed | Canceled | Read | Suppressed | Unknown => false,
            _ => next.outbound_rank() > self.outbound_rank(),
        }
    }
}

impl Store {
    /// Outbound messages never handed to the channel, last touched before `before`.
    pub async fn pending_outbound(&self, before: i64) -> Result<Vec<i64>> {
        self.stalled(Direction::Out, MessageStatus::Pending, before).await
    }

    /// Sends that were in flight when the process died have an unknown outcome: marking them
    /// `unknown` (for a person to check) rather than resending keeps "never answered twice".
    pub async fn mark_interrupted_sends(&self, now: i64) -> Result<u64> {
        self.guard(async move {
            Ok(sqlx::query(
                "UPDATE messages SET status = 'unknown', error_code = 'interrupted', updated_at = ?
             WHERE direction = 'out' AND status = 'sending'",
            )
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected())
        })
        .await
    }

    /// Takes a pending outbound message, or a deferred one now due, for sending (-> sending);
    /// `None` when another task already took it or it is neither.
    pub async fn take_outbound(&self, id: i64, now: i64) -> Result<Option<OutboundJob>> {
        self.guard(async move {
            let taken = sqlx::query(
                "UPDATE messages SET status = 'sending', updated_at = ? WHERE id = ?
                 AND (status = 'pending' OR (status = 'deferred' AND due_at <= ?))",
            )
            .bind(now)
            .bind(id)
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected();
            if taken == 0 {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT m.id, m.merchant_id, m.body, m.author, m.purpose, m.subject, m.job_id, cu.phone, cu.opted_out,
                    cu.marketing, cu.ship_to_region, cu.time_zone, me.sms_number, me.timezone
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             JOIN customers cu ON cu.id = c.customer_id JOIN merchants me ON me.id = m.merchant_id
             WHERE m.id = ?",
            )
            .bind(id)
            .fetch_one(&self.writer)
            .await?;
            Ok(Some(OutboundJob {
                id: row.get("id"),
                merchant_id: row.get("merchant_id"),
                to: row.get("phone"),
                from: row.get("sms_number"),
                body: row.get("body"),
                author: row.try_get("author")?,
                opted_out: row.get("opted_out"),
                // The column's CHECK admits only the three purposes.
                purpose: row
                    .get::<String, _>("purpose")
                    .parse()
                    .unwrap_or(ConsentPurpose::Conversational),
                subject: row.get("subject"),
                marketing: row.get("marketing"),
                ship_to_region: row.get("ship_to_region"),
                time_zone: row.get("time_zone"),
                merchant_zone: row.get("timezone"),
                job_id: row.get("job_id"),
            }))
        })
        .await
    }

    /// Puts a taken message back to wait until `until` (sending -> deferred).
    pub async fn defer_outbound(&self, id: i64, until: i64, now: i64) -> Result<()> {
        self.guard(async move {
            sqlx::query(
                "UPDATE messages SET status = 'deferred', due_at = ?, updated_at = ?
                 WHERE id = ? AND status = 'sending'",
            )
            .bind(until)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// Deferred messages whose time has come.
    pub async fn due_deferred(&self, now: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id FROM messages WHERE status = 'deferred' AND due_at <= ? ORDER BY due_at, id",
        )
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|row| row.get("id")).collect())
    }

    /// Marketing texts handed to the provider for this customer since `since`, with their
    /// subjects: what the caps count.
    pub async fn recent_marketing(
        &self,
        merchant_id: &str,
        phone: &str,
        since: i64,
    ) -> Result<Vec<(i64, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT m.updated_at, m.subject FROM messages m
             JOIN conversations c ON c.id = m.conversation_id
             JOIN customers cu ON cu.id = c.customer_id
             WHERE m.merchant_id = ? AND cu.phone = ? AND m.direction = 'out'
               AND m.purpose = 'marketing' AND m.updated_at > ?
               AND m.status NOT IN ('pending', 'deferred', 'suppressed', 'failed')",
        )
        .bind(merchant_id)
        .bind(phone)
        .bind(since)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get("updated_at"), row.get("subject")))
            .collect())
    }

    /// Records what the send policy answered (append-only).
    pub async fn record_send_decision(&self, decision: &SendDecision<'_>, now: i64) -> Result<()> {
        self.guard(async move {
            sqlx::query(
                "INSERT INTO send_decisions (merchant_id, message_id, phone, purpose, verdict, reason, until,
                 decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(decision.merchant_id)
            .bind(decision.message_id)
            .bind(decision.phone)
            .bind(decision.purpose)
            .bind(decision.verdict)
            .bind(decision.reason)
            .bind(decision.until)
            .bind(now)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// The recorded send decisions for one message, oldest first.
    pub async fn send_decisions(&self, message_id: i64) -> Result<Vec<SendDecisionRow>> {
        Ok(sqlx::query_as::<_, SendDecisionRow>(
            "SELECT * FROM send_decisions WHERE message_id = ? ORDER BY id",
        )
        .bind(message_id)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Every send decision for one merchant, oldest first (the CSV export).
    pub async fn merchant_send_decisions(&self, merchant_id: &str) -> Result<Vec<SendDecisionRow>> {
        Ok(sqlx::query_as::<_, SendDecisionRow>(
            "SELECT * FROM send_decisions WHERE merchant_id = ? ORDER BY decided_at, id",
        )
        .bind(merchant_id)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn finish_outbound(
        &self,
        id: i64,
        status: MessageStatus,
        provider_sid: Option<&str>,
        error_code: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.guard(async move {
            sqlx::query(
                "UPDATE messages SET status = ?, provider_sid = COALESCE(?, provider_sid), error_code = ?,
             updated_at = ? WHERE id = ?",
            )
            .bind(status)
            .bind(provider_sid)
            .bind(error_code)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// Applies a provider status callback; unknown ids and backward moves are ignored.
    /// Returns whether a message changed.
    pub async fn apply_status(
        &self,
        provider_sid: &str,
        status: MessageStatus,
        error_code: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let current: Option<MessageStatus> =
                sqlx::query("SELECT status FROM messages WHERE provider_sid = ? AND direction = 'out'")
                    .bind(provider_sid)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get("status"))
                    .transpose()?;
            let Some(current) = current else { return Ok(false) };
            if !current.may_move_to(status) {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE messages SET status = ?, error_code = COALESCE(?, error_code), updated_at = ?
             WHERE provider_sid = ? AND direction = 'out'",
            )
            .bind(status)
            .bind(error_code)
            .bind(now)
            .bind(provider_sid)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Outbound messages to one customer after `after_id` (the simulator's inbox).
    pub async fn outbound_since(
        &self,
        merchant_id: &str,
        phone: &str,
        after_id: i64,
    ) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT m.id, m.direction, m.author, m.body, m.num_media, m.status, m.error_code, m.provider_sid, m.created_at
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             JOIN customers cu ON cu.id = c.customer_id
             WHERE m.merchant_id = ? AND cu.phone = ? AND m.direction = 'out' AND m.id > ? ORDER BY m.id",
        )
        .bind(merchant_id)
        .bind(phone)
        .bind(after_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(MessageRow::from_row).collect::<Result<_, _>>()?)
    }

    pub async fn message(&self, id: i64) -> Result<Option<MessageRow>> {
        let row = sqlx::query(
            "SELECT id, direction, author, body, num_media, status, error_code, provider_sid, created_at FROM messages
             WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(MessageRow::from_row).transpose()?)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_outbound(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    merchant_id: &str,
    conversation_id: i64,
    author: Author,
    body: &str,
    reply_to: Option<i64>,
    agent_user_id: Option<i64>,
    now: i64,
) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO messages (merchant_id, conversation_id, direction, author, body, channel, status, reply_to,
         agent_user_id, created_at, updated_at)
         VALUES (?, ?, 'out', ?, ?, 'outbound', 'pending', ?, ?, ?, ?) RETURNING id",
    )
    .bind(merchant_id)
    .bind(conversation_id)
    .bind(author)
    .bind(body)
    .bind(reply_to)
    .bind(agent_user_id)
    .bind(now)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .get("id"))
}
