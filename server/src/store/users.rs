//! Support-side users (agents and admins), their API tokens and inbox sessions.

use serde::Serialize;
use sqlx::{FromRow as _, Row};

use super::{Result, Store, StoreError};
use strum::{Display, EnumString, VariantNames};

/// Roles of support-side users: agents work the queue, admins also manage the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, Display, EnumString, VariantNames)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum UserRole {
    Agent,
    Admin,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub merchant_id: String,
    pub name: String,
    pub role: UserRole,
}

impl Store {
    pub async fn create_user(
        &self,
        merchant_id: &str,
        name: &str,
        role: UserRole,
        token_hash: &str,
        now: i64,
    ) -> Result<User> {
        self.guard(async move {
            // A revoked user's name may be given a new token; a live one's may not.
            let result = sqlx::query(
            "INSERT INTO agent_users (merchant_id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (merchant_id, name) DO UPDATE SET role = excluded.role,
             token_hash = excluded.token_hash, created_at = excluded.created_at, revoked_at = NULL
             WHERE agent_users.revoked_at IS NOT NULL
             RETURNING id",
        )
        .bind(merchant_id)
        .bind(name)
        .bind(role)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await;
            match result {
                Ok(None) => Err(StoreError::Conflict(format!(
                    "a user named {name:?} already exists for {merchant_id}"
                ))),
                Ok(Some(row)) => Ok(User {
                    id: row.get("id"),
                    merchant_id: merchant_id.to_owned(),
                    name: name.to_owned(),
                    role,
                }),
                Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Err(StoreError::Conflict(
                    format!("a user named {name:?} already exists for {merchant_id}"),
                )),
                Err(sqlx::Error::Database(err)) if err.is_foreign_key_violation() => {
                    Err(StoreError::NotFound("merchant"))
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    /// Revokes a user's token and every inbox session it opened. Returns whether there was
    /// a live user of that name.
    pub async fn revoke_user(&self, merchant_id: &str, name: &str, now: i64) -> Result<bool> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let revoked: Option<i64> = sqlx::query(
                "UPDATE agent_users SET revoked_at = ? WHERE merchant_id = ? AND name = ? AND revoked_at IS NULL
                 RETURNING id",
            )
            .bind(now)
            .bind(merchant_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.get("id"));
            if let Some(user_id) = revoked {
                sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
                    .bind(now)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(revoked.is_some())
        })
        .await
    }

    /// Opens an inbox session: `id_hash` is the sha256 of the random session id in the cookie.
    pub async fn create_session(&self, user_id: i64, id_hash: &str, now: i64, expires_at: i64) -> Result<()> {
        self.guard(async move {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            )
            .bind(id_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// The user of a live session: not expired, not logged out, its user not revoked.
    pub async fn user_by_session(&self, id_hash: &str, now: i64) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.merchant_id, u.name, u.role FROM sessions s JOIN agent_users u ON u.id = s.user_id
             WHERE s.id_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.revoked_at IS NULL",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| User::from_row(&row)).transpose()?)
    }

    /// Ends a session (logout); unknown ids are ignored.
    pub async fn revoke_session(&self, id_hash: &str, now: i64) -> Result<()> {
        self.guard(async move {
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id_hash)
                .execute(&self.writer)
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT id, merchant_id, name, role FROM agent_users WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| User::from_row(&row)).transpose()?)
    }

    pub async fn user_by_name(&self, merchant_id: &str, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT id, merchant_id, name, role FROM agent_users WHERE merchant_id = ? AND name = ?",
        )
        .bind(merchant_id)
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| User::from_row(&row)).transpose()?)
    }
}
