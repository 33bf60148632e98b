//! Flows on the server: a trigger (today an abandoned checkout) enrolls the customer, and a
//! `flow` job decides each step when it comes due with `parley_campaigns::next` over the
//! store's facts — send the step (a `send` job, so the outbox applies consent, quiet hours
//! and caps), wait, or end the enrollment with its reason.

use std::sync::Arc;

use parley_campaigns::{Exit, Facts, Flows, FlowsError, Next, OfferText, Progress, TemplateContext, Trigger};
use parley_core::ConsentPurpose;
use parley_knowledge::{KnowledgeError, MerchantData, MerchantId};
use serde::{Deserialize, Serialize};

use crate::jobs::{SendRequest, check_send};
use crate::service::{Service, ServiceError};
use crate::store::JobRow;
use crate::store::commerce::CheckoutRecord;
use crate::store::flows::{EnrollmentRow, NewEnrollment};
use crate::store::jobs::{FlowPayload, JobPayload};

/// What an enrollment's messages show, fixed when the customer is enrolled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContext {
    #[serde(default)]
    pub first_name: Option<String>,
    /// Product titles, most relevant first.
    #[serde(default)]
    pub products: Vec<String>,
    #[serde(default)]
    pub cart_url: Option<String>,
    /// The checkout token a cart flow is about.
    #[serde(default)]
    pub checkout: Option<String>,
    /// The catalog handles of `products` that the catalog has, in the same order.
    #[serde(default)]
    pub product_handles: Vec<String>,
}

/// What a sent flow message was about, kept on the message (`messages.flow_context`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowMessageContext {
    pub flow: String,
    /// 0-based.
    pub step: usize,
    #[serde(default)]
    pub product_handles: Vec<String>,
    #[serde(default)]
    pub cart_url: Option<String>,
    #[serde(default)]
    pub offer_code: Option<String>,
    #[serde(default)]
    pub offer_expires_at: Option<i64>,
}

/// A reply to a flow message is answered in its context (see
/// `ConversationState::carry_store_message`); a context that does not read changes nothing.
pub fn carry_flow_message(state: &mut parley_agent::ConversationState, body: &str, context: &str) {
    if let Ok(context) = serde_json::from_str::<FlowMessageContext>(context) {
        state.carry_store_message(body, &context.product_handles);
    }
}

/// The merchant's flows: the built-ins with its `flows.toml` (offers checked against its
/// `[[offers]]`). An ingest refuses a file this rejects, so the error names `flows.toml`.
pub fn flows_of_data(data: &MerchantData) -> Result<Flows, FlowsError> {
    let codes: Vec<&str> = data.config.offers.iter().map(|o| o.code.as_str()).collect();
    Flows::load(data.flows_toml.as_deref().unwrap_or(""), &codes)
}

/// The merchant's segments: the built-ins (with `segments.toml`'s thresholds) and its own.
pub fn segments_of_data(data: &MerchantData) -> Result<Vec<parley_campaigns::Segment>, String> {
    parley_campaigns::load_segments(data.segments_toml.as_deref().unwrap_or(""))
}

/// [`flows_of_data`] and [`segments_of_data`] as an ingest error naming the file.
pub fn check_flows(data: &MerchantData, dir: Option<&std::path::Path>) -> Result<(), KnowledgeError> {
    let invalid = |file: &str, message: String| {
        let path = dir.map_or_else(|| std::path::PathBuf::from(file), |d| d.join(file));
        KnowledgeError::InvalidFile { path, message }
    };
    flows_of_data(data).map_err(|err| invalid("flows.toml", err.to_string()))?;
    segments_of_data(data).map_err(|err| invalid("segments.toml", err))?;
    Ok(())
}

/// A trigger older than this when it arrives starts no flow.
const STALE_TRIGGER_MS: i64 = 24 * 3_600_000;

/// The key of the decision about step `steps_sent` due at `due`: scheduling the same
/// decision twice (a re-run, a checkout update that did not move the time) makes one job.
fn decision_key(enrollment: i64, steps_sent: usize, due: i64) -> String {
    format!("flow:{enrollment}:{steps_sent}:{due}")
}

/// An offer's expiry as the customer reads it, in the store's time zone ("Dec 8, 9:00 PM").
fn expiry_text(at_ms: i64, data: &MerchantData) -> Option<String> {
    let local = jiff::Timestamp::from_millisecond(at_ms)
        .ok()?
        .to_zoned_datetime(data.config.timezone.zone());
    Some(local.strftime("%b %-d, %-I:%M %p").to_string())
}

/// A step's text for one enrollment: its template over the enrollment's context, the store's
/// name, and its offer (from the merchant's `[[offers]]`) with the expiry given.
pub fn render_step(
    data: &MerchantData,
    spec: &parley_campaigns::Step,
    context: &MessageContext,
    offer_expires_at: Option<i64>,
) -> Result<String, String> {
    let offer = spec.offer.as_deref().and_then(|code| {
        let offer = data
            .config
            .offers
            .iter()
            .find(|o| o.code.eq_ignore_ascii_case(code))?;
        Some(OfferText {
            code: offer.code.clone(),
            description: offer.description.clone(),
            expires: offer_expires_at.and_then(|at| expiry_text(at, data)),
        })
    });
    let ctx = TemplateContext {
        store: data.config.name.clone(),
        first_name: context.first_name.clone(),
        products: context.products.clone(),
        cart_url: context.cart_url.clone(),
        offer,
        recommendation: None,
    };
    parley_campaigns::render(&spec.template, &ctx)
}

impl Service {
    /// The merchant's catalog and flows as last ingested; `None` (logged) when either cannot
    /// be read, so no flow sends on a broken definition.
    fn flows_of(&self, merchant_id: &str) -> Option<(Arc<MerchantData>, Flows)> {
        let merchant = MerchantId::parse(merchant_id).ok()?;
        let data = match self.agent.knowledge().merchant(&merchant) {
            Ok(data) => data,
            Err(err) => {
                tracing::warn!(merchant = merchant_id, error = %err, "no catalog; flows wait");
                return None;
            }
        };
        match flows_of_data(&data) {
            Ok(flows) => Some((data, flows)),
            Err(err) => {
                tracing::error!(merchant = merchant_id, error = %err, "flows.toml no longer reads; flows wait");
                None
            }
        }
    }

    /// An applied checkout: a cart with a phone and marketing consent that is not completed
    /// enrolls its customer in the flows an abandoned checkout starts.
    pub(crate) async fn on_checkout(
        &self,
        merchant_id: &str,
        checkout: &CheckoutRecord,
    ) -> Result<(), ServiceError> {
        let Some(phone) = checkout.phone.as_deref() else {
            return Ok(());
        };
        if !checkout.accepts_marketing || checkout.completed_at.is_some() {
            return Ok(());
        }
        // A delivery about a cart left long ago (a replay, a backfill) would text a customer
        // about something they have forgotten: it starts nothing.
        if self.now().saturating_sub(checkout.updated_at) > STALE_TRIGGER_MS {
            return Ok(());
        }
        let Some((data, flows)) = self.flows_of(merchant_id) else {
            return Ok(());
        };
        let lines =
            serde_json::from_str::<Vec<serde_json::Value>>(&checkout.line_items_json).unwrap_or_default();
        let titles: Vec<String> = lines
            .iter()
            .filter_map(|line| line.get("title").and_then(|t| t.as_str()).map(str::to_owned))
            .collect();
        // Ids are kept as text (Shopify's are beyond what JSON numbers hold exactly).
        let product_handles: Vec<String> = lines
            .iter()
            .filter_map(|line| {
                let id = line.get("product_id")?;
                let id = id.as_str().map(str::to_owned).unwrap_or_else(|| id.to_string());
                data.products
                    .iter()
                    .find(|p| p.id.to_string() == id)
                    .map(|p| p.handle.clone())
            })
            .collect();
        let context = MessageContext {
            first_name: checkout.customer.as_ref().and_then(|c| c.first_name.clone()),
            products: titles,
            cart_url: checkout.abandoned_url.clone(),
            checkout: Some(checkout.token.clone()),
            product_handles,
        };
        let subject = format!("checkout:{}", checkout.token);
        self.start_flows(
            merchant_id,
            &flows,
            Trigger::CheckoutAbandoned,
            phone,
            &subject,
            checkout.updated_at,
            &context,
        )
        .await
    }

    /// A keyword sign-up whose confirmation reached the provider: the welcome flow. (Consent
    /// from a checkout box or Shopify comes with a cart or an order, whose flows speak first;
    /// an import is not a moment to text thousands of people at once.)
    pub(crate) async fn on_marketing_confirmed(
        &self,
        merchant_id: &str,
        phone: &str,
        message_id: i64,
    ) -> Result<(), ServiceError> {
        let Some((_, flows)) = self.flows_of(merchant_id) else {
            return Ok(());
        };
        let first_name = self
            .store
            .customer_by_phone(merchant_id, phone)
            .await?
            .and_then(|customer| customer.first_name);
        let context = MessageContext {
            first_name,
            ..MessageContext::default()
        };
        let subject = format!("opt-in:{message_id}");
        self.start_flows(
            merchant_id,
            &flows,
            Trigger::MarketingOptIn,
            phone,
            &subject,
            self.now(),
            &context,
        )
        .await
    }

    /// A shipment Shopify reports delivered: the flows that follow a delivery (feedback).
    pub(crate) async fn on_delivered(
        &self,
        merchant_id: &str,
        shopify_order_id: &str,
        delivered_at: i64,
    ) -> Result<(), ServiceError> {
        if self.now().saturating_sub(delivered_at) > STALE_TRIGGER_MS {
            return Ok(());
        }
        let Some((data, flows)) = self.flows_of(merchant_id) else {
            return Ok(());
        };
        let Some(phone) = self.store.order_phone(merchant_id, shopify_order_id).await? else {
            return Ok(());
        };
        let Some(order) = self.store.order(merchant_id, shopify_order_id).await? else {
            return Ok(());
        };
        let products: Vec<String> = order.line_items.iter().map(|line| line.title.clone()).collect();
        let product_handles = products
            .iter()
            .filter_map(|title| {
                data.products
                    .iter()
                    .find(|p| &p.title == title)
                    .map(|p| p.handle.clone())
            })
            .collect();
        let first_name = self
            .store
            .customer_by_phone(merchant_id, &phone)
            .await?
            .and_then(|customer| customer.first_name);
        let context = MessageContext {
            first_name,
            products,
            product_handles,
            ..MessageContext::default()
        };
        let subject = format!("order:{shopify_order_id}");
        self.start_flows(
            merchant_id,
            &flows,
            Trigger::OrderDelivered,
            &phone,
            &subject,
            delivered_at,
            &context,
        )
        .await
    }

    /// Enrolls `phone` in every enabled flow `trigger` starts and schedules each first step.
    #[allow(clippy::too_many_arguments)]
    async fn start_flows(
        &self,
        merchant_id: &str,
        flows: &Flows,
        trigger: Trigger,
        phone: &str,
        subject: &str,
        started_at: i64,
        context: &MessageContext,
    ) -> Result<(), ServiceError> {
        let context = serde_json::to_string(context).map_err(crate::store::StoreError::from)?;
        for flow in flows.started_by(trigger) {
            let enrollment = self
                .store
                .enroll(
                    &NewEnrollment {
                        merchant_id,
                        flow_id: &flow.id,
                        phone,
                        subject,
                        started_at,
                        context: &context,
                    },
                    self.now(),
                )
                .await?;
            let Some(enrollment) = enrollment else { continue };
            if !enrollment.sent_at().is_empty() {
                continue;
            }
            let due = enrollment
                .started_at
                .saturating_add(i64::try_from(flow.steps[0].delay.as_millis()).unwrap_or(i64::MAX));
            self.schedule_decision(&enrollment, 0, due).await?;
        }
        Ok(())
    }

    async fn schedule_decision(
        &self,
        enrollment: &EnrollmentRow,
        steps_sent: usize,
        due: i64,
    ) -> Result<(), ServiceError> {
        let key = decision_key(enrollment.id, steps_sent, due);
        self.schedule_job(
            &enrollment.merchant_id,
            JobPayload::Flow(FlowPayload {
                enrollment: enrollment.id,
            }),
            Some(&key),
            due,
            None,
        )
        .await?;
        Ok(())
    }

    /// A due `flow` job: decide, act, then mark the job done (a crash in between repeats the
    /// decision, which the keys make harmless).
    pub(crate) async fn run_flow_job(&self, job: &JobRow, now: i64) -> Result<(), ServiceError> {
        let payload: FlowPayload = match serde_json::from_str(&job.payload) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(job = job.id, error = %err, "a flow job's payload is unreadable; failing it");
                self.store.fail_job(job.id, "unreadable payload", now).await?;
                return Ok(());
            }
        };
        if let Some(enrollment) = self.store.enrollment(payload.enrollment).await?
            && enrollment.status == "active"
        {
            self.decide_step(&enrollment, now).await?;
        }
        self.store.finish_flow_job(job.id, now).await?;
        Ok(())
    }

    async fn decide_step(&self, enrollment: &EnrollmentRow, now: i64) -> Result<(), ServiceError> {
        let exit = |reason: Exit| async move {
            tracing::info!(
                enrollment = enrollment.id,
                flow = enrollment.flow_id,
                reason = reason.as_str(),
                "flow ended"
            );
            self.store
                .exit_enrollment(enrollment.id, reason.as_str(), now)
                .await
        };
        let Some((data, flows)) = self.flows_of(&enrollment.merchant_id) else {
            return Ok(());
        };
        let Some(flow) = flows.get(&enrollment.flow_id) else {
            exit(Exit::Disabled).await?;
            return Ok(());
        };
        let context: MessageContext = serde_json::from_str(&enrollment.context).unwrap_or_default();
        let known = self
            .store
            .flow_facts(
                &enrollment.merchant_id,
                &enrollment.phone,
                context.checkout.as_deref(),
            )
            .await?;
        let facts = Facts {
            marketing_consent: known.marketing == "confirmed",
            opted_out: known.opted_out,
            in_open_escalation: known.in_open_escalation,
            ordered: known.checkout_completed,
            last_customer_text_at: known.last_customer_text_at,
        };
        let mut progress = Progress {
            started_at: enrollment.started_at,
            sent_at: enrollment.sent_at(),
        };
        let (step, offer_expires_at) = match parley_campaigns::next(&flows, flow, &progress, &facts, now) {
            Next::Exit(reason) => {
                exit(reason).await?;
                return Ok(());
            }
            Next::WaitUntil(due) => {
                self.schedule_decision(enrollment, progress.sent_at.len(), due)
                    .await?;
                return Ok(());
            }
            Next::Send {
                step,
                offer_expires_at,
            } => (step, offer_expires_at),
        };
        let spec = &flow.steps[step];
        let body = match render_step(&data, spec, &context, offer_expires_at) {
            Ok(body) => body,
            Err(problem) => {
                // Checked at ingest with every name filled in; a value that still breaks it
                // must not turn into a half-written text.
                tracing::error!(
                    enrollment = enrollment.id,
                    step,
                    problem,
                    "a flow message did not render; the flow waits"
                );
                return Ok(());
            }
        };
        let key = format!("flow-send:{}:{step}", enrollment.id);
        let subject = format!("flow:{}", flow.id);
        let request = SendRequest {
            to: &enrollment.phone,
            body: &body,
            purpose: ConsentPurpose::Marketing,
            subject: Some(&subject),
            send_at_ms: None,
            key: Some(&key),
            created_by: None,
        };
        let mut payload = match check_send(&request, now) {
            Ok((payload, _)) => payload,
            Err(invalid) => {
                tracing::error!(enrollment = enrollment.id, step, %invalid, "a flow message cannot be sent; the flow ends");
                exit(Exit::Disabled).await?;
                return Ok(());
            }
        };
        payload.automated = true;
        let about = FlowMessageContext {
            flow: flow.id.clone(),
            step,
            product_handles: context.product_handles.clone(),
            cart_url: context.cart_url.clone(),
            offer_code: spec.offer.clone(),
            offer_expires_at,
        };
        payload.flow_context = Some(serde_json::to_string(&about).map_err(crate::store::StoreError::from)?);
        self.schedule_job(
            &enrollment.merchant_id,
            JobPayload::Send(&payload),
            Some(&key),
            now,
            None,
        )
        .await?;
        self.store.record_flow_step(enrollment.id, step, now).await?;
        tracing::info!(
            enrollment = enrollment.id,
            flow = flow.id,
            step,
            "flow step scheduled"
        );
        progress.sent_at.push(now);
        match parley_campaigns::next(&flows, flow, &progress, &facts, now) {
            Next::Exit(Exit::Completed) => {
                exit(Exit::Completed).await?;
            }
            Next::WaitUntil(due) => {
                self.schedule_decision(enrollment, progress.sent_at.len(), due)
                    .await?
            }
            // Decided again at once: the next step has no delay, or something ended it.
            Next::Send { .. } | Next::Exit(_) => {
                self.schedule_decision(enrollment, progress.sent_at.len(), now)
                    .await?
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailhead() -> MerchantData {
        MerchantData::load(&parley_testkit::workspace_root().join("fixtures/merchants/trailhead")).unwrap()
    }

    #[test]
    fn a_flows_file_is_checked_against_the_merchants_offers_and_names_the_file() {
        let mut data = trailhead();
        assert!(check_flows(&data, None).is_ok(), "no flows.toml: the built-ins");
        let code = data.config.offers[0].code.clone();
        data.flows_toml = Some(format!(
            "[[flow]]\nid = \"cart_recovery\"\ntrigger = \"checkout_abandoned\"\n[[flow.step]]\ndelay = \"1h\"\noffer = \"{code}\"\ntemplate = \"{{{{ offer.code }}}}?\"\n"
        ));
        assert!(check_flows(&data, None).is_ok());
        data.flows_toml = Some(
            "[[flow]]\nid = \"cart_recovery\"\ntrigger = \"checkout_abandoned\"\n[[flow.step]]\ndelay = \"1h\"\noffer = \"HALFOFF\"\ntemplate = \"a?\"\n".into(),
        );
        let err = check_flows(&data, Some(std::path::Path::new("/m/trailhead")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/m/trailhead/flows.toml")
                && err.contains("cart_recovery")
                && err.contains("HALFOFF"),
            "{err}"
        );
        data.flows_toml = None;
        data.segments_toml = Some("[[segment]]\nid = \"big\"\nrule = { spent_at_least = -5 }\n".into());
        let err = check_flows(&data, None).unwrap_err().to_string();
        assert!(
            err.contains("segments.toml") && err.contains("segment `big`"),
            "{err}"
        );
    }

    #[test]
    fn a_reply_to_a_flow_message_is_about_its_product() {
        let mut state = parley_agent::ConversationState::default();
        let context = serde_json::to_string(&FlowMessageContext {
            flow: "cart_recovery".into(),
            step: 0,
            product_handles: vec!["stormline-jacket".into()],
            ..FlowMessageContext::default()
        })
        .unwrap();
        carry_flow_message(&mut state, "Any questions about the Stormline?", &context);
        carry_flow_message(&mut state, "Any questions about the Stormline?", &context);
        assert_eq!(
            state.turns.len(),
            1,
            "the message is one turn, however often it is carried"
        );
        assert_eq!(state.last_product.as_ref().unwrap().handle, "stormline-jacket");
        // A context that does not read changes nothing.
        let mut untouched = parley_agent::ConversationState::default();
        carry_flow_message(&mut untouched, "hi", "not json");
        assert_eq!(untouched, parley_agent::ConversationState::default());
    }
}
