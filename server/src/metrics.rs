//! Prometheus metrics (`GET /metrics`): requests, pipeline stage latencies, routes,
//! escalations, opt-outs, what happened to outbound messages, and Shopify events.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The matched route template (`/v1/merchants/{merchant_id}/...`), never the raw path, so
    /// ids and phone numbers do not become label values.
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    pub name: String,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms .. ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<PathLabels, Histogram, fn() -> Histogram>,
    pub stage_seconds: Family<StageLabels, Histogram, fn() -> Histogram>,
    pub routes: Family<NameLabels, Counter>,
    pub escalations: Family<NameLabels, Counter>,
    pub opt_outs: Counter,
    pub opt_ins: Counter,
    pub inbound: Family<NameLabels, Counter>,
    pub outbound: Family<NameLabels, Counter>,
    pub shopify: Family<NameLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("parley");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let request_seconds =
            Family::<PathLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_seconds",
            "HTTP request latency by route",
            request_seconds.clone(),
        );
        let stage_seconds =
            Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "pipeline_stage_seconds",
            "Time spent in each stage of the reply pipeline",
            stage_seconds.clone(),
        );
        let routes = Family::<NameLabels, Counter>::default();
        registry.register("decisions", "Decisions by route", routes.clone());
        let escalations = Family::<NameLabels, Counter>::default();
        registry.register(
            "escalations",
            "Escalations opened, by reason",
            escalations.clone(),
        );
        let opt_outs = Counter::default();
        registry.register(
            "opt_outs",
            "Opt-outs recorded in the consent ledger",
            opt_outs.clone(),
        );
        let opt_ins = Counter::default();
        registry.register(
            "opt_ins",
            "Opt-ins recorded in the consent ledger",
            opt_ins.clone(),
        );
        let inbound = Family::<NameLabels, Counter>::default();
        registry.register(
            "inbound_messages",
            "Inbound messages: new, duplicate (provider retry)",
            inbound.clone(),
        );
        let outbound = Family::<NameLabels, Counter>::default();
        registry.register(
            "outbound_messages",
            "Outbound messages by outcome (sent, failed, suppressed ...)",
            outbound.clone(),
        );
        let shopify = Family::<NameLabels, Counter>::default();
        registry.register(
            "shopify_events",
            "Verified Shopify webhooks: new, duplicate (a retry), ignored (a topic Parley does not use)",
            shopify.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            stage_seconds,
            routes,
            escalations,
            opt_outs,
            opt_ins,
            inbound,
            outbound,
            shopify,
        }
    }
}

impl Metrics {
    pub fn count(family: &Family<NameLabels, Counter>, name: &str) {
        family
            .get_or_create(&NameLabels {
                name: name.to_owned(),
            })
            .inc();
    }

    pub fn observe_stages(&self, timings: &parley_agent::StageTimings) {
        for (stage, micros) in [
            ("compliance", timings.compliance_us),
            ("embed", timings.embed_us),
            ("classify", timings.classify_us),
            ("retrieve", timings.retrieve_us),
            ("tools", timings.tools_us),
            ("generate", timings.generate_us),
            ("guardrails", timings.guardrails_us),
            ("total", timings.total_us),
        ] {
            self.stage_seconds
                .get_or_create(&StageLabels { stage })
                .observe(micros as f64 / 1e6);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }
}
