//! Typed settings, loaded in layers: compiled defaults, then an optional TOML file, then
//! `PARLEY__SECTION__KEY` environment variables. Validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::twilio::ReplyMode;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where Parley keeps its state (index snapshots, catalogs, and later the database).
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub embedding: EmbeddingSettings,
    /// The reply agent's decision policy.
    #[serde(default)]
    pub agent: parley_agent::AgentConfig,
    /// An OpenAI-compatible LLM for replies. Absent (the default): the offline extractive
    /// responder answers. Any `[llm]` key, or `PARLEY__LLM__BASE_URL`, turns it on.
    #[serde(default)]
    pub llm: Option<parley_agent::llm::LlmConfig>,
    #[serde(default)]
    pub store: StoreSettings,
    /// How customers' texts arrive and replies leave: the built-in simulator (the default, for
    /// running without a provider) or Twilio (then `[twilio]` is required).
    pub channel: ChannelKind,
    #[serde(default)]
    pub twilio: Option<crate::twilio::TwilioConfig>,
    /// The send policy: quiet hours for replies, marketing caps, extra quiet-hours rules.
    #[serde(default)]
    pub outbox: crate::outbox::OutboxSettings,
    /// The durable scheduler: how often due jobs are looked for, and provider-outage retries.
    #[serde(default)]
    pub scheduler: crate::jobs::SchedulerSettings,
    /// Shopify webhooks (`POST /webhooks/shopify`): the app's secret. Absent: the endpoint
    /// answers 404 and no commerce data is taken in.
    #[serde(default)]
    pub shopify: Option<crate::shopify::ShopifyConfig>,
    pub escalation: EscalationSettings,
    /// Where merchants' chunks are stored and searched.
    #[serde(default)]
    pub index: IndexSettings,
}

/// The knowledge index backend: `embedded` (the default: snapshot files in the data
/// directory, searched in process) or `qdrant` (one shared collection, for several replicas
/// and many merchants), with the Qdrant connection in `[index.qdrant]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSettings {
    #[serde(default)]
    pub backend: IndexBackend,
    #[serde(default)]
    pub qdrant: parley_knowledge::qdrant::QdrantConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IndexBackend {
    #[default]
    Embedded,
    Qdrant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Simulator,
    Twilio,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// The SQLite database file; empty: `parley.db` in the data directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSettings {
    /// How soon a person should pick up an escalation; later ones are flagged overdue.
    #[serde(deserialize_with = "parley_core::deserialize_duration")]
    pub sla: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted on webhooks and JSON APIs (bytes); larger gets 413.
    pub max_body_bytes: usize,
    /// Largest knowledge upload (a merchant directory as tar or tar.gz), in bytes.
    pub max_upload_bytes: usize,
    /// A request taking longer than this is answered 408 (knowledge uploads excepted).
    #[serde(deserialize_with = "parley_core::deserialize_duration")]
    pub request_timeout: Duration,
    /// Inbound messages decided concurrently in the background.
    pub workers: usize,
    /// A client must send a request's headers within this time, or the connection is closed
    /// (a slow client cannot hold a connection open by trickling bytes).
    #[serde(deserialize_with = "parley_core::deserialize_duration")]
    pub header_timeout: Duration,
    /// Open connections at most; further clients wait in the kernel's backlog until one
    /// closes, so half-open connections cannot exhaust the process.
    pub max_connections: usize,
    /// The simulator channel lets anyone who reaches the port text as any phone and read any
    /// phone's texts, so it serves loopback only unless this is set.
    pub allow_remote_simulator: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingSettings {
    /// A fastembed-compatible model directory (model.onnx + tokenizer files).
    pub model_dir: PathBuf,
    /// Path of `libonnxruntime.so`. Empty: `ORT_DYLIB_PATH`, then the copy that
    /// `scripts/fetch-models.sh` installs, then one next to the binary.
    #[serde(default)]
    pub ort_library: Option<PathBuf>,
    pub threads: usize,
}

const DEFAULTS: &str = r#"
data_dir = "data"

channel = "simulator"

[server]
host = "127.0.0.1"
port = 8080
max_body_bytes = 65536
max_upload_bytes = 52428800
request_timeout = "30s"
workers = 4
header_timeout = "10s"
max_connections = 1024
allow_remote_simulator = false

[escalation]
sla = "15m"

[embedding]
model_dir = ".cache/models/all-MiniLM-L6-v2-int8"
threads = 1
"#;

/// How long an inline (TwiML) decision may take in the worst case: under Twilio's 15 s webhook
/// timeout with room for the rest of the pipeline and the network.
const TWIML_DECISION_BUDGET: Duration = Duration::from_secs(12);

/// The bundled ONNX Runtime location relative to the working directory.
const FETCHED_ORT: &str = ".cache/models/onnxruntime/libonnxruntime.so";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("settings: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl Settings {
    /// Loads settings; `file` is an optional TOML file whose values override the defaults.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("PARLEY")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.embedding.threads == 0 {
            return Err(SettingsError::Invalid {
                key: "embedding.threads",
                problem: "must be at least 1".into(),
            });
        }
        let addr = self.listen_addr()?;
        if self.channel == ChannelKind::Simulator
            && !addr.ip().is_loopback()
            && !self.server.allow_remote_simulator
        {
            return Err(SettingsError::Invalid {
                key: "server.host",
                problem: format!(
                    "{} is not a loopback address, and the simulator channel is unauthenticated \
                     (anyone reaching it can text as any phone and read the replies); use \
                     127.0.0.1, channel = \"twilio\", or server.allow_remote_simulator = true",
                    self.server.host
                ),
            });
        }
        if self.server.header_timeout.is_zero() || self.server.max_connections == 0 {
            return Err(SettingsError::Invalid {
                key: "server.header_timeout",
                problem: "header_timeout and max_connections must be greater than zero".into(),
            });
        }
        if self.server.workers == 0 {
            return Err(SettingsError::Invalid {
                key: "server.workers",
                problem: "must be at least 1".into(),
            });
        }
        if self.server.max_body_bytes < 1024 {
            return Err(SettingsError::Invalid {
                key: "server.max_body_bytes",
                problem: "must be at least 1024".into(),
            });
        }
        if self.escalation.sla.is_zero() {
            return Err(SettingsError::Invalid {
                key: "escalation.sla",
                problem: "must be greater than zero".into(),
            });
        }
        match (&self.channel, &self.twilio) {
            (ChannelKind::Twilio, None) => {
                return Err(SettingsError::Invalid {
                    key: "twilio",
                    problem: "is required when channel = \"twilio\" (account_sid, auth_token, public_url)"
                        .into(),
                });
            }
            (_, Some(twilio)) => twilio.validate().map_err(|problem| SettingsError::Invalid {
                key: "twilio",
                problem,
            })?,
            (ChannelKind::Simulator, None) => {}
        }
        self.outbox
            .validate()
            .map_err(|(key, problem)| SettingsError::Invalid { key, problem })?;
        self.scheduler
            .validate()
            .map_err(|(key, problem)| SettingsError::Invalid { key, problem })?;
        if let Some(shopify) = &self.shopify {
            shopify
                .validate()
                .map_err(|(key, problem)| SettingsError::Invalid { key, problem })?;
        }
        self.agent.validate().map_err(|problem| SettingsError::Invalid {
            key: "agent",
            problem,
        })?;
        if self.index.backend == IndexBackend::Qdrant {
            let qdrant = &self.index.qdrant;
            if !(qdrant.url.starts_with("http://") || qdrant.url.starts_with("https://")) {
                return Err(SettingsError::Invalid {
                    key: "index.qdrant.url",
                    problem: format!("{:?} must be an http:// or https:// gRPC endpoint", qdrant.url),
                });
            }
            if qdrant.collection.trim().is_empty() {
                return Err(SettingsError::Invalid {
                    key: "index.qdrant.collection",
                    problem: "must not be empty".into(),
                });
            }
            if qdrant.timeout.is_zero() || qdrant.connect_timeout.is_zero() {
                return Err(SettingsError::Invalid {
                    key: "index.qdrant.timeout",
                    problem: "timeouts must be greater than zero".into(),
                });
            }
        }
        if let Some(llm) = &self.llm {
            llm.validate().map_err(|err| SettingsError::Invalid {
                key: "llm",
                problem: err.to_string(),
            })?;
            // Inline (TwiML) replies are decided inside Twilio's 15 s webhook timeout. A draft
            // can be regenerated once after the guardrails, so two worst-case drafts must fit.
            if self.channel == ChannelKind::Twilio
                && self.twilio.as_ref().is_some_and(|t| t.reply == ReplyMode::Twiml)
            {
                let worst = llm.worst_case().saturating_mul(2);
                if worst > TWIML_DECISION_BUDGET {
                    return Err(SettingsError::Invalid {
                        key: "llm.timeout",
                        problem: format!(
                            "with [twilio] reply = \"twiml\" a reply must be decided within Twilio's 15 s \
                             webhook timeout, but the LLM may take {worst:?} ({} attempts of {:?} plus \
                             backoff, twice when a draft is regenerated); lower llm.timeout or \
                             llm.max_retries to stay under {TWIML_DECISION_BUDGET:?}, or use reply = \"rest\"",
                            llm.max_retries + 1,
                            llm.timeout
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, SettingsError> {
        format!("{}:{}", self.server.host, self.server.port)
            .parse()
            .map_err(|err| SettingsError::Invalid {
                key: "server.host",
                problem: format!("{:?} is not an IP address: {err}", self.server.host),
            })
    }

    /// The service database file.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("parley.db"))
    }

    /// The ONNX Runtime library to load, following the documented search order.
    pub fn ort_library(&self) -> Option<PathBuf> {
        if let Some(path) = &self.embedding.ort_library {
            return Some(path.clone());
        }
        if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
            return Some(PathBuf::from(path));
        }
        let fetched = PathBuf::from(FETCHED_ORT);
        if fetched.exists() {
            return Some(fetched);
        }
        let beside_binary = std::env::current_exe().ok()?.parent()?.join("libonnxruntime.so");
        beside_binary.exists().then_some(beside_binary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_file_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parley.toml");
        std::fs::write(&file, "[server]\nport = 9999\n").unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.server.port, 9999);
        assert_eq!(settings.server.host, "127.0.0.1");
        assert_eq!(settings.embedding.threads, 1);
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parley.toml");
        std::fs::write(&file, "[embedding]\nthreads = 0\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("embedding.threads"), "{err}");
        std::fs::write(&file, "[server]\nhost = \"not a host\"\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("server.host"), "{err}");
    }

    #[test]
    fn outbox_and_shopify_settings_load_and_bad_ones_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parley.toml");
        std::fs::write(
            &file,
            "[outbox]\nconversational_quiet_hours = true\nmax_marketing_per_day = 2\n\
             [[outbox.quiet_hours.window]]\nregion = \"US-CO\"\ndays = [\"sat\"]\nfrom = \"10:00\"\nuntil = \"18:00\"\n\
             [shopify]\napp_secret = \"shpss_x\"\nmax_event_age = \"6h\"\n",
        )
        .unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert!(settings.outbox.conversational_quiet_hours);
        let rules = settings.outbox.rules();
        assert_eq!(rules.caps.per_day, Some(2));
        assert!(rules.quiet_hours.windows.iter().any(|w| w.region == "US-CO"));
        assert!(
            rules.quiet_hours.windows.iter().any(|w| w.region == "US-TX"),
            "built-ins kept"
        );
        let shopify = settings.shopify.unwrap();
        assert_eq!(shopify.max_event_age, Duration::from_secs(6 * 3600));
        for (text, key) in [
            (
                "[outbox]\nmax_marketing_per_week = 0\n",
                "outbox.max_marketing_per_week",
            ),
            (
                "[[outbox.quiet_hours.window]]\nregion = \"Colorado\"\nfrom = \"10:00\"\nuntil = \"18:00\"\n",
                "outbox.quiet_hours",
            ),
            ("[shopify]\napp_secret = \" \"\n", "shopify.app_secret"),
            (
                "[shopify]\napp_secret = \"s\"\nmax_event_age = \"1s\"\n",
                "shopify.max_event_age",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Settings::load(Some(&file)).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn inline_replies_refuse_an_llm_that_could_outlast_twilios_webhook_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parley.toml");
        let twilio = "channel = \"twilio\"\n[twilio]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
                      auth_token = \"t\"\npublic_url = \"https://sms.example.com\"\nreply = \"twiml\"\n";
        std::fs::write(&file, format!("{twilio}[llm]\nmodel = \"m\"\n")).unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("llm.timeout") && err.contains("15 s"), "{err}");
        std::fs::write(
            &file,
            format!("{twilio}[llm]\nmodel = \"m\"\ntimeout = \"2s\"\nmax_retries = 1\n"),
        )
        .unwrap();
        Settings::load(Some(&file)).unwrap();
        std::fs::write(
            &file,
            format!("{}[llm]\nmodel = \"m\"\n", twilio.replace("twiml", "rest")),
        )
        .unwrap();
        Settings::load(Some(&file)).unwrap();
    }

    #[test]
    fn the_unauthenticated_simulator_serves_loopback_only_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parley.toml");
        std::fs::write(&file, "[server]\nhost = \"0.0.0.0\"\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("server.host") && err.contains("simulator"), "{err}");
        std::fs::write(&file, "[server]\nhost = \"127.0.0.2\"\n").unwrap();
        assert!(Settings::load(Some(&file)).is_ok());
        std::fs::write(
            &file,
            "[server]\nhost = \"0.0.0.0\"\nallow_remote_simulator = true\n",
        )
        .unwrap();
        assert!(Settings::load(Some(&file)).is_ok());
    }

    #[test]
    fn the_index_backend_is_chosen_in_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parley.toml");
        std::fs::write(&file, "").unwrap();
        assert_eq!(
            Settings::load(Some(&file)).unwrap().index.backend,
            IndexBackend::Embedded
        );
        std::fs::write(
            &file,
            "[index]\nbackend = \"qdrant\"\n[index.qdrant]\nurl = \"http://qdrant:6334\"\ncollection = \"kb\"\ntimeout = \"3s\"\n",
        )
        .unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.index.backend, IndexBackend::Qdrant);
        assert_eq!(settings.index.qdrant.url, "http://qdrant:6334");
        assert_eq!(settings.index.qdrant.collection, "kb");
        assert_eq!(settings.index.qdrant.timeout, Duration::from_secs(3));
        std::fs::write(
            &file,
            "[index]\nbackend = \"qdrant\"\n[index.qdrant]\nurl = \"qdrant:6334\"\n",
        )
        .unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("index.qdrant.url"), "{err}");
        std::fs::write(&file, "[index]\nbackend = \"elastic\"\n").unwrap();
        assert!(Settings::load(Some(&file)).is_err());
    }
}
