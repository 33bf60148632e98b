//! Flows that start conversations (cart recovery, welcome, feedback, upsell, win-back): their
//! definitions and validation (`flow`), the pure step planner that decides when each message
//! is due and when a flow ends (`plan`), and the message templates (`render`). No HTTP, no
//! SQL: the server feeds it facts and sends what it decides through the outbox.

pub mod flow;
pub mod plan;
pub mod render;

pub use flow::{Flow, Flows, FlowsError, Step, Trigger};
pub use plan::{Exit, Facts, Next, Progress, next};
pub use render::{OfferText, TemplateContext, render};
