//! The message lifecycle, independent of HTTP: store an inbound text, decide it with the
//! agent, commit the decision (consent, state, reply, escalation) in one transaction, then
//! hand the reply to the channel. Recovery after a crash replays exactly what was not done.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use parley_agent::{Agent, AgentError, Decision, EscalationReason, Inbound, Route};
use parley_knowledge::MerchantId;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::channel::{Channel, ChannelError, Outgoing};
use crate::metrics::Metrics;
use crate::store::{
    Author, ConsentAction, DecisionRecord, EscalationRow, EscalationStatus, MessageStatus, NewEscalation,
    NewInbound, PendingInbound, Received, Store, StoreError, User, UserRole,
};
use parley_core::Clock;

/// Undecided messages and unsent replies older than this are picked up again.
const STALE_AFTER: Duration = Duration::from_secs(60);
/// How often the running service looks for them.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Twilio's "Attempt to send to unsubscribed recipient".
const CARRIER_OPT_OUT: &str = "21610";
/// Decisions queued in memory at most. Beyond this a stored message waits in the database
/// for the sweeper, so a backlog (more texts than the cores can decide) costs disk, not RAM.
const MAX_QUEUED_DECISIONS: usize = 4096;

/// The runtime that decisions and sends run on: its own OS thread, not the runtime serving
/// HTTP. A decision is mostly CPU work (classifier, retrieval, guardrails) between a few
/// awaits; on the HTTP runtime each one holds a worker that webhook acknowledgements queue
/// behind. On a thread of its own the kernel's scheduler interleaves the two instead, so an
/// acknowledgement stays a few milliseconds while decisions keep the cores busy. One per
/// process and never dropped (dropping a runtime from async code panics).
fn background() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("parley-background")
                .enable_all()
                .build()
                .expect("the background runtime needs one thread")
        })
        .handle()
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Knowledge(#[from] parley_knowledge::KnowledgeError),
}

/// Why a support-side user may not act on an escalation: the rules of who works what, in one
/// place for the JSON API and the inbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the escalation is already resolved")]
    Resolved,
    #[error("the escalation is claimed by {0}")]
    ClaimedBy(String),
    #[error("only an admin or the current assignee can reassign")]
    NotAssignee,
    /// Someone else acted on it between the read and the write; what they did no rule
    /// above names (rare: the fresh row is checked again first).
    #[error("the escalation changed meanwhile; reload it")]
    Changed,
}

/// A person may claim an escalation that is open, or re-claim one they hold.
pub fn may_claim(escalation: &EscalationRow, user: &User) -> Result<(), Refused> {
    match escalation.status {
        EscalationStatus::Resolved => Err(Refused::Resolved),
        EscalationStatus::Claimed if escalation.assignee_id != Some(user.id) => Err(claimed_by(escalation)),
        EscalationStatus::Open | EscalationStatus::Claimed => Ok(()),
    }
}

/// Anything not yet resolved may be resolved (or reassigned).
pub fn may_resolve(escalation: &EscalationRow) -> Result<(), Refused> {
    match escalation.status {
        EscalationStatus::Resolved => Err(Refused::Resolved),
        EscalationStatus::Open | EscalationStatus::Claimed => Ok(()),
    }
}

fn claimed_by(escalation: &EscalationRow) -> Refused {
    Refused::ClaimedBy(
        escalation
            .assignee
            .clone()
            .unwrap_or_else(|| "someone else".into()),
    )
}

/// A person may reply to an escalation that is not resolved and is theirs, unclaimed, or (for
/// an admin) anyone's.
pub fn may_reply(escalation: &EscalationRow, user: &User) -> Result<(), Refused> {
    match escalation.status {
        EscalationStatus::Resolved => Err(Refused::Resolved),
        EscalationStatus::Claimed
            if escalation.assignee_id != Some(user.id) && user.role != UserRole::Admin =>
        {
            Err(claimed_by(escalation))
        }
        EscalationStatus::Open | EscalationStatus::Claimed => Ok(()),
    }
}

/// Only an admin or the current assignee hands an escalation to someone else.
pub fn may_reassign(escalation: &EscalationRow, user: &User) -> Result<(), Refused> {
    if user.role == UserRole::Admin || escalation.assignee_id == Some(user.id) {
        Ok(())
    } else {
        Err(Refused::NotAssignee)
    }
}

/// What processing one inbound message produced.
#[derive(Debug, Clone)]
pub struct Processed {
    pub route: Route,
    /// The reply committed for sending, with its message id.
    pub reply: Option<(i64, String)>,
    pub escalated: bool,
}

pub struct Service {
    pub store: Store,
    pub agent: Agent,
    pub channel: Arc<dyn Channel>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    sla: Duration,
    /// One decision at a time per conversation, so two quick texts from one customer do not
    /// both start from the same state and lose an update.
    conversation_locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Background work (decisions and sends) that shutdown waits for.
    tasks: TaskTracker,
    workers: Arc<Semaphore>,
    /// Messages with a decision (or a send) queued or running. The sweeper skips them: a
    /// backlog once made every sweep queue each waiting message again, and memory grew by
    /// gigabytes while the same messages were queued many times over.
    deciding: Arc<InFlight>,
    delivering: Arc<InFlight>,
    /// Quiet hours, caps and their settings: what the outbox asks before every send.
    pub(crate) send_rules: crate::outbox::SendRules,
    /// How due jobs are polled and retried.
    pub(crate) scheduler: crate::jobs::SchedulerSettings,
}

/// A set of message ids with work queued or running.
#[derive(Debug, Default)]
struct InFlight(Mutex<HashSet<i64>>);

impl InFlight {
    /// Claims `id` unless it is already claimed (or `cap` ids are); the claim is released
    /// when the returned guard drops, however the task ends.
    fn claim(self: &Arc<Self>, id: i64, cap: usize) -> Option<Claim> {
        let mut ids = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ids.len() >= cap || !ids.insert(id) {
            return None;
        }
        Some(Claim {
            set: self.clone(),
            id,
        })
    }

    fn contains(&self, id: i64) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }
}

struct Claim {
    set: Arc<InFlight>,
    id: i64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("channel", &self.channel.name())
            .finish_non_exhaustive()
    }
}

impl Service {
    pub fn new(
        store: Store,
        agent: Agent,
        channel: Arc<dyn Channel>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        sla: Duration,
        workers: usize,
    ) -> Self {
        Self {
            store,
            agent,
            channel,
            clock,
            metrics,
            sla,
            conversation_locks: Mutex::default(),
            tasks: TaskTracker::new(),
            workers: Arc::new(Semaphore::new(workers.max(1))),
            deciding: Arc::default(),
            delivering: Arc::default(),
            send_rules: crate::outbox::SendRules::default(),
            scheduler: crate::jobs::SchedulerSettings::default(),
        }
    }

    /// The scheduler's settings (`[scheduler]`).
    pub fn with_scheduler(mut self, scheduler: crate::jobs::SchedulerSettings) -> Self {
        self.scheduler = scheduler;
        self
    }

    /// The send policy's settings (`[outbox]`); the default is the built-in quiet hours, no caps.
    pub fn with_send_rules(mut self, rules: crate::outbox::SendRules) -> Self {
        self.send_rules = rules;
        self
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Stores an inbound message; the caller acknowledges the provider only after this.
    pub async fn receive(&self, inbound: &NewInbound<'_>) -> Result<Received, ServiceError> {
        let received = self.store.receive(inbound, self.now()).await?;
        let outcome = match received {
            Received::New { .. } => "new",
            Received::Duplicate => "duplicate",
        };
        Metrics::count(&self.metrics.inbound, outcome);
        Ok(received)
    }

    /// Decides a stored inbound message and commits the result. A message already processed
    /// (by another task, or before a restart) yields `None`.
    pub async fn process(&self, message_id: i64) -> Result<Option<Processed>, ServiceError> {
        let Some(conversation_id) = self.store.conversation_of(message_id).await? else {
            return Ok(None);
        };
        let lock = self.conversation_lock(conversation_id);
        let guard = lock.lock().await;
        let result = self.process_locked(message_id).await;
        drop(guard);
        self.release_conversation_lock(conversation_id, lock);
        result
    }

    async fn process_locked(&self, message_id: i64) -> Result<Option<Processed>, ServiceError> {
        // Read under the lock: the state is the one the previous message left.
        let Some(pending) = self.store.pending_inbound(message_id).await? else {
            return Ok(None);
        };
        let (record, route_name) = match self.decide(&pending).await {
            Ok(decision) => self.record_for(&pending, decision),
            Err(failure) => self.failure_record(&pending, failure),
        };
        let reply_body = record.reply.as_ref().map(|(_, body)| body.clone());
        let escalated = record.escalation.is_some();
        match self.store.record_decision(&record, self.now()).await {
            Ok(reply_id) => {
                if let Some((action, _)) = &record.consent {
                    match action {
                        ConsentAction::OptOut => self.metrics.opt_outs.inc(),
                        ConsentAction::OptIn => self.metrics.opt_ins.inc(),
                    };
                }
                Ok(Some(Processed {
                    route: route_name,
                    reply: reply_id.zip(reply_body),
                    escalated,
                }))
            }
            // Processed by someone else between our read and our write: nothing to do.
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn decide(&self, pending: &PendingInbound) -> Result<Decision, Failure> {
        let mut state = pending.state.clone();
        // The ledger is the source of truth for consent (an API or provider opt-out counts too).
        state.opted_out = pending.opted_out;
        // A reply to a flow's message is about what that message said.
        if let Some((body, context)) = &pending.flow_message {
            crate::flows::carry_flow_message(&mut state, body, context);
        }
        // Compliance first, from the store alone: a STOP is honoured even when the merchant's
        // catalog, index or model cannot be read. It reads the customer's own words only.
        let merchant = parley_agent::MerchantContact {
            message_frequency: self.send_rules.message_frequency.clone(),
            ..pending.merchant.clone()
        };
        match self
            .agent
            .decide_compliance(&pending.body, state.clone(), &merchant)
        {
            Ok(Some(decision)) => return Ok(self.observed(decision)),
            Ok(None) => {}
            Err(err) => {
                tracing::error!(message_id = pending.message_id, error = %err, "a compliance template failed; escalating");
                return Err(Failure::Internal);
            }
        }
        let merchant = MerchantId::parse(&pending.merchant_id).map_err(|err| {
            tracing::error!(message_id = pending.message_id, error = %err, "stored merchant id is invalid");
            Failure::Internal
        })?;
        // A picture with no words: the agent sees that one came (a person sees the picture).
        let media_note = attachment_note(pending.num_media);
        let text = if pending.body.trim().is_empty() {
            media_note.as_str()
        } else {
            pending.body.as_str()
        };
        let inbound = Inbound {
            merchant: &merchant,
            customer_phone: Some(&pending.phone),
            text,
        };
        match self.agent.decide(inbound, state).await {
            Ok(decision) => Ok(self.observed(decision)),
            // The merchant's catalog or index is unreadable: a person answers, nothing is
            // invented, and other merchants are unaffected.
            Err(AgentError::Knowledge(err)) => {
                tracing::error!(message_id = pending.message_id, error = %err, "the merchant's knowledge is unavailable; escalating");
                Err(Failure::KnowledgeUnavailable)
            }
            Err(err) => {
                // A broken template: a person must answer, and the customer gets nothing invented.
                tracing::error!(message_id = pending.message_id, error = %err, "the agent failed; escalating");
                Err(Failure::Internal)
            }
        }
    }

    fn observed(&self, decision: Decision) -> Decision {
        self.metrics.observe_stages(&decision.timings);
        Metrics::count(&self.metrics.routes, decision.route.as_str());
        decision
    }

    fn record_for(&self, pending: &PendingInbound, decision: Decision) -> (DecisionRecord, Route) {
        let consent = match decision.route {
            Route::OptOut => Some((ConsentAction::OptOut, pending.body.trim().to_owned())),
            Route::OptIn | Route::Join => Some((ConsentAction::OptIn, pending.body.trim().to_owned())),
            _ => None,
        };
        let author = match decision.route {
            Route::OptOut | Route::OptIn | Route::Join | Route::Help => Author::Compliance,
            Route::Reply | Route::Escalate => Author::Ai,
        };
        let escalation = decision.handoff.as_ref().map(|handoff| {
            let reason = reason_kind(&handoff.reason);
            Metrics::count(&self.metrics.escalations, &reason);
            NewEscalation {
                reason,
                reason_detail: handoff.reason.to_string(),
                summary: handoff.summary.clone(),
                suggested_reply: handoff.suggested_reply.clone(),
                due_at: self.now() + i64::try_from(self.sla.as_millis()).unwrap_or(i64::MAX / 2),
            }
        });
        let reply = decision.reply.clone().map(|body| (author, body));
        let record = DecisionRecord {
            message_id: pending.message_id,
            conversation_id: pending.conversation_id,
            consent,
            marketing_signup: decision.route == Route::Join,
            reply,
            escalation,
            state: decision.state,
        };
        (record, decision.route)
    }

    fn failure_record(&self, pending: &PendingInbound, failure: Failure) -> (DecisionRecord, Route) {
        let mut state = pending.state.clone();
        state.escalated = true;
        let (reason, detail) = match failure {
            Failure::KnowledgeUnavailable => (
                "knowledge_unavailable",
                "the merchant's catalog or knowledge index could not be read",
            ),
            Failure::Internal => ("internal_error", "the agent could not decide this message"),
        };
        Metrics::count(&self.metrics.escalations, reason);
        let record = DecisionRecord {
            message_id: pending.message_id,
            conversation_id: pending.conversation_id,
            consent: None,
            marketing_signup: false,
            reply: None,
            escalation: Some(NewEscalation {
                reason: reason.into(),
                reason_detail: detail.into(),
                summary: "Parley could not process this message automatically; please read and answer it."
                    .into(),
                suggested_reply: None,
                due_at: self.now() + i64::try_from(self.sla.as_millis()).unwrap_or(i64::MAX / 2),
            }),
            state,
        };
        (record, Route::Escalate)
    }

    /// Claims an escalation for `user` under `may_claim`. The store's write is conditional,
    /// so a claim racing another one loses with the rule that now refuses it.
    pub async fn claim(
        &self,
        merchant_id: &str,
        id: i64,
        user: &User,
    ) -> Result<EscalationRow, ServiceError> {
        let escalation = self.store.escalation(merchant_id, id).await?;
        may_claim(&escalation, user)?;
        if !self.store.claim(merchant_id, id, user.id, self.now()).await? {
            return Err(self
                .refusal_after_race(merchant_id, id, |fresh| may_claim(fresh, user))
                .await);
        }
        Ok(self.store.escalation(merchant_id, id).await?)
    }

    /// Queues a support agent's reply under `may_reply`; answering an open escalation claims
    /// it. Returns the message id to send.
    pub async fn human_reply(
        &self,
        merchant_id: &str,
        id: i64,
        user: &User,
        body: &str,
    ) -> Result<i64, ServiceError> {
        let escalation = self.store.escalation(merchant_id, id).await?;
        may_reply(&escalation, user)?;
        Ok(self
            .store
            .human_reply(&escalation, user, body, self.now())
            .await?)
    }

    /// Resolves an escalation and hands the conversation back to the AI.
    pub async fn resolve(&self, merchant_id: &str, id: i64) -> Result<EscalationRow, ServiceError> {
        let escalation = self.store.escalation(merchant_id, id).await?;
        may_resolve(&escalation)?;
        if !self.store.resolve(merchant_id, id, self.now()).await? {
            return Err(self.refusal_after_race(merchant_id, id, may_resolve).await);
        }
        Ok(self.store.escalation(merchant_id, id).await?)
    }

    /// Hands an escalation to the agent named `assignee` (`None` when there is no such user
    /// for the merchant): only an admin or the current assignee may, and not once resolved.
    pub async fn reassign(
        &self,
        merchant_id: &str,
        id: i64,
        user: &User,
        assignee: &str,
    ) -> Result<Option<EscalationRow>, ServiceError> {
        let escalation = self.store.escalation(merchant_id, id).await?;
        may_reassign(&escalation, user)?;
        let Some(assignee) = self.store.user_by_name(merchant_id, assignee).await? else {
            return Ok(None);
        };
        may_resolve(&escalation)?;
        if !self
            .store
            .reassign(merchant_id, id, assignee.id, self.now())
            .await?
        {
            return Err(self.refusal_after_race(merchant_id, id, may_resolve).await);
        }
        Ok(Some(self.store.escalation(merchant_id, id).await?))
    }

    /// Why a conditional write found nothing to change: the rule applied to the row as it is
    /// now.
    async fn refusal_after_race(
        &self,
        merchant_id: &str,
        id: i64,
        rule: impl Fn(&EscalationRow) -> Result<(), Refused>,
    ) -> ServiceError {
        match self.store.escalation(merchant_id, id).await {
            Ok(fresh) => rule(&fresh).err().unwrap_or(Refused::Changed).into(),
            Err(err) => err.into(),
        }
    }

    /// Sends a committed outbound message through the channel and records the outcome.
    /// The outbox's policy is asked here, at the last moment (`Service::send_verdict`): an
    /// opted-out number gets only compliance confirmations, whoever wrote the text; a text
    /// outside its allowed hours waits (`deferred`) for the first allowed minute.
    pub async fn deliver(&self, message_id: i64) -> Result<(), ServiceError> {
        let Some(job) = self.store.take_outbound(message_id, self.now()).await? else {
            return Ok(());
        };
        if !self.settle_verdict(&job).await? {
            return Ok(());
        }
        let outgoing = Outgoing {
            to: &job.to,
            from: job.from.as_deref(),
            body: &job.body,
        };
        let (status, sid, error) = match self.channel.send(&outgoing).await {
            Ok(accepted) => (accepted.status, Some(accepted.provider_sid), None),
            Err(ChannelError::Rejected { code, message }) => {
                // The provider's words often quote the number ("The 'To' number +1... is not
                // valid"): the code goes to the warning, the words to debug only.
                tracing::warn!(message_id = job.id, merchant = %job.merchant_id, ?code, "provider rejected a message");
                tracing::debug!(message_id = job.id, %message, "the provider's reason");
                // 21610: the carrier holds an opt-out for this number (Twilio's own STOP
                // handling). The ledger must say so, or the next text would try again.
                if code.as_deref() == Some(CARRIER_OPT_OUT)
                    && self.store.record_carrier_opt_out(job.id, self.now()).await?
                {
                    Metrics::count(&self.metrics.outbound, "carrier_opt_out");
                    self.metrics.opt_outs.inc();
                }
                (
                    MessageStatus::Failed,
                    None,
                    Some(code.unwrap_or_else(|| "rejected".into())),
                )
            }
            Err(ChannelError::Unavailable(problem)) => {
                tracing::error!(message_id = job.id, merchant = %job.merchant_id, %problem, "provider unavailable; message failed");
                (MessageStatus::Failed, None, Some("unavailable".to_owned()))
            }
            Err(ChannelError::Unanswered(problem)) => {
                tracing::error!(message_id = job.id, merchant = %job.merchant_id, %problem, "provider did not answer; the message may have gone and is not resent");
                (MessageStatus::Unknown, None, Some("unanswered".to_owned()))
            }
        };
        Metrics::count(&self.metrics.outbound, status.as_str());
        self.finish(&job, status, sid.as_deref(), error.as_deref()).await
    }

    /// Records a taken message's outcome, and its job's when it was made for one. The two
    /// are separate writes: a crash between them leaves the job `running` over a finished
    /// message, which start-up settles (`settle_left_jobs`).
    async fn finish(
        &self,
        job: &crate::store::OutboundJob,
        status: MessageStatus,
        sid: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.store
            .finish_outbound(job.id, status, sid, error, self.now())
            .await?;
        if job.subject.as_deref() == Some(crate::store::MARKETING_CONFIRMATION)
            && status.reached_provider()
            && self.store.confirm_marketing(job.id, self.now()).await?
        {
            tracing::info!(message_id = job.id, "marketing sign-up confirmed");
            // A welcome that cannot start is logged; the sign-up stands.
            if let Err(err) = self
                .on_marketing_confirmed(&job.merchant_id, &job.to, job.id)
                .await
            {
                tracing::error!(message_id = job.id, error = %err, "starting the welcome flow failed");
            }
        }
        if job.job_id.is_some() {
            self.settle_job(job.id, status, error).await?;
        }
        Ok(())
    }

    /// Marks a reply that went out inline (TwiML) as sent, unless consent forbids it, in which
    /// case it is suppressed and must not be put in the response. Returns whether to send it.
    pub async fn mark_sent_inline(&self, message_id: i64) -> Result<bool, ServiceError> {
        let Some(job) = self.store.take_outbound(message_id, self.now()).await? else {
            return Ok(false);
        };
        // A deferred reply leaves the response empty and goes later through the REST API.
        if !self.settle_verdict(&job).await? {
            return Ok(false);
        }
        Metrics::count(&self.metrics.outbound, MessageStatus::Sent.as_str());
        self.finish(&job, MessageStatus::Sent, None, None).await?;
        Ok(true)
    }

    /// Asks the policy about a taken message; a deferral or a refusal is recorded on the
    /// message here. Returns whether it may go now.
    async fn settle_verdict(&self, job: &crate::store::OutboundJob) -> Result<bool, ServiceError> {
        match self.send_verdict(job).await? {
            parley_core::Verdict::Allow => Ok(true),
            parley_core::Verdict::Defer { until_ms, reason } => {
                tracing::info!(message_id = job.id, %reason, until = %parley_core::clock::rfc3339(until_ms), "send deferred");
                self.store.defer_outbound(job.id, until_ms, self.now()).await?;
                Metrics::count(&self.metrics.outbound, MessageStatus::Deferred.as_str());
                Ok(false)
            }
            parley_core::Verdict::Refuse(reason) => {
                self.finish(job, MessageStatus::Suppressed, None, Some(reason.into()))
                    .await?;
                Metrics::count(&self.metrics.outbound, MessageStatus::Suppressed.as_str());
                Ok(false)
            }
        }
    }

    /// Decides and delivers in the background (the webhook has already been acknowledged).
    /// Returns whether it was queued: not when it already is, or when the queue is full (the
    /// message is stored, and the sweeper queues it once there is room).
    pub fn spawn_process(self: &Arc<Self>, message_id: i64) -> bool {
        let Some(claim) = self.deciding.claim(message_id, MAX_QUEUED_DECISIONS) else {
            return false;
        };
        let service = self.clone();
        let task = async move {
            let _claim = claim;
            let Ok(_permit) = service.workers.clone().acquire_owned().await else {
                return;
            };
            match service.process(message_id).await {
                Ok(Some(Processed {
                    reply: Some((reply_id, _)),
                    ..
                })) => {
                    if let Err(err) = service.deliver(reply_id).await {
                        tracing::error!(message_id = reply_id, error = %err, "delivering a reply failed");
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    // The message stays `received`; the next start-up sweep retries it.
                    tracing::error!(message_id, error = %err, "processing an inbound message failed");
                }
            }
        };
        self.tasks.spawn_on(task, background());
        true
    }

    /// Runs `task` on the background runtime, tracked so shutdown waits for it.
    pub(crate) fn spawn_background(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn_on(task, background());
    }

    /// Sends a committed message in the background, where no request timeout can cut the
    /// send off halfway (a cancelled send would stay `sending`, its outcome unknown). The
    /// handle lets a caller wait a while for the outcome; dropping it does not cancel.
    pub fn spawn_deliver(self: &Arc<Self>, message_id: i64) {
        drop(self.deliver_in_background(message_id));
    }

    /// `spawn_deliver`, with a handle to wait on.
    pub fn deliver_in_background(self: &Arc<Self>, message_id: i64) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        let claim = self.delivering.claim(message_id, usize::MAX);
        let task = async move {
            // A send already queued for this message is the one that goes.
            let Some(_claim) = claim else {
                return;
            };
            if let Err(err) = service.deliver(message_id).await {
                tracing::error!(message_id, error = %err, "delivering a message failed");
            }
        };
        self.tasks.spawn_on(task, background())
    }

    /// Replays what a crash interrupted: sends in flight become `unknown` (never resent, so no
    /// customer is answered twice), stored-but-undecided messages are decided, and committed
    /// replies never handed to the channel are sent.
    pub async fn recover(self: &Arc<Self>) -> Result<(usize, usize), ServiceError> {
        let interrupted = self.store.mark_interrupted_sends(self.now()).await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "sends interrupted by a restart marked unknown (not resent)"
            );
        }
        let settled = self.settle_left_jobs().await?;
        if settled > 0 {
            tracing::warn!(
                settled,
                "jobs left running by a restart settled from their messages"
            );
        }
        self.resume(i64::MAX).await
    }

    /// Picks up work left behind while running: a message whose decision failed (say, the
    /// database was briefly unavailable) or a reply never handed to the channel, untouched for
    /// `STALE_AFTER`. Work already queued or running is skipped (`InFlight`), and
    /// processing and sending are idempotent anyway (a message is decided once, a reply taken
    /// for sending once).
    pub async fn resume_stale(self: &Arc<Self>) -> Result<(usize, usize), ServiceError> {
        let cutoff = self.now() - i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
        self.resume(cutoff).await
    }

    /// Queues what is stored but neither decided nor queued; returns how many it queued.
    async fn resume(self: &Arc<Self>, before: i64) -> Result<(usize, usize), ServiceError> {
        let inbound = self.store.unprocessed_inbound(before).await?;
        let inbound = inbound.into_iter().filter(|&id| self.spawn_process(id)).count();
        let mut outbound = self.store.pending_outbound(before).await?;
        // Deferred sends whose minute has come: the due time is in the row, so a restart
        // loses none of them.
        outbound.extend(self.store.due_deferred(self.now()).await?);
        let outbound = outbound
            .into_iter()
            .filter(|&id| !self.delivering.contains(id))
            .inspect(|&id| self.spawn_deliver(id))
            .count();
        Ok((inbound, outbound))
    }

    /// Runs `resume_stale` every `SWEEP_EVERY` until `stop` is cancelled.
    pub async fn sweep_until(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            match self.resume_stale().await {
                Ok((0, 0)) => {}
                Ok((inbound, outbound)) => {
                    tracing::warn!(inbound, outbound, "resumed stalled messages");
                }
                Err(err) => tracing::error!(error = %err, "sweeping for stalled messages failed"),
            }
        }
    }

    /// Stops taking background work and waits for what is in flight.
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Waits until every background task started so far has finished (tests).
    pub async fn idle(&self) {
        while !self.tasks.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn conversation_lock(&self, conversation_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.conversation_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(conversation_id).or_default().clone()
    }

    fn release_conversation_lock(&self, conversation_id: i64, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.conversation_locks.lock().unwrap_or_else(|p| p.into_inner());
        drop(lock);
        // Only the map's own reference left: nobody waits on it, so forget it.
        if locks
            .get(&conversation_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&conversation_id);
        }
    }
}

/// Why a message could not be decided automatically.
#[derive(Debug, Clone, Copy)]
enum Failure {
    KnowledgeUnavailable,
    Internal,
}

/// What people (and, for a picture without words, the agent) are told an MMS carried.
pub fn attachment_note(num_media: u32) -> String {
    match num_media {
        0 => String::new(),
        n => format!("[{n} attachment(s)]"),
    }
}

/// A short machine name for an escalation reason (`risk`, `human_requested` ...).
fn reason_kind(reason: &EscalationReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|value| value.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "other".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escalation(status: EscalationStatus, assignee: Option<(i64, &str)>) -> EscalationRow {
        EscalationRow {
            id: 1,
            merchant_id: "shop".into(),
            conversation_id: 1,
            customer_phone: "+15551112222".into(),
            reason: "human_request".into(),
            reason_detail: "asked for a person".into(),
            summary: String::new(),
            suggested_reply: None,
            status,
            assignee: assignee.map(|(_, name)| name.to_owned()),
            assignee_id: assignee.map(|(id, _)| id),
            created_at: 0,
            due_at: 0,
            claimed_at: None,
            resolved_at: None,
        }
    }

    fn user(id: i64, role: UserRole) -> User {
        User {
            id,
            merchant_id: "shop".into(),
            name: format!("user{id}"),
            role,
        }
    }

    #[test]
    fn who_may_act_on_an_escalation() {
        let ana = user(1, UserRole::Agent);
        let ben = user(2, UserRole::Agent);
        let boss = user(3, UserRole::Admin);
        let open = escalation(EscalationStatus::Open, None);
        let anas = escalation(EscalationStatus::Claimed, Some((1, "ana")));
        let done = escalation(EscalationStatus::Resolved, Some((1, "ana")));

        assert_eq!(may_reply(&open, &ben), Ok(()));
        assert_eq!(may_reply(&anas, &ana), Ok(()));
        assert_eq!(may_reply(&anas, &boss), Ok(()));
        assert_eq!(may_reply(&anas, &ben), Err(Refused::ClaimedBy("ana".into())));
        assert_eq!(may_reply(&done, &ana), Err(Refused::Resolved));
        assert_eq!(may_reply(&done, &boss), Err(Refused::Resolved));

        assert_eq!(may_reassign(&anas, &ana), Ok(()));
        assert_eq!(may_reassign(&anas, &boss), Ok(()));
        assert_eq!(may_reassign(&anas, &ben), Err(Refused::NotAssignee));
        assert_eq!(may_reassign(&open, &ben), Err(Refused::NotAssignee));

        assert_eq!(may_claim(&open, &ben), Ok(()));
        assert_eq!(may_claim(&anas, &ana), Ok(()), "re-claiming one's own is fine");
        assert_eq!(may_claim(&anas, &ben), Err(Refused::ClaimedBy("ana".into())));
        // An admin replies to anyone's escalation but takes it over only by reassigning.
        assert_eq!(may_claim(&anas, &boss), Err(Refused::ClaimedBy("ana".into())));
        assert_eq!(may_claim(&done, &ana), Err(Refused::Resolved));

        assert_eq!(may_resolve(&open), Ok(()));
        assert_eq!(may_resolve(&anas), Ok(()));
        assert_eq!(may_resolve(&done), Err(Refused::Resolved));
    }
}
