//! One abstraction for texts leaving Parley, whatever carries them: the built-in simulator
//! (stores and "delivers" at once) or Twilio's Messages API. Outbound flows will use the same.

use async_trait::async_trait;

use crate::store::MessageStatus;
use crate::twilio::{OutboundSms, SendError, TwilioClient};

/// A text to send.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub to: &'a str,
    /// The merchant's number; providers may send from a service instead.
    pub from: Option<&'a str>,
    pub body: &'a str,
}

/// What the provider said when it took the message.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub provider_sid: String,
    /// Where the provider says the message is (queued, sent, delivered ...).
    pub status: MessageStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The provider refused this message; retrying will not help (e.g. Twilio 21610).
    #[error("rejected by the provider (code {code:?}): {message}")]
    Rejected { code: Option<String>, message: String },
    /// The provider could not be reached or kept failing after retries; it has not taken the
    /// message, so it may be sent again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider did not answer a request it may have received: the message may or may not
    /// have gone, so it is never sent again (the `unknown` rule).
    #[error("provider did not answer: {0}")]
    Unanswered(String),
}

#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, message: &Outgoing<'_>) -> Result<Accepted, ChannelError>;
}

/// The default channel: nothing leaves the machine; the stored message is the delivery, read
/// back by `parley chat` and `GET /v1/simulator/messages`.
#[derive(Debug, Default)]
pub struct SimulatorChannel;

#[async_trait]
impl Channel for SimulatorChannel {
    fn name(&self) -> &'static str {
        "simulator"
    }

    async fn send(&self, _message: &Outgoing<'_>) -> Result<Accepted, ChannelError> {
        // Random, not a process id and a counter: ids are unique in the store, and after a
        // restart under the same PID a counter would repeat them and fail every reply.
        let mut id = [0_u8; 16];
        getrandom::fill(&mut id).map_err(|err| ChannelError::Unavailable(err.to_string()))?;
        Ok(Accepted {
            provider_sid: format!("SIM{}", hex::encode(id)),
            status: MessageStatus::Delivered,
        })
    }
}

/// Twilio's Messages REST API, with the status callback pointing back at this service.
pub struct TwilioChannel {
    client: TwilioClient,
    status_callback: String,
}

impl TwilioChannel {
    pub fn new(client: TwilioClient, status_callback: String) -> Self {
        Self {
            client,
            status_callback,
        }
    }
}

#[async_trait]
impl Channel for TwilioChannel {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, message: &Outgoing<'_>) -> Result<Accepted, ChannelError> {
        let sms = OutboundSms {
            to: message.to,
            from: message.from.unwrap_or_default(),
            body: message.body,
            status_callback: Some(&self.status_callback),
        };
        match self.client.send(&sms).await {
            Ok(sent) => Ok(Accepted {
                // Twilio took it: a status word Parley does not track still means accepted.
                status: MessageStatus::from_provider(&sent.status).unwrap_or(MessageStatus::Accepted),
                provider_sid: sent.sid,
            }),
            Err(err @ SendError::Unavailable(_)) => Err(ChannelError::Unavailable(err.to_string())),
            Err(err @ SendError::Unanswered(_)) => Err(ChannelError::Unanswered(err.to_string())),
            Err(SendError::Rejected { code, message, .. }) => Err(ChannelError::Rejected {
                code: code.map(|c| c.to_string()),
                message,
            }),
            // After a 2xx Twilio probably queued the message: resending could text twice.
            Err(
                err @ (SendError::InvalidMessage(_)
                | SendError::InvalidResponse { .. }
                | SendError::Config(_)),
            ) => Err(ChannelError::Rejected {
                code: None,
                message: err.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restart under the same PID once repeated every id (and every reply then failed on
    /// the store's unique index): two channels, like two processes, never share one.
    #[tokio::test]
    async fn simulator_ids_do_not_repeat_across_instances() {
        let message = Outgoing {
            to: "+15550001111",
            from: None,
            body: "hi",
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2 {
            let channel = SimulatorChannel;
            for _ in 0..50 {
                let id = channel.send(&message).await.unwrap().provider_sid;
                assert!(seen.insert(id), "a simulator message id repeated");
            }
        }
    }
}
