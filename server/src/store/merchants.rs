//! Merchants: the stores Parley answers for, with the number customers text and the contact HELP gives.

use sqlx::FromRow as _;

use super::{Result, Store, StoreError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub sms_number: Option<String>,
    pub knowledge_dir: Option<String>,
    /// For HELP and the STOP/START confirmations, which must work from the store alone.
    pub support_email: Option<String>,
    pub support_hours: Option<String>,
}

impl Store {
    pub async fn upsert_merchant(&self, merchant: &Merchant, now: i64) -> Result<()> {
        self.guard(async move {
            let result = sqlx::query(
                "INSERT INTO merchants (id, name, sms_number, knowledge_dir, support_email, support_hours,
             created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
             sms_number = COALESCE(excluded.sms_number, merchants.sms_number),
             knowledge_dir = COALESCE(excluded.knowledge_dir, merchants.knowledge_dir),
             support_email = COALESCE(excluded.support_email, merchants.support_email),
             support_hours = COALESCE(excluded.support_hours, merchants.support_hours),
             updated_at = excluded.updated_at",
            )
            .bind(&merchant.id)
            .bind(&merchant.name)
            .bind(&merchant.sms_number)
            .bind(&merchant.knowledge_dir)
            .bind(&merchant.support_email)
            .bind(&merchant.support_hours)
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await;
            match result {
                Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                    Err(StoreError::Conflict(format!(
                        "the number {} already belongs to another merchant",
                        merchant.sms_number.as_deref().unwrap_or_default()
                    )))
                }
                other => other.map(|_| ()).map_err(StoreError::from),
            }
        })
        .await
    }

    pub async fn merchant(&self, id: &str) -> Result<Option<Merchant>> {
        let row = sqlx::query("SELECT id, name, sms_number, knowledge_dir, support_email, support_hours FROM merchants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(Merchant::from_row).transpose()?)
    }

    pub async fn merchant_by_number(&self, number: &str) -> Result<Option<Merchant>> {
        let row = sqlx::query(
            "SELECT id, name, sms_number, knowledge_dir, support_email, support_hours FROM merchants
                 WHERE sms_number = ?",
        )
        .bind(number)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(Merchant::from_row).transpose()?)
    }
}
