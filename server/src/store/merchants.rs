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
    /// `X-Shopify-Shop-Domain` of the store's Shopify webhooks (`trailhead.myshopify.com`).
    pub shop_domain: Option<String>,
    /// The merchant's IANA zone: quiet hours fall back to it when nothing places a customer.
    pub timezone: Option<String>,
}

impl Merchant {
    /// The row for a merchant directory's `merchant.toml`.
    pub fn from_config(config: &parley_knowledge::MerchantConfig, knowledge_dir: Option<String>) -> Self {
        Self {
            id: config.id.to_string(),
            name: config.name.clone(),
            sms_number: config.sms_number.as_ref().map(ToString::to_string),
            knowledge_dir,
            support_email: Some(config.support_email.clone()),
            support_hours: Some(config.support_hours.clone()),
            shop_domain: config.shop_domain.clone(),
            timezone: Some(config.timezone.to_string()),
        }
    }
}

const COLUMNS: &str =
    "id, name, sms_number, knowledge_dir, support_email, support_hours, shop_domain, timezone";

impl Store {
    pub async fn upsert_merchant(&self, merchant: &Merchant, now: i64) -> Result<()> {
        self.guard(async move {
            let result = sqlx::query(
                "INSERT INTO merchants (id, name, sms_number, knowledge_dir, support_email, support_hours,
             shop_domain, timezone, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
             sms_number = COALESCE(excluded.sms_number, merchants.sms_number),
             knowledge_dir = COALESCE(excluded.knowledge_dir, merchants.knowledge_dir),
             support_email = COALESCE(excluded.support_email, merchants.support_email),
             support_hours = COALESCE(excluded.support_hours, merchants.support_hours),
             shop_domain = COALESCE(excluded.shop_domain, merchants.shop_domain),
             timezone = COALESCE(excluded.timezone, merchants.timezone),
             updated_at = excluded.updated_at",
            )
            .bind(&merchant.id)
            .bind(&merchant.name)
            .bind(&merchant.sms_number)
            .bind(&merchant.knowledge_dir)
            .bind(&merchant.support_email)
            .bind(&merchant.support_hours)
            .bind(&merchant.shop_domain)
            .bind(&merchant.timezone)
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await;
            match result {
                Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                    Err(StoreError::Conflict(format!(
                        "the number {} or the shop domain {} already belongs to another merchant",
                        merchant.sms_number.as_deref().unwrap_or("(none)"),
                        merchant.shop_domain.as_deref().unwrap_or("(none)")
                    )))
                }
                other => other.map(|_| ()).map_err(StoreError::from),
            }
        })
        .await
    }

    pub async fn merchant(&self, id: &str) -> Result<Option<Merchant>> {
        self.merchant_where("id", id).await
    }

    pub async fn merchant_by_number(&self, number: &str) -> Result<Option<Merchant>> {
        self.merchant_where("sms_number", number).await
    }

    /// The merchant a Shopify webhook's `X-Shopify-Shop-Domain` names.
    pub async fn merchant_by_shop_domain(&self, domain: &str) -> Result<Option<Merchant>> {
        self.merchant_where("shop_domain", &domain.trim().to_ascii_lowercase())
            .await
    }

    async fn merchant_where(&self, column: &'static str, value: &str) -> Result<Option<Merchant>> {
        let sql = format!("SELECT {COLUMNS} FROM merchants WHERE {column} = ?");
        let row = sqlx::query(&sql).bind(value).fetch_optional(&self.reader).await?;
        Ok(row.as_ref().map(Merchant::from_row).transpose()?)
    }
}
