//! Escalations: the queue support agents work, with claim, reassign, reply and resolve.

use parley_agent::ConversationState;
use serde::Serialize;
use sqlx::{FromRow as _, Row};

use super::outbound::insert_outbound;
use super::{Author, Result, Store, StoreError, User};
use strum::{Display, EnumString};

/// Where an escalation is in a person's hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema, Display, EnumString)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EscalationStatus {
    /// Waiting for a person.
    Open,
    /// A person holds it.
    Claimed,
    /// Done; the conversation went back to the AI.
    Resolved,
}

impl EscalationStatus {
    /// Waiting for or held by a person.
    pub const ACTIVE: &[EscalationStatus] = &[EscalationStatus::Open, EscalationStatus::Claimed];
}

#[derive(Debug, Clone)]
pub struct NewEscalation {
    pub reason: String,
    pub reason_detail: String,
    pub summary: String,
    pub suggested_reply: Option<String>,
    pub due_at: i64,
}

/// A stored escalation, with its customer's phone and its assignee's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EscalationRow {
    pub id: i64,
    pub merchant_id: String,
    pub conversation_id: i64,
    #[sqlx(rename = "phone")]
    pub customer_phone: String,
    pub reason: String,
    pub reason_detail: String,
    pub summary: String,
    pub suggested_reply: Option<String>,
    pub status: EscalationStatus,
    pub assignee: Option<String>,
    pub assignee_id: Option<i64>,
    pub created_at: i64,
    pub due_at: i64,
    pub claimed_at: Option<i64>,
    pub resolved_at: Option<i64>,
}

impl Store {
    /// The merchant's escalations in the given statuses, oldest first.
    pub async fn escalations(
        &self,
        merchant_id: &str,
        statuses: &[EscalationStatus],
    ) -> Result<Vec<EscalationRow>> {
        let placeholders = vec!["?"; statuses.len()].join(", ");
        let sql = format!(
            "{ESCALATION_SELECT} WHERE e.merchant_id = ? AND e.status IN ({placeholders})
             ORDER BY e.created_at, e.id"
        );
        let mut query = sqlx::query(&sql).bind(merchant_id);
        for status in statuses {
            query = query.bind(*status);
        }
        let rows = query.fetch_all(&self.reader).await?;
        Ok(rows
            .iter()
            .map(EscalationRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// One escalation; `NotFound` unless it belongs to the merchant (no existence leak).
    pub async fn escalation(&self, merchant_id: &str, id: i64) -> Result<EscalationRow> {
        let sql = format!("{ESCALATION_SELECT} WHERE e.merchant_id = ? AND e.id = ?");
        let row = sqlx::query(&sql)
            .bind(merchant_id)
            .bind(id)
            .fetch_optional(&self.writer)
            .await?
            .ok_or(StoreError::NotFound("escalation"))?;
        Ok(EscalationRow::from_row(&row)?)
    }

    /// Claims an escalation that is open or already the user's. Returns `false`, writing
    /// nothing, when it is neither any more (the service's rules were checked on an earlier
    /// read; the condition here makes the write safe against a race).
    pub async fn claim(&self, merchant_id: &str, id: i64, user_id: i64, now: i64) -> Result<bool> {
        self.guard(claim_if_free(&self.writer, merchant_id, id, user_id, now))
            .await
    }

    /// Hands an escalation that is not resolved to `assignee_id`; `false` (nothing written)
    /// once it is resolved.
    pub async fn reassign(&self, merchant_id: &str, id: i64, assignee_id: i64, now: i64) -> Result<bool> {
        self.guard(async move {
            let moved = sqlx::query(
                "UPDATE escalations SET status = 'claimed', assignee_id = ?, claimed_at = ?
                 WHERE id = ? AND merchant_id = ? AND status != 'resolved'",
            )
            .bind(assignee_id)
            .bind(now)
            .bind(id)
            .bind(merchant_id)
            .execute(&self.writer)
            .await?
            .rows_affected();
            Ok(moved == 1)
        })
        .await
    }

    /// Records a support agent's reply to `escalation` (as the caller read it) as a pending
    /// outbound message and as a turn in the conversation's history. Returns the message id
    /// to send.
    pub async fn human_reply(
        &self,
        escalation: &EscalationRow,
        user: &User,
        body: &str,
        now: i64,
    ) -> Result<i64> {
        let merchant_id = escalation.merchant_id.as_str();
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let row = sqlx::query(
                "SELECT c.state, cu.opted_out FROM conversations c JOIN customers cu ON cu.id = c.customer_id
             WHERE c.id = ?",
            )
            .bind(escalation.conversation_id)
            .fetch_one(&mut *tx)
            .await?;
            if row.get::<bool, _>("opted_out") {
                return Err(StoreError::Conflict(
                    "the customer has opted out; nothing may be texted until they reply START".into(),
                ));
            }
            let mut state: ConversationState = serde_json::from_str(row.get::<&str, _>("state"))?;
            state.turns.push(parley_agent::types::Turn {
                role: parley_agent::types::Role::Human,
                text: body.to_owned(),
            });
            sqlx::query("UPDATE conversations SET state = ?, updated_at = ? WHERE id = ?")
                .bind(serde_json::to_string(&state)?)
                .bind(now)
                .bind(escalation.conversation_id)
                .execute(&mut *tx)
                .await?;
            let id = insert_outbound(
                &mut tx,
                merchant_id,
                escalation.conversation_id,
                Author::Human,
                body,
                None,
                Some(user.id),
                now,
            )
            .await?;
            // Answering an unclaimed escalation takes it.
            if escalation.status == EscalationStatus::Open {
                claim_if_free(&mut *tx, merchant_id, escalation.id, user.id, now).await?;
            }
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    /// Resolves an escalation and hands the conversation back to the AI, in one
    /// transaction; `false` (nothing written) when it was already resolved.
    pub async fn resolve(&self, merchant_id: &str, id: i64, now: i64) -> Result<bool> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let conversation_id: Option<i64> = sqlx::query(
                "UPDATE escalations SET status = 'resolved', resolved_at = ?
                 WHERE id = ? AND merchant_id = ? AND status != 'resolved' RETURNING conversation_id",
            )
            .bind(now)
            .bind(id)
            .bind(merchant_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.get("conversation_id"));
            let Some(conversation_id) = conversation_id else {
                return Ok(false);
            };
            let state: String = sqlx::query("SELECT state FROM conversations WHERE id = ?")
                .bind(conversation_id)
                .fetch_one(&mut *tx)
                .await?
                .get("state");
            let mut state: ConversationState = serde_json::from_str(&state)?;
            parley_agent::pipeline::hand_back(&mut state);
            sqlx::query("UPDATE conversations SET state = ?, updated_at = ? WHERE id = ?")
                .bind(serde_json::to_string(&state)?)
                .bind(now)
                .bind(conversation_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}

const ESCALATION_SELECT: &str =
    "SELECT e.id, e.merchant_id, e.conversation_id, cu.phone, e.reason, e.reason_detail,
        e.summary, e.suggested_reply, e.status, e.assignee_id, u.name AS assignee, e.created_at, e.due_at,
        e.claimed_at, e.resolved_at
     FROM escalations e JOIN conversations c ON c.id = e.conversation_id
     JOIN customers cu ON cu.id = c.customer_id LEFT JOIN agent_users u ON u.id = e.assignee_id";

/// Claims an escalation for `user_id` if it is open or already theirs, keeping the time it
/// was first claimed; `false` (nothing written) otherwise. The one claim statement, on the
/// writer or inside a transaction.
async fn claim_if_free(
    executor: impl sqlx::SqliteExecutor<'_>,
    merchant_id: &str,
    id: i64,
    user_id: i64,
    now: i64,
) -> Result<bool> {
    let claimed = sqlx::query(
        "UPDATE escalations SET status = 'claimed', assignee_id = ?, claimed_at = COALESCE(claimed_at, ?)
         WHERE id = ? AND merchant_id = ?
         AND (status = 'open' OR (status = 'claimed' AND assignee_id = ?))",
    )
    .bind(user_id)
    .bind(now)
    .bind(id)
    .bind(merchant_id)
    .bind(user_id)
    .execute(executor)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}
