//! The consent ledger: append-only opt-out and opt-in events (the database refuses updates and deletes).

use sqlx::FromRow as _;

use sqlx::Row as _;

use super::{Result, Store};

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, strum::IntoStaticStr)]
#[sqlx(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConsentAction {
    OptOut,
    OptIn,
}

impl ConsentAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One ledger entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentRow {
    pub id: i64,
    pub phone: String,
    pub action: ConsentAction,
    pub keyword: String,
    pub source: String,
    pub provider_sid: Option<String>,
    /// `all` (STOP, START), or the one purpose the entry is for (`marketing`).
    pub purpose: String,
    /// What proves a non-keyword entry: the checkout, Shopify's consent record, an import note.
    pub proof: Option<String>,
    pub created_at: i64,
}

impl Store {
    /// The sign-up confirmation `message_id` reached the provider: the customer's marketing
    /// consent, awaiting it, is confirmed (unless a STOP came meanwhile). Returns whether it was.
    pub async fn confirm_marketing(&self, message_id: i64, now: i64) -> Result<bool> {
        self.guard(async move {
            let changed = sqlx::query(
                "UPDATE customers SET marketing = 'confirmed', updated_at = ?
                 WHERE marketing = 'awaiting_confirmation' AND NOT opted_out AND id = (
                   SELECT c.customer_id FROM messages m JOIN conversations c ON c.id = m.conversation_id
                   WHERE m.id = ? AND m.subject = ?)",
            )
            .bind(now)
            .bind(message_id)
            .bind(super::inbound::MARKETING_CONFIRMATION)
            .execute(&self.writer)
            .await?
            .rows_affected();
            Ok(changed > 0)
        })
        .await
    }

    /// Twilio answered 21610 (the carrier has this number opted out, e.g. a STOP sent to the
    /// carrier directly): the ledger records a carrier opt-out, once, and the customer is
    /// opted out of everything. Returns whether an entry was written.
    pub async fn record_carrier_opt_out(&self, message_id: i64, now: i64) -> Result<bool> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let row = sqlx::query(
                "SELECT m.merchant_id, cu.id AS customer_id, cu.phone, cu.opted_out FROM messages m
                 JOIN conversations c ON c.id = m.conversation_id JOIN customers cu ON cu.id = c.customer_id
                 WHERE m.id = ?",
            )
            .bind(message_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(false) };
            if row.get::<bool, _>("opted_out") {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO consent_events (merchant_id, phone, action, keyword, source, purpose, proof,
                 message_id, created_at) VALUES (?, ?, 'opt_out', '21610', 'carrier', 'all', ?, ?, ?)",
            )
            .bind(row.get::<String, _>("merchant_id"))
            .bind(row.get::<String, _>("phone"))
            .bind(format!(
                "Twilio error 21610 (unsubscribed recipient) on message {message_id}"
            ))
            .bind(message_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE customers SET opted_out = TRUE WHERE id = ?")
                .bind(row.get::<i64, _>("customer_id"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub async fn consent_ledger(&self, merchant_id: &str) -> Result<Vec<ConsentRow>> {
        let rows = sqlx::query(
            "SELECT id, phone, action, keyword, source, provider_sid, purpose, proof, created_at FROM consent_events
             WHERE merchant_id = ? ORDER BY id",
        )
        .bind(merchant_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(ConsentRow::from_row).collect::<Result<_, _>>()?)
    }
}
