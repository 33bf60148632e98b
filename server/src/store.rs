//! Durable state through sqlx: merchants, customers, the consent ledger, conversations,
//! messages, escalations, agent users and processed webhook ids. SQLite by default (WAL,
//! synchronous=FULL, so a commit survives a crash); the SQL is kept portable for PostgreSQL.
//!
//! Writes go through a one-connection pool: SQLite has one writer anyway, and queueing
//! writers in-process avoids lock-upgrade failures and busy-wait sleeps under load. Reads use
//! a separate pool and see committed data (WAL readers never block the writer).
//!
//! The writer connection is never trusted after a failure. A full disk makes SQLite roll a
//! transaction back by itself; the ROLLBACK that follows then fails, and sqlx goes on
//! believing a transaction is open, so every later `begin()` becomes a savepoint inside a
//! transaction that is never committed: writes "succeed" and vanish. So any database error
//! discards the writer connection (the pool opens a fresh one), a connection going back to
//! the pool is checked for a leftover transaction, and the writes an acknowledgement rests on
//! are read back through a reader connection before they are reported done.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parley_agent::ConversationState;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Executor as _, FromRow as _, Row, SqliteConnection, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored conversation state is unreadable: {0}")]
    State(#[from] serde_json::Error),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A commit reported success but a separate connection cannot read it: nothing that rests
    /// on it may be acknowledged.
    #[error("database: a committed write is not visible to other connections ({0})")]
    NotDurable(&'static str),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

// The vocabularies the store keeps as text. Each enum is the one source of its strings: serde
// (the APIs), strum (where a string is parsed or shown) and sqlx (bind and decode) all spell the
// variants in snake_case, and a value in the database that is none of them is a decode error,
// never a default.

/// Roles of support-side users: agents work the queue, admins also manage the merchant.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    sqlx::Type,
    strum::Display,
    strum::EnumString,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum UserRole {
    Agent,
    Admin,
}

/// Where an escalation is in a person's hands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    sqlx::Type,
    utoipa::ToSchema,
    strum::Display,
    strum::EnumString,
    strum::AsRefStr,
)]
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

#[derive(Debug, Clone, Serialize)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub sms_number: Option<String>,
    pub knowledge_dir: Option<String>,
    /// For HELP and the STOP/START confirmations, which must work from the store alone.
    pub support_email: Option<String>,
    pub support_hours: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub merchant_id: String,
    pub name: String,
    pub role: UserRole,
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(rename_all = "snake_case")]
pub enum ConsentAction {
    OptOut,
    OptIn,
}

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

#[derive(Debug, Clone)]
pub struct NewEscalation {
    pub reason: String,
    pub reason_detail: String,
    pub summary: String,
    pub suggested_reply: Option<String>,
    pub due_at: i64,
}

/// Everything one decision changes, committed together with marking the inbound processed:
/// either all of it is stored or none, so a crash never leaves a half-handled message.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub message_id: i64,
    pub conversation_id: i64,
    pub state: ConversationState,
    pub consent: Option<(ConsentAction, String)>,
    pub reply: Option<(Author, String)>,
    pub escalation: Option<NewEscalation>,
}

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

/// A stored message; serialized as the APIs show it (times in RFC 3339).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub direction: String,
    pub author: Author,
    pub body: String,
    /// Pictures an inbound MMS carried (not shown to the agent).
    #[sqlx(rename = "num_media")]
    pub attachments: i64,
    pub status: String,
    pub error_code: Option<String>,
    #[serde(skip)]
    pub provider_sid: Option<String>,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A stored escalation; serialized as the APIs show it (times in RFC 3339, internal ids out).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct EscalationRow {
    pub id: i64,
    #[serde(skip)]
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
    #[serde(skip)]
    pub assignee_id: Option<i64>,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub due_at: i64,
    #[serde(skip)]
    pub claimed_at: Option<i64>,
    #[serde(skip)]
    pub resolved_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationRow {
    pub id: i64,
    pub customer_phone: String,
    pub opted_out: bool,
    pub escalated: bool,
    pub n_messages: i64,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentRow {
    pub id: i64,
    pub phone: String,
    pub action: String,
    pub keyword: String,
    pub source: String,
    pub provider_sid: Option<String>,
    pub created_at: i64,
}

/// Statuses of an outbound message, by how far along it is: a late callback never moves a
/// message backwards (Twilio does not promise callback order, and replays happen).
fn outbound_rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "sending" => 1,
        "accepted" | "scheduled" | "queued" => 2,
        "sending_provider" => 3,
        "sent" => 4,
        "delivered" | "undelivered" | "failed" | "canceled" => 5,
        "read" => 6,
        _ => 0,
    }
}

/// Whether a stored status may still change: final ones are final, so a replayed
/// "undelivered" cannot flip a delivered message. Only `read` may follow `delivered`.
fn status_may_move(current: &str, next: &str) -> bool {
    let is_final = matches!(
        current,
        "delivered" | "undelivered" | "failed" | "canceled" | "read" | "suppressed" | "unknown"
    );
    if is_final {
        return current == "delivered" && next == "read";
    }
    outbound_rank(next) > outbound_rank(current)
}

#[derive(Clone)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Set by any failed write: the next acquire closes the writer connection and opens a
    /// fresh one instead of reusing a connection in an unknown state.
    discard_writer: Arc<AtomicBool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and runs the migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|err| StoreError::Database(sqlx::Error::Io(err)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed transaction survives power loss, not only a process crash;
            // "stored before acknowledged" means exactly that.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let discard_writer = Arc::new(AtomicBool::new(false));
        let discard = discard_writer.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .before_acquire(move |_, _| {
                let discard = discard.swap(false, Ordering::AcqRel);
                Box::pin(async move {
                    if discard {
                        tracing::warn!("discarding the database writer connection after a failed write");
                    }
                    Ok(!discard)
                })
            })
            .after_release(|conn, _| Box::pin(writer_is_clean(conn)))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            discard_writer,
        })
    }

    /// Runs a write; a database error (other than a constraint the caller handles) marks the
    /// writer connection for replacement before the error is returned.
    async fn guard<T>(&self, write: impl Future<Output = Result<T>>) -> Result<T> {
        let result = write.await;
        let failed = match &result {
            Err(StoreError::Database(sqlx::Error::Database(err))) => {
                !(err.is_unique_violation() || err.is_foreign_key_violation())
            }
            Err(StoreError::Database(_) | StoreError::NotDurable(_)) => true,
            _ => false,
        };
        if failed {
            self.discard_writer.store(true, Ordering::Release);
        }
        result
    }

    /// Checks through a reader connection that a committed row is there: `sql` selects it by id.
    async fn confirm_visible(&self, sql: &'static str, id: i64, what: &'static str) -> Result<()> {
        match sqlx::query(sql).bind(id).fetch_optional(&self.reader).await? {
            Some(_) => Ok(()),
            None => {
                tracing::error!(what, "a committed write is not visible to a reader connection");
                Err(StoreError::NotDurable(what))
            }
        }
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// The readiness write probe: commits a padded row (it needs free space, as a message
    /// does) and reads it back through a reader connection. Fails while the disk is full or
    /// the writer is broken.
    pub async fn probe_write(&self, now: i64) -> Result<()> {
        let id = self
            .guard(async move {
                let mut tx = self.writer.begin().await?;
                let id: i64 =
                    sqlx::query("INSERT INTO write_probe (at, pad) VALUES (?, zeroblob(16384)) RETURNING id")
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?
                        .get("id");
                sqlx::query("DELETE FROM write_probe WHERE id < ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(id)
            })
            .await?;
        self.guard(self.confirm_visible("SELECT id FROM write_probe WHERE id = ?", id, "write probe"))
            .await
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    // ---- merchants and users ---------------------------------------------------------------

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
        Ok(row.map(|row| merchant_from_row(&row)))
    }

    pub async fn merchant_by_number(&self, number: &str) -> Result<Option<Merchant>> {
        let row = sqlx::query(
            "SELECT id, name, sms_number, knowledge_dir, support_email, support_hours FROM merchants
                 WHERE sms_number = ?",
        )
        .bind(number)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| merchant_from_row(&row)))
    }

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

    // ---- inbound -------------------------------------------------------------------------

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
            let customer_id: i64 = sqlx::query(
                "INSERT INTO customers (merchant_id, phone, created_at) VALUES (?, ?, ?)
             ON CONFLICT (merchant_id, phone) DO UPDATE SET phone = excluded.phone RETURNING id",
            )
            .bind(inbound.merchant_id)
            .bind(inbound.phone)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .get("id");
            let empty_state = serde_json::to_string(&ConversationState::default())?;
            let conversation_id: i64 = sqlx::query(
                "INSERT INTO conversations (merchant_id, customer_id, state, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (merchant_id, customer_id) DO UPDATE SET updated_at = excluded.updated_at
             RETURNING id",
            )
            .bind(inbound.merchant_id)
            .bind(customer_id)
            .bind(&empty_state)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .get("id");
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
        let rows = sqlx::query(
            "SELECT id FROM messages WHERE direction = 'in' AND status = 'received' AND updated_at < ?
             ORDER BY id",
        )
        .bind(before)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|row| row.get("id")).collect())
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
        Ok(Some(PendingInbound {
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
                sqlx::query(
                    "INSERT INTO consent_events (merchant_id, phone, action, keyword, source, message_id,
                 provider_sid, created_at) VALUES (?, ?, ?, ?, 'sms', ?, ?, ?)",
                )
                .bind(&merchant_id)
                .bind(row.get::<String, _>("phone"))
                .bind(*action)
                .bind(keyword)
                .bind(record.message_id)
                .bind(row.get::<Option<String>, _>("provider_sid"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE customers SET opted_out = ? WHERE id = ?")
                    .bind(*action == ConsentAction::OptOut)
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

    // ---- outbound ------------------------------------------------------------------------

    /// Outbound messages never handed to the channel, last touched before `before`.
    pub async fn pending_outbound(&self, before: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id FROM messages WHERE direction = 'out' AND status = 'pending' AND updated_at < ?
             ORDER BY id",
        )
        .bind(before)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|row| row.get("id")).collect())
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
        status: &str,
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
        status: &str,
        error_code: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        self.guard(async move {
            let mut tx = self.writer.begin().await?;
            let current: Option<String> =
                sqlx::query("SELECT status FROM messages WHERE provider_sid = ? AND direction = 'out'")
                    .bind(provider_sid)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.get("status"));
            let Some(current) = current else { return Ok(false) };
            if !status_may_move(&current, status) {
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

    // ---- conversations -------------------------------------------------------------------

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

    // ---- escalations ---------------------------------------------------------------------

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

    /// Claims an open escalation (or re-claims one the user holds).
    pub async fn claim(&self, merchant_id: &str, id: i64, user: &User, now: i64) -> Result<EscalationRow> {
        self.guard(async move {
            let escalation = self.escalation(merchant_id, id).await?;
            match escalation.status {
                EscalationStatus::Resolved => {
                    return Err(StoreError::Conflict("the escalation is already resolved".into()));
                }
                EscalationStatus::Claimed if escalation.assignee_id != Some(user.id) => {
                    return Err(StoreError::Conflict(format!(
                        "the escalation is claimed by {}",
                        escalation.assignee.as_deref().unwrap_or("someone else")
                    )));
                }
                _ => {}
            }
            take_escalation(&self.writer, id, user.id, now).await?;
            self.escalation(merchant_id, id).await
        })
        .await
    }

    pub async fn reassign(
        &self,
        merchant_id: &str,
        id: i64,
        assignee: &User,
        now: i64,
    ) -> Result<EscalationRow> {
        self.guard(async move {
        let escalation = self.escalation(merchant_id, id).await?;
        if escalation.status == EscalationStatus::Resolved {
            return Err(StoreError::Conflict("the escalation is already resolved".into()));
        }
        sqlx::query(
            "UPDATE escalations SET status = 'claimed', assignee_id = ?, claimed_at = ? WHERE id = ? AND merchant_id = ?",
        )
        .bind(assignee.id)
        .bind(now)
        .bind(id)
        .bind(merchant_id)
        .execute(&self.writer)
        .await?;
        self.escalation(merchant_id, id).await
    }).await
    }

    /// Records a support agent's reply as a pending outbound message and as a turn in the
    /// conversation's history. Returns the message id to send.
    pub async fn human_reply(
        &self,
        merchant_id: &str,
        escalation_id: i64,
        user: &User,
        body: &str,
        now: i64,
    ) -> Result<i64> {
        self.guard(async move {
            let escalation = self.escalation(merchant_id, escalation_id).await?;
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
                take_escalation(&mut *tx, escalation_id, user.id, now).await?;
            }
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    /// Resolves an escalation and hands the conversation back to the AI.
    pub async fn resolve(&self, merchant_id: &str, id: i64, now: i64) -> Result<EscalationRow> {
        self.guard(async move {
            let escalation = self.escalation(merchant_id, id).await?;
            if escalation.status == EscalationStatus::Resolved {
                return Err(StoreError::Conflict("the escalation is already resolved".into()));
            }
            let mut tx = self.writer.begin().await?;
            let state: String = sqlx::query("SELECT state FROM conversations WHERE id = ?")
                .bind(escalation.conversation_id)
                .fetch_one(&mut *tx)
                .await?
                .get("state");
            let mut state: ConversationState = serde_json::from_str(&state)?;
            parley_agent::pipeline::hand_back(&mut state);
            sqlx::query("UPDATE conversations SET state = ?, updated_at = ? WHERE id = ?")
                .bind(serde_json::to_string(&state)?)
                .bind(now)
                .bind(escalation.conversation_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE escalations SET status = 'resolved', resolved_at = ? WHERE id = ?")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.escalation(merchant_id, id).await
        })
        .await
    }

    // ---- consent -------------------------------------------------------------------------

    pub async fn consent_ledger(&self, merchant_id: &str) -> Result<Vec<ConsentRow>> {
        let rows = sqlx::query(
            "SELECT id, phone, action, keyword, source, provider_sid, created_at FROM consent_events
             WHERE merchant_id = ? ORDER BY id",
        )
        .bind(merchant_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|row| ConsentRow {
                id: row.get("id"),
                phone: row.get("phone"),
                action: row.get("action"),
                keyword: row.get("keyword"),
                source: row.get("source"),
                provider_sid: row.get("provider_sid"),
                created_at: row.get("created_at"),
            })
            .collect())
    }

    /// Counts over the whole store (readiness, tests, the restart check).
    pub async fn count(&self, of: CountOf) -> Result<i64> {
        let sql = match of {
            CountOf::Inbound => "SELECT COUNT(*) AS n FROM messages WHERE direction = 'in'",
            CountOf::Unprocessed => {
                "SELECT COUNT(*) AS n FROM messages WHERE direction = 'in' AND status = 'received'"
            }
            CountOf::Outbound => "SELECT COUNT(*) AS n FROM messages WHERE direction = 'out'",
            CountOf::InFlight => {
                "SELECT COUNT(*) AS n FROM messages WHERE direction = 'out' AND status IN ('pending', 'sending')"
            }
            CountOf::UnknownOutcome => {
                "SELECT COUNT(*) AS n FROM messages WHERE direction = 'out' AND status = 'unknown'"
            }
        };
        Ok(sqlx::query(sql).fetch_one(&self.reader).await?.get("n"))
    }
}

/// Counters over the whole store.
#[derive(Debug, Clone, Copy)]
pub enum CountOf {
    Inbound,
    Unprocessed,
    Outbound,
    /// Outbound messages not yet handed to the channel, or being handed.
    InFlight,
    /// Sends cut off by a crash (recorded, never resent).
    UnknownOutcome,
}

/// Whether a writer connection going back to the pool may be reused: neither SQLite nor sqlx
/// may still think a transaction is open (see the module comment). Any statement here runs
/// after the ROLLBACK a dropped transaction queued, so what it sees is final.
async fn writer_is_clean(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    // SQLite refuses BEGIN inside a transaction it still holds open.
    if let Err(err) = conn.execute("BEGIN").await {
        tracing::warn!(error = %err, "the database writer connection holds an open transaction; discarding it");
        return Ok(false);
    }
    conn.execute("ROLLBACK").await?;
    if conn.is_in_transaction() {
        tracing::warn!("the database writer connection lost track of a transaction; discarding it");
        return Ok(false);
    }
    Ok(true)
}

const ESCALATION_SELECT: &str =
    "SELECT e.id, e.merchant_id, e.conversation_id, cu.phone, e.reason, e.reason_detail,
        e.summary, e.suggested_reply, e.status, e.assignee_id, u.name AS assignee, e.created_at, e.due_at,
        e.claimed_at, e.resolved_at
     FROM escalations e JOIN conversations c ON c.id = e.conversation_id
     JOIN customers cu ON cu.id = c.customer_id LEFT JOIN agent_users u ON u.id = e.assignee_id";

/// Marks an escalation claimed by `user_id`, keeping the time it was first claimed. Callers
/// have checked it belongs to their merchant.
async fn take_escalation(
    executor: impl sqlx::SqliteExecutor<'_>,
    id: i64,
    user_id: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE escalations SET status = 'claimed', assignee_id = ?, claimed_at = COALESCE(claimed_at, ?)
         WHERE id = ?",
    )
    .bind(user_id)
    .bind(now)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_outbound(
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

fn merchant_from_row(row: &sqlx::sqlite::SqliteRow) -> Merchant {
    Merchant {
        id: row.get("id"),
        name: row.get("name"),
        sms_number: row.get("sms_number"),
        knowledge_dir: row.get("knowledge_dir"),
        support_email: row.get("support_email"),
        support_hours: row.get("support_hours"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_a_customer() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("parley.db")).await.unwrap();
        let merchant = Merchant {
            id: "shop".into(),
            name: "Shop".into(),
            sms_number: Some("+15550000000".into()),
            knowledge_dir: None,
            support_email: None,
            support_hours: None,
        };
        store.upsert_merchant(&merchant, 1).await.unwrap();
        let inbound = NewInbound {
            merchant_id: "shop",
            phone: "+15551112222",
            body: "STOP",
            channel: "test",
            provider_sid: Some("SM1"),
            num_media: 0,
        };
        let Received::New { message_id, .. } = store.receive(&inbound, 2).await.unwrap() else {
            panic!("first receipt is new");
        };
        (dir, store, message_id)
    }

    #[tokio::test]
    async fn an_unknown_value_in_the_database_is_an_error_not_a_default() {
        let (_dir, store, message_id) = store_with_a_customer().await;
        let pending = store.pending_inbound(message_id).await.unwrap().unwrap();
        let transcript = store.transcript("shop", pending.conversation_id).await.unwrap();
        assert_eq!(transcript[0].author, Author::Customer);
        // The schema's CHECK refuses the value; a database written by a newer Parley (with an
        // author this one does not know) is what the pragma stands in for.
        let mut writer = store.writer.acquire().await.unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&mut *writer)
            .await
            .unwrap();
        sqlx::query("UPDATE messages SET author = 'robot' WHERE id = ?")
            .bind(message_id)
            .execute(&mut *writer)
            .await
            .unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = OFF")
            .execute(&mut *writer)
            .await
            .unwrap();
        drop(writer);
        // Once an unknown author read as the customer; now the row is refused, naming the column.
        let err = store
            .transcript("shop", pending.conversation_id)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("author"), "{err}");
    }

    #[tokio::test]
    async fn the_consent_ledger_refuses_updates_and_deletes() {
        let (_dir, store, message_id) = store_with_a_customer().await;
        let pending = store.pending_inbound(message_id).await.unwrap().unwrap();
        let record = DecisionRecord {
            message_id,
            conversation_id: pending.conversation_id,
            state: pending.state,
            consent: Some((ConsentAction::OptOut, "STOP".into())),
            reply: None,
            escalation: None,
        };
        store.record_decision(&record, 3).await.unwrap();
        assert_eq!(store.consent_ledger("shop").await.unwrap().len(), 1);
        for sql in [
            "UPDATE consent_events SET action = 'opt_in'",
            "DELETE FROM consent_events",
        ] {
            let err = sqlx::query(sql).execute(&store.writer).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
        }
        assert_eq!(store.consent_ledger("shop").await.unwrap()[0].action, "opt_out");
    }

    #[tokio::test]
    async fn a_message_is_decided_once_and_a_sid_stored_once() {
        let (_dir, store, message_id) = store_with_a_customer().await;
        let again = NewInbound {
            merchant_id: "shop",
            phone: "+15551112222",
            body: "STOP",
            channel: "test",
            provider_sid: Some("SM1"),
            num_media: 0,
        };
        assert_eq!(store.receive(&again, 5).await.unwrap(), Received::Duplicate);
        let pending = store.pending_inbound(message_id).await.unwrap().unwrap();
        let record = DecisionRecord {
            message_id,
            conversation_id: pending.conversation_id,
            state: pending.state,
            consent: None,
            reply: Some((Author::Ai, "hello".into())),
            escalation: None,
        };
        assert!(store.record_decision(&record, 6).await.unwrap().is_some());
        assert!(matches!(
            store.record_decision(&record, 7).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.count(CountOf::Outbound).await.unwrap(), 1);
        assert!(store.pending_inbound(message_id).await.unwrap().is_none());
    }
}
