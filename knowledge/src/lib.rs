//! Parley's knowledge base: a merchant's products and policies go in (ingestion, chunking,
//! embeddings), and the passages that best answer a customer's question come out (hybrid
//! dense + BM25 retrieval, always scoped to one merchant). Knows nothing about HTTP.

pub mod chunk;
pub mod embed;
pub mod embedded;
pub mod error;
pub mod index;
pub mod ingest;
pub mod lexical;
pub mod merchant;
pub mod qdrant;
pub mod sentences;
pub mod shopify;
pub mod text;

pub use chunk::{Chunk, ChunkConfig, ChunkKind};
pub use embed::{CachingEmbedder, Embedder, EmbedderConfig, FastEmbedder};
pub use embedded::EmbeddedIndex;
pub use error::{KnowledgeError, Result};
pub use index::{IndexedChunk, KnowledgeIndex, SearchHit, SearchQuery};
pub use ingest::{IngestPermit, IngestProgress, IngestReport, KnowledgeBase};
pub use merchant::{MerchantConfig, MerchantData, MerchantId, Offer};
pub use qdrant::{QdrantConfig, QdrantIndex};
pub use sentences::SentenceVectors;
pub use shopify::{Fulfillment, LineItem, Order, Product, Variant};
