//! The service's integration tests: the real server on 127.0.0.1:0 (and, for restart
//! safety, the real `parley` binary), real SQLite, the real agent and embedding model, and a
//! local fake of Twilio's REST API; Shopify webhooks with Shopify's documented payloads.

mod api;
mod browser;
mod flows;
mod hardening;
mod helpers;
mod jobs;
mod outbox;
mod qdrant;
mod restart;
mod shopify;
mod webhooks;
