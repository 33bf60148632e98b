//! Parley's reply agent: given a merchant, a conversation and a customer's new SMS, decide
//! whether to answer, hand to a person, or act on a compliance keyword. Pure logic: no HTTP.

pub mod compliance;
pub mod sms;
pub mod types;

pub use types::*;
