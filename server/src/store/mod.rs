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
//!
//! One submodule per aggregate, each adding its methods to `Store`: `merchants`, `users`
//! (tokens and inbox sessions), `inbound` (receipt and the decision transaction), `outbound`
//! (the send path's bookkeeping and status callbacks), `conversations` (messages and their
//! vocabulary), `escalations`, `consent`, `jobs` (the scheduler's table) and `commerce` (Shopify events, customers'
//! commerce facts, checkouts, orders). This file holds the pools and the rules every
//! write follows. Rows are the store's own types; the APIs' JSON shapes are in `api::bodies`.

pub mod commerce;
mod consent;
mod conversations;
mod escalations;
pub mod flows;
mod inbound;
pub mod jobs;
mod merchants;
mod outbound;
pub mod segments;
#[cfg(test)]
mod tests;
mod users;

pub use consent::{ConsentAction, ConsentRow};
pub use conversations::{Author, ConversationRow, Direction, MessageRow, MessageStatus};
pub use escalations::{EscalationRow, EscalationStatus, NewEscalation};
pub use inbound::{DecisionRecord, MARKETING_CONFIRMATION, NewInbound, PendingInbound, Received};
pub use jobs::{JobKind, JobOutcome, JobRow, JobStatus, NewJob, SendPayload};
pub use merchants::Merchant;
pub use outbound::{OutboundJob, SendDecision, SendDecisionRow};
pub use users::{User, UserRole};

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Executor as _, Row, SqliteConnection, SqlitePool};

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
    /// One guarded write on its own: whether it changed any row (a conditional UPDATE that
    /// found its row already moved on changes none).
    async fn write_changed<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<bool> {
        self.guard(async move { Ok(query.execute(&self.writer).await?.rows_affected() > 0) })
            .await
    }

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
