//! The consent ledger: append-only opt-out and opt-in events (the database refuses updates and deletes).

use sqlx::FromRow as _;

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
