//! Inbound messages: receipt (deduped by provider id, stored before acknowledged), the read a decision needs, and the one transaction that commits a decision.

use parley_agent::ConversationState;
use sqlx::{FromRow as _, Row};

use super::outbound::insert_outbound;
use super::{
    Author, ConsentAction, Direction, MessageRow, MessageStatus, NewEscalation, Result, Store, StoreError,
};

/// An inbound message to record.
#[derive(Debug, Clone)]
pub struct NewInbound<'a> {
    pub merchant_id: &'a str,
    pub phone: &'a str,
    pub body: &'a str,
    pub channel: &'a str,
    /// The provider's message id: the dedupe key for retried webhooks.
    pub provider_sid: Option<&'a str>,
    /// Pictures attached (MMS); `body` holds only the customer's own words.
    pub num_media: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    New {
        message_id: i64,
        conversation_id: i64,
    },
    /// This provider message id was accepted before; nothing was written.
    Duplicate,
}

/// What processing an inbound message needs, loaded in one read.
#[derive(Debug, Clone)]
pub struct PendingInbound {
    pub message_id: i64,
    pub conversation_id: i64,
    pub merchant_id: String,
    pub phone: String,
    pub body: String,
    pub provider_sid: Option<String>,
    pub state: ConversationState,
    pub opted_out: bool,
    /// The merchant's name and support contact, from the store: enough for compliance.
    pub merchant: parley_agent::MerchantContact,
    pub num_media: u32,
    /// The flow message this text answers: the latest one sent since the customer's previous
    /// text, as (body, its `flow_context` JSON).
    pub flow_message: Option<(String, String)>,
}

/// Everything one decision changes, committed together with marking the inbound processed:
/// either all of it is stored or none, so a crash never leaves a half-handled message.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub message_id: i64,
    pub conversation_id: i64,
    pub state: ConversationState,
    pub consent: Option<(ConsentAction, String)>,
    /// The opt-in is a keyword sign-up for marketing (JOIN): the ledger entry is for marketing,
    /// and marketing consent waits for the reply (the program's confirmation) to go out.
    pub marketing_signup: bool,
    pub reply: Option<(Author, String)>,
    pub escalation: Option<NewEscalation>,
}

/// The subject of a sign-up's confirmation message: when it reaches the provider, the
/// customer's marketing consent is confirmed.
pub const MARKETING_CONFIRMATION: &str = "marketing_confirmation";

impl Store {
    /// Records an inbound message (customer and conversation created on first contact) in one
    /// transaction; a provider id seen before writes nothing and answers `Duplicate`.
    pub async fn receive(&self, inbound: &NewInbound<'_>, now: i64) -> Result<Received> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            if let Some(sid) = inbound.provider_sid {
                let inserted = sqlx::query(
                    "INSERT INTO webhook_events (provider, event_id, received_at) VALUES (?, ?, ?)
                 ON CONFLICT (provider, event_id) DO NOTHING",
                )
                .bind(inbound.channel)
                .bind(sid)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(Received::Duplicate);
                }
            }
            let (_, conversation_id) =
                customer_and_conversation(&mut tx, inbound.merchant_id, inbound.phone, now).await?;
            let message_id: i64 = sqlx::query(
                "INSERT INTO messages (merchant_id, conversation_id, direction, author, body, num_media,
             channel, provider_sid, status, created_at, updated_at)
             VALUES (?, ?, 'in', 'customer', ?, ?, ?, ?, 'received', ?, ?) RETURNING id",
            )
            .bind(inbound.merchant_id)
            .bind(conversation_id)
            .bind(inbound.body)
            .bind(i64::from(inbound.num_media))
            .bind(inbound.channel)
            .bind(inbound.provider_sid)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .get("id");
            tx.commit().await?;
            // The provider is answered on the strength of this row: make sure it is really there.
            self.confirm_visible(
                "SELECT id FROM messages WHERE id = ?",
                message_id,
                "inbound message",
            )
            .await?;
            Ok(Received::New {
                message_id,
                conversation_id,
            })
        })
        .await
    }

    /// Inbound messages stored but not yet decided, last touched before `before`, oldest first.
    pub async fn unprocessed_inbound(&self, before: i64) -> Result<Vec<i64>> {
        self.stalled(Direction::In, MessageStatus::Received, before).await
    }

    /// The conversation an inbound message belongs to.
    pub async fn conversation_of(&self, message_id: i64) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT conversation_id FROM messages WHERE id = ?")
            .bind(message_id)
            .fetch_optional(&self.writer)
            .await?
            .map(|row| row.get("conversation_id")))
    }

    /// The inbound message with its conversation, or `None` once it has been processed.
    pub async fn pending_inbound(&self, message_id: i64) -> Result<Option<PendingInbound>> {
        let row = sqlx::query(
            "SELECT m.id, m.conversation_id, m.merchant_id, m.body, m.num_media, m.provider_sid, c.state,
                    cu.phone, cu.opted_out, me.name, me.support_email, me.support_hours
             FROM messages m
             JOIN conversations c ON c.id = m.conversation_id
             JOIN customers cu ON cu.id = c.customer_id
             JOIN merchants me ON me.id = m.merchant_id
             WHERE m.id = ? AND m.direction = 'in' AND m.status = 'received'",
        )
        .bind(message_id)
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.get("state");
        let conversation_id: i64 = row.get("conversation_id");
        let flow_message = sqlx::query(
            "SELECT body, flow_context FROM messages
             WHERE conversation_id = ? AND direction = 'out' AND flow_context IS NOT NULL AND id < ?
               AND id > COALESCE((SELECT MAX(id) FROM messages
                                  WHERE conversation_id = ? AND direction = 'in' AND id < ?), 0)
             ORDER BY id DESC LIMIT 1",
        )
        .bind(conversation_id)
        .bind(message_id)
        .bind(conversation_id)
        .bind(message_id)
        .fetch_optional(&self.writer)
        .await?
        .map(|row| (row.get("body"), row.get("flow_context")));
        Ok(Some(PendingInbound {
            flow_message,
            message_id: row.get("id"),
            conversation_id: row.get("conversation_id"),
            merchant_id: row.get("merchant_id"),
            phone: row.get("phone"),
            body: row.get("body"),
            provider_sid: row.get("provider_sid"),
            state: serde_json::from_str(&state)?,
            opted_out: row.get("opted_out"),
            merchant: parley_agent::MerchantContact {
                name: row.get("name"),
                support_email: row.get("support_email"),
                support_hours: row.get("support_hours"),
                // The program's frequency is a setting; the service fills it in.
                message_frequency: None,
            },
            num_media: u32::try_from(row.get::<i64, _>("num_media")).unwrap_or(0),
        }))
    }

    /// Commits a decision. Returns the id of the reply to send, if any. Fails with
    /// `Conflict` when the message was processed meanwhile (nothing is written then).
    pub async fn record_decision(&self, record: &DecisionRecord, now: i64) -> Result<Option<i64>> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let claimed = sqlx::query(
            "UPDATE messages SET status = 'processed', updated_at = ? WHERE id = ? AND status = 'received'",
        )
        .bind(now)
        .bind(record.message_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
            if claimed == 0 {
                return Err(StoreError::Conflict(format!(
                    "message {} was already processed",
                    record.message_id
                )));
            }
            let row = sqlx::query(
                "SELECT m.merchant_id, m.provider_sid, cu.id AS customer_id, cu.phone FROM messages m
             JOIN conversations c ON c.id = m.conversation_id JOIN customers cu ON cu.id = c.customer_id
             WHERE m.id = ?",
            )
            .bind(record.message_id)
            .fetch_one(&mut *tx)
            .await?;
            let merchant_id: String = row.get("merchant_id");
            let customer_id: i64 = row.get("customer_id");
            if let Some((action, keyword)) = &record.consent {
                let purpose = if record.marketing_signup {
                    "marketing"
                } else {
                    "all"
                };
                sqlx::query(
                    "INSERT INTO consent_events (merchant_id, phone, action, keyword, source, message_id,
                 provider_sid, purpose, created_at) VALUES (?, ?, ?, ?, 'sms', ?, ?, ?, ?)",
                )
                .bind(&merchant_id)
                .bind(row.get::<String, _>("phone"))
                .bind(*action)
                .bind(keyword)
                .bind(record.message_id)
                .bind(row.get::<Option<String>, _>("provider_sid"))
                .bind(purpose)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // A sign-up also lifts a STOP (the customer asked to be texted); its marketing
                // consent is confirmed once the confirmation reaches the provider.
                sqlx::query(
                    "UPDATE customers SET opted_out = ?, marketing = CASE
                       WHEN ? AND marketing <> 'confirmed' THEN 'awaiting_confirmation' ELSE marketing END
                     WHERE id = ?",
                )
                .bind(*action == ConsentAction::OptOut)
                .bind(record.marketing_signup)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE conversations SET state = ?, updated_at = ? WHERE id = ?")
                .bind(serde_json::to_string(&record.state)?)
                .bind(now)
                .bind(record.conversation_id)
                .execute(&mut *tx)
                .await?;
            let mut reply_id = None;
            if let Some((author, body)) = &record.reply {
                let id: i64 = insert_outbound(
                    &mut tx,
                    &merchant_id,
                    record.conversation_id,
                    *author,
                    body,
                    Some(record.message_id),
                    None,
                    now,
                )
                .await?;
                if record.marketing_signup {
                    sqlx::query("UPDATE messages SET subject = ? WHERE id = ?")
                        .bind(MARKETING_CONFIRMATION)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                reply_id = Some(id);
            }
            if let Some(escalation) = &record.escalation {
                // One open escalation per conversation: later messages join its transcript.
                let open: Option<i64> = sqlx::query(
                    "SELECT id FROM escalations WHERE conversation_id = ? AND status IN ('open', 'claimed')",
                )
                .bind(record.conversation_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.get("id"));
                if open.is_none() {
                    sqlx::query(
                    "INSERT INTO escalations (merchant_id, conversation_id, message_id, reason, reason_detail,
                     summary, suggested_reply, status, created_at, due_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)",
                )
                .bind(&merchant_id)
                .bind(record.conversation_id)
                .bind(record.message_id)
                .bind(&escalation.reason)
                .bind(&escalation.reason_detail)
                .bind(&escalation.summary)
                .bind(&escalation.suggested_reply)
                .bind(now)
                .bind(escalation.due_at)
                .execute(&mut *tx)
                .await?;
                }
            }
            tx.commit().await?;
            // An opt-out is acknowledged on the strength of this commit.
            self.confirm_visible(
                "SELECT id FROM messages WHERE id = ? AND status = 'processed'",
                record.message_id,
                "decision",
            )
            .await?;
            Ok(reply_id)
        })
        .await
    }

    /// The inbound message a provider id was stored as.
    pub async fn inbound_by_sid(&self, provider_sid: &str) -> Result<Option<MessageRow>> {
        let row = sqlx::query(
            "SELECT id, direction, author, body, num_media, status, error_code, provider_sid, created_at FROM messages
             WHERE provider_sid = ? AND direction = 'in'",
        )
        .bind(provider_sid)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(MessageRow::from_row).transpose()?)
    }
}

/// The customer with this phone and their conversation, made on first contact (an inbound
/// text, or the first text the store sends them).
pub(super) async fn customer_and_conversation(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    merchant_id: &str,
    phone: &str,
    now: i64,
) -> Result<(i64, i64)> {
    let customer_id: i64 = sqlx::query(
        "INSERT INTO customers (merchant_id, phone, created_at) VALUES (?, ?, ?)
         ON CONFLICT (merchant_id, phone) DO UPDATE SET phone = excluded.phone RETURNING id",
    )
    .bind(merchant_id)
    .bind(phone)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .get("id");
    let empty_state = serde_json::to_string(&ConversationState::default())?;
    let conversation_id: i64 = sqlx::query(
        "INSERT INTO conversations (merchant_id, customer_id, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (merchant_id, customer_id) DO UPDATE SET updated_at = excluded.updated_at
         RETURNING id",
    )
    .bind(merchant_id)
    .bind(customer_id)
    .bind(&empty_state)
    .bind(now)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .get("id");
    Ok((customer_id, conversation_id))
}
