//! The JSON shapes the APIs answer with, built from the store's rows: what a client sees is
//! decided here (times in RFC 3339, internal ids left out), so a column added to a table
//! never leaks into a response by accident.

use serde::Serialize;

use crate::store::{
    Author, ConversationRow, Direction, EscalationRow, EscalationStatus, MessageRow, MessageStatus,
};

/// A message in a transcript or the simulator's inbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Message)]
pub struct MessageBody {
    pub id: i64,
    pub direction: Direction,
    pub author: Author,
    pub body: String,
    /// Pictures an inbound MMS carried (not shown to the agent).
    pub attachments: i64,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<MessageRow> for MessageBody {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            direction: row.direction,
            author: row.author,
            body: row.body,
            attachments: row.attachments,
            status: row.status,
            error_code: row.error_code,
            created_at: row.created_at,
        }
    }
}

/// An escalation as the queue lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Escalation)]
pub struct EscalationBody {
    pub id: i64,
    pub conversation_id: i64,
    pub customer_phone: String,
    pub reason: String,
    pub reason_detail: String,
    pub summary: String,
    pub suggested_reply: Option<String>,
    pub status: EscalationStatus,
    pub assignee: Option<String>,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub due_at: i64,
}

impl From<&EscalationRow> for EscalationBody {
    fn from(row: &EscalationRow) -> Self {
        Self {
            id: row.id,
            conversation_id: row.conversation_id,
            customer_phone: row.customer_phone.clone(),
            reason: row.reason.clone(),
            reason_detail: row.reason_detail.clone(),
            summary: row.summary.clone(),
            suggested_reply: row.suggested_reply.clone(),
            status: row.status,
            assignee: row.assignee.clone(),
            created_at: row.created_at,
            due_at: row.due_at,
        }
    }
}

/// A conversation in the merchant's list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Conversation)]
pub struct ConversationBody {
    pub id: i64,
    pub customer_phone: String,
    pub opted_out: bool,
    pub escalated: bool,
    pub n_messages: i64,
    #[serde(serialize_with = "parley_core::clock::serialize_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl From<ConversationRow> for ConversationBody {
    fn from(row: ConversationRow) -> Self {
        Self {
            id: row.id,
            customer_phone: row.customer_phone,
            opted_out: row.opted_out,
            escalated: row.escalated,
            n_messages: row.n_messages,
            updated_at: row.updated_at,
        }
    }
}
