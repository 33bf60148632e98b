//! Flows that start conversations (cart recovery, welcome, feedback, upsell, win-back): their
//! definitions and validation (`flow`), the pure step planner that decides when each message
//! is due and when a flow ends (`plan`), the message templates (`render`), and segments
//! (`segment`: who a flow or campaign is for, as a rule the server compiles to SQL). No HTTP, no
//! SQL: the server feeds it facts and sends what it decides through the outbox.

pub mod flow;
pub mod plan;
pub mod render;
pub mod segment;

pub use flow::{Flow, Flows, FlowsError, Step, Trigger};
pub use plan::{Exit, Facts, Next, Progress, next};
pub use render::{OfferText, TemplateContext, render};
pub use segment::{Rule, Segment, Thresholds, load_segments};
