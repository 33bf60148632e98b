//! Outbound messages: taking one for the channel, recording what the provider said, and status callbacks that only move forward.

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
}

impl OutboundJob {
    /// Consent at send time: an opted-out number gets compliance confirmations only.
    pub fn may_send(&self) -> bool {
        !self.opted_out || self.author == Author::Compliance
    }
}

impl MessageStatus {
    /// How far along an outbound message is: a late callback never moves a message backwards
    /// (Twilio does not promise callback order, and replays happen).
    fn outbound_rank(self) -> u8 {
        use MessageStatus::*;
        match self {
            Received | Processed | Pending | Suppressed | Unknown => 0,
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

    /// Takes a pending outbound message for sending (pending -> sending); `None` when another
    /// task already took it or it is not pending.
    pub async fn take_outbound(&self, id: i64, now: i64) -> Result<Option<OutboundJob>> {
        self.guard(async move {
            let taken = sqlx::query(
                "UPDATE messages SET status = 'sending', updated_at = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
            if taken == 0 {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT m.id, m.merchant_id, m.body, m.author, cu.phone, cu.opted_out, me.sms_number
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
            }))
        })
        .await
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
