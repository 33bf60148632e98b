//! Conversations and their messages as the APIs and the inbox read them.

use parley_agent::ConversationState;
use serde::Serialize;
use sqlx::{FromRow as _, Row};

use super::{Result, Store, StoreError};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum Author {
    Customer,
    Ai,
    Human,
    Compliance,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

/// Where a message is. Inbound: `received` until its decision commits, then `processed`.
/// Outbound: Parley's own steps (`pending`, `sending`, `suppressed`, `unknown`) and the
/// provider's words for the rest. Twilio also says "sending" for a message its carrier is
/// sending; that is stored as `sending_provider`, because Parley's `sending` means "handed to
/// the channel, outcome not yet recorded" (what restart recovery looks for).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MessageStatus {
    Received,
    Processed,
    Pending,
    /// Waiting for the first minute the send policy allows (`due_at`): quiet hours, a cap.
    Deferred,
    Sending,
    /// Not sent: consent forbade it at send time.
    Suppressed,
    /// The process died mid-send: a person checks, Parley never resends.
    Unknown,
    Accepted,
    Scheduled,
    Queued,
    SendingProvider,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Canceled,
    Read,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The provider took the message (whatever the carrier did with it later).
    pub fn reached_provider(self) -> bool {
        use MessageStatus::*;
        matches!(
            self,
            Accepted | Scheduled | Queued | SendingProvider | Sent | Delivered | Read
        )
    }

    /// A provider's status word (Twilio's `MessageStatus`); `None` for words Parley does not
    /// track (e.g. `partially_delivered`), which then change nothing.
    pub fn from_provider(word: &str) -> Option<Self> {
        Some(match word {
            "accepted" => Self::Accepted,
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "sending" => Self::SendingProvider,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "read" => Self::Read,
            _ => return None,
        })
    }
}

/// A stored message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub direction: Direction,
    pub author: Author,
    pub body: String,
    /// Pictures an inbound MMS carried (not shown to the agent).
    #[sqlx(rename = "num_media")]
    pub attachments: i64,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub provider_sid: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: i64,
    pub customer_phone: String,
    pub opted_out: bool,
    pub escalated: bool,
    pub n_messages: i64,
    pub updated_at: i64,
}

impl Store {
    /// Ids of messages in `direction` still at `status`, last touched before `before`, oldest
    /// first: what crash recovery and the sweeper pick up.
    pub(super) async fn stalled(
        &self,
        direction: Direction,
        status: MessageStatus,
        before: i64,
    ) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id FROM messages WHERE direction = ? AND status = ? AND updated_at < ? ORDER BY id",
        )
        .bind(direction)
        .bind(status)
        .bind(before)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|row| row.get("id")).collect())
    }

    pub async fn conversations(&self, merchant_id: &str, limit: i64) -> Result<Vec<ConversationRow>> {
        let rows = sqlx::query(
            "SELECT c.id, cu.phone, cu.opted_out, c.state, c.updated_at,
                    (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n_messages
             FROM conversations c JOIN customers cu ON cu.id = c.customer_id
             WHERE c.merchant_id = ? ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
        )
        .bind(merchant_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let state: ConversationState = serde_json::from_str(row.get::<&str, _>("state"))?;
                Ok(ConversationRow {
                    id: row.get("id"),
                    customer_phone: row.get("phone"),
                    opted_out: row.get("opted_out"),
                    escalated: state.escalated,
                    n_messages: row.get("n_messages"),
                    updated_at: row.get("updated_at"),
                })
            })
            .collect()
    }

    /// A conversation's messages, oldest first; `NotFound` unless it belongs to the merchant.
    pub async fn transcript(&self, merchant_id: &str, conversation_id: i64) -> Result<Vec<MessageRow>> {
        let owned = sqlx::query("SELECT id FROM conversations WHERE id = ? AND merchant_id = ?")
            .bind(conversation_id)
            .bind(merchant_id)
            .fetch_optional(&self.reader)
            .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound("conversation"));
        }
        let rows = sqlx::query(
            "SELECT id, direction, author, body, num_media, status, error_code, provider_sid, created_at FROM messages
             WHERE conversation_id = ? ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(MessageRow::from_row).collect::<Result<_, _>>()?)
    }
}
