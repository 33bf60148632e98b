//! Typed settings, loaded in layers: compiled defaults, then an optional TOML file, then
//! `PARLEY__SECTION__KEY` environment variables. Validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
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

[server]
host = "127.0.0.1"
port = 8080

[embedding]
model_dir = ".cache/models/all-MiniLM-L6-v2-int8"
threads = 1
"#;

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
        self.listen_addr()?;
        self.agent.validate().map_err(|problem| SettingsError::Invalid {
            key: "agent",
            problem,
        })?;
        if let Some(llm) = &self.llm {
            llm.validate().map_err(|err| SettingsError::Invalid {
                key: "llm",
                problem: err.to_string(),
            })?;
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
}
