//! Flow enrollments (one customer's way through one flow) and the facts a flow step is
//! decided on: consent, an open escalation, the customer's last text, the checkout's fate.

use sqlx::Row as _;

use super::{Result, Store};

/// A customer to enroll.
#[derive(Debug, Clone)]
pub struct NewEnrollment<'a> {
    pub merchant_id: &'a str,
    pub flow_id: &'a str,
    pub phone: &'a str,
    pub subject: &'a str,
    pub started_at: i64,
    /// JSON (see `flows::MessageContext`).
    pub context: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnrollmentRow {
    pub id: i64,
    pub merchant_id: String,
    pub flow_id: String,
    pub phone: String,
    pub subject: String,
    pub started_at: i64,
    pub sent_at: String,
    pub context: String,
    pub status: String,
    pub exit_reason: Option<String>,
}

impl EnrollmentRow {
    /// When each step went out (ms).
    pub fn sent_at(&self) -> Vec<i64> {
        serde_json::from_str(&self.sent_at).unwrap_or_default()
    }
}

/// What the store knows about a customer when a flow step is due.
#[derive(Debug, Clone, Default)]
pub struct FlowFacts {
    pub opted_out: bool,
    /// The customer's marketing consent (`confirmed` is consent).
    pub marketing: String,
    pub in_open_escalation: bool,
    pub last_customer_text_at: Option<i64>,
    /// The checkout the enrollment is about completed (an order arrived for it).
    pub checkout_completed: bool,
}

const ENROLLMENT_COLUMNS: &str =
    "id, merchant_id, flow_id, phone, subject, started_at, sent_at, context, status, exit_reason";

impl Store {
    /// Enrolls a customer, or, while nothing has been sent yet, moves the start of their
    /// enrollment to this later trigger (a cart edited again). Returns the enrollment, or
    /// `None` when it already ended: a flow does not start over for the same subject.
    pub async fn enroll(&self, new: &NewEnrollment<'_>, now: i64) -> Result<Option<EnrollmentRow>> {
        self.guard(async move {
            sqlx::query(
                "INSERT INTO flow_enrollments (merchant_id, flow_id, phone, subject, started_at, context, status,
                 created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)
                 ON CONFLICT (merchant_id, flow_id, subject) DO UPDATE SET
                   started_at = excluded.started_at, context = excluded.context, updated_at = excluded.updated_at
                 WHERE flow_enrollments.status = 'active' AND flow_enrollments.sent_at = '[]'
                   AND excluded.started_at > flow_enrollments.started_at",
            )
            .bind(new.merchant_id)
            .bind(new.flow_id)
            .bind(new.phone)
            .bind(new.subject)
            .bind(new.started_at)
            .bind(new.context)
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await?;
        let row = sqlx::query_as::<_, EnrollmentRow>(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM flow_enrollments
             WHERE merchant_id = ? AND flow_id = ? AND subject = ? AND status = 'active'"
        ))
        .bind(new.merchant_id)
        .bind(new.flow_id)
        .bind(new.subject)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row)
    }

    pub async fn enrollment(&self, id: i64) -> Result<Option<EnrollmentRow>> {
        Ok(sqlx::query_as::<_, EnrollmentRow>(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM flow_enrollments WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// A customer's enrollments, newest first.
    pub async fn enrollments_of(&self, merchant_id: &str, phone: &str) -> Result<Vec<EnrollmentRow>> {
        Ok(sqlx::query_as::<_, EnrollmentRow>(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM flow_enrollments WHERE merchant_id = ? AND phone = ? ORDER BY id DESC"
        ))
        .bind(merchant_id)
        .bind(phone)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Records that step `step` (0-based) went out at `now`; a second call for the same step
    /// (a re-run after a crash) changes nothing. Returns whether it was recorded now.
    pub async fn record_flow_step(&self, id: i64, step: usize, now: i64) -> Result<bool> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        self.write_changed(
            sqlx::query(
                "UPDATE flow_enrollments SET sent_at = json_insert(sent_at, '$[#]', ?), updated_at = ?
                 WHERE id = ? AND status = 'active' AND json_array_length(sent_at) = ?",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(step),
        )
        .await
    }

    /// Ends an enrollment with its reason (once).
    pub async fn exit_enrollment(&self, id: i64, reason: &str, now: i64) -> Result<bool> {
        self.write_changed(
            sqlx::query(
                "UPDATE flow_enrollments SET status = 'exited', exit_reason = ?, updated_at = ?
                 WHERE id = ? AND status = 'active'",
            )
            .bind(reason)
            .bind(now)
            .bind(id),
        )
        .await
    }

    /// The E.164 phone an order was placed with, if it has one.
    pub async fn order_phone(&self, merchant_id: &str, shopify_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT phone FROM orders WHERE merchant_id = ? AND shopify_id = ?")
                .bind(merchant_id)
                .bind(shopify_id)
                .fetch_optional(&self.reader)
                .await?
                .and_then(|row| row.get("phone")),
        )
    }

    /// The facts a step of `merchant_id`'s flow for `phone` is decided on; `checkout` is the
    /// token of the cart the enrollment is about, if it is about one.
    pub async fn flow_facts(
        &self,
        merchant_id: &str,
        phone: &str,
        checkout: Option<&str>,
    ) -> Result<FlowFacts> {
        let customer = sqlx::query(
            "SELECT cu.opted_out, cu.marketing,
               EXISTS (SELECT 1 FROM escalations e JOIN conversations c ON c.id = e.conversation_id
                       WHERE c.customer_id = cu.id AND e.status <> 'resolved') AS escalated,
               (SELECT MAX(m.created_at) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                WHERE c.customer_id = cu.id AND m.direction = 'in') AS last_text
             FROM customers cu WHERE cu.merchant_id = ? AND cu.phone = ?",
        )
        .bind(merchant_id)
        .bind(phone)
        .fetch_optional(&self.reader)
        .await?;
        let mut facts = FlowFacts {
            marketing: "none".into(),
            ..FlowFacts::default()
        };
        if let Some(row) = customer {
            facts.opted_out = row.get("opted_out");
            facts.marketing = row.get("marketing");
            facts.in_open_escalation = row.get("escalated");
            facts.last_customer_text_at = row.get("last_text");
        }
        if let Some(token) = checkout {
            facts.checkout_completed = sqlx::query(
                "SELECT completed_at IS NOT NULL AS done FROM checkouts WHERE merchant_id = ? AND token = ?",
            )
            .bind(merchant_id)
            .bind(token)
            .fetch_optional(&self.reader)
            .await?
            .is_some_and(|row| row.get::<bool, _>("done"));
        }
        Ok(facts)
    }
}
