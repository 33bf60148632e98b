//! The knowledge crate's error type: every failure names the file or merchant it concerns.

use std::path::PathBuf;

/// Why a knowledge operation failed. Messages are written for the merchant or operator who
/// has to fix the input, so each one names the offending file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    InvalidFile { path: PathBuf, message: String },
    #[error(transparent)]
    InvalidMerchantId(#[from] parley_core::InvalidMerchantId),
    #[error("unknown merchant {0:?}: it has not been ingested")]
    UnknownMerchant(String),
    #[error("embedding model: {0}")]
    Embedding(String),
    #[error("knowledge index: {0}")]
    Index(String),
    /// The index backend could not be reached (after retries): a transient outage, not a
    /// problem with the request. Callers must not mistake it for "no knowledge".
    #[error("knowledge index unavailable: {0}")]
    Unavailable(String),
}

impl KnowledgeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::InvalidFile {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = KnowledgeError> = std::result::Result<T, E>;
