//! The knowledge index seam: what every backend (embedded, Qdrant) must do,
//! and the rank fusion that combines dense and lexical results the same way everywhere.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::chunk::Chunk;
use crate::error::{KnowledgeError, Result};
use crate::merchant::MerchantId;

/// A chunk with its embedding, ready to index.
#[derive(Debug, Clone)]
pub struct IndexedChunk {
    pub chunk: Chunk,
    pub vector: Vec<f32>,
}

/// A question, both as text (for the lexical side) and as a unit vector (for the dense side).
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: String,
    pub vector: Vec<f32>,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub chunk: Chunk,
    /// Reciprocal-rank-fusion score; only its order is meaningful.
    pub score: f32,
    /// Cosine similarity to the question, when the chunk was a dense candidate. The agent
    /// uses it as an absolute measure of how well the knowledge covers the question.
    pub dense_score: Option<f32>,
    /// BM25 score, when the chunk matched lexically.
    pub lexical_score: Option<f32>,
}

/// Storage and search of one or many merchants' chunks. Every call is scoped to one
/// merchant: no method can return another merchant's chunks.
#[async_trait]
pub trait KnowledgeIndex: Send + Sync {
    fn backend_name(&self) -> &'static str;

    /// Vectors already stored for this merchant under `model_id`, by content hash, so an
    /// ingest re-embeds only what changed.
    async fn stored_vectors(
        &self,
        merchant: &MerchantId,
        model_id: &str,
    ) -> Result<HashMap<String, Vec<f32>>>;

    /// Makes `chunks` the merchant's whole content, atomically: readers see the old set or
    /// the new one, and a failure leaves the old one in place.
    async fn replace(&self, merchant: &MerchantId, model_id: &str, chunks: Vec<IndexedChunk>) -> Result<()>;

    /// Hybrid search within one merchant. Unknown merchants are an error, not an empty list,
    /// so a typo in a merchant id is never mistaken for "no knowledge".
    async fn search(&self, merchant: &MerchantId, query: &SearchQuery) -> Result<Vec<SearchHit>>;

    async fn merchants(&self) -> Result<Vec<MerchantId>>;

    async fn chunk_count(&self, merchant: &MerchantId) -> Result<usize>;

    /// Whether the index can serve requests now, for the service's readiness probe. By
    /// default: it can list its merchants.
    async fn ready(&self) -> Result<()> {
        self.merchants().await.map(|_| ())
    }

    /// Merchants whose stored index could not be read when last used, with why. Their
    /// questions escalate (`knowledge_unavailable`) until a re-ingest repairs them; every other
    /// merchant is served as usual.
    fn unreadable_merchants(&self) -> Vec<(MerchantId, String)> {
        Vec::new()
    }

    /// Everything stored for one merchant, to move it to another backend. Unknown merchants
    /// are an error.
    async fn export(&self, merchant: &MerchantId) -> Result<Export>;
}

/// What every backend checks before a `replace`: one vector dimension throughout, and no
/// other merchant's chunk. Returns the dimension (0 for no chunks).
pub(crate) fn check_replacement(merchant: &MerchantId, chunks: &[IndexedChunk]) -> Result<usize> {
    let dimension = chunks.first().map(|c| c.vector.len()).unwrap_or(0);
    if let Some(bad) = chunks.iter().find(|c| c.vector.len() != dimension) {
        return Err(KnowledgeError::Index(format!(
            "chunk {} has a {}-dimensional vector, expected {dimension}",
            bad.chunk.id,
            bad.vector.len()
        )));
    }
    if let Some(foreign) = chunks.iter().find(|c| &c.chunk.merchant_id != merchant) {
        return Err(KnowledgeError::Index(format!(
            "chunk {} belongs to merchant {}, not {merchant}",
            foreign.chunk.id, foreign.chunk.merchant_id
        )));
    }
    Ok(dimension)
}

/// A merchant's whole index content: the model its vectors came from and every chunk.
#[derive(Debug, Clone)]
pub struct Export {
    pub model_id: String,
    pub chunks: Vec<IndexedChunk>,
}

/// Copies one merchant from `from` to `to` without re-embedding anything: afterwards its
/// content on `to` is exactly its content on `from` (chunks only `to` had are removed).
/// Returns how many chunks were copied. Other merchants on `to` are untouched.
pub async fn migrate(
    from: &dyn KnowledgeIndex,
    to: &dyn KnowledgeIndex,
    merchant: &MerchantId,
) -> Result<usize> {
    let export = from.export(merchant).await?;
    let copied = export.chunks.len();
    to.replace(merchant, &export.model_id, export.chunks).await?;
    Ok(copied)
}

/// The RRF constant from Cormack et al. (2009); 60 is the value every major engine defaults to.
pub const RRF_K: f32 = 60.0;

/// Fuses ranked candidate lists by reciprocal rank: score = Σ 1 / (k + rank). Inputs are
/// (key, raw score) in rank order; the result is (key, fused score) best first.
pub fn reciprocal_rank_fusion<K: Clone + Eq + std::hash::Hash>(
    lists: &[Vec<(K, f32)>],
    limit: usize,
) -> Vec<(K, f32)> {
    let mut fused: HashMap<K, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for list in lists {
        for (rank, (key, _)) in list.iter().enumerate() {
            let entry = fused.entry(key.clone()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut ranked: Vec<(K, f32, usize)> = fused.into_iter().map(|(k, (s, o))| (k, s, o)).collect();
    // Ties break by first appearance, keeping the result deterministic.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    ranked.truncate(limit);
    ranked.into_iter().map(|(k, s, _)| (k, s)).collect()
}

/// Puts exact SKU matches first: those among the fused results keep their fused order, the
/// rest follow with score 0 in the order given. A customer who types a SKU has named the item
/// exactly; BM25 alone splits `SLJ-M-BLK-S` into pieces shared by sibling products.
pub fn promote_exact<K: Clone + Eq + std::hash::Hash>(fused: &mut Vec<(K, f32)>, exact: &[K]) {
    if exact.is_empty() {
        return;
    }
    for key in exact {
        if !fused.iter().any(|(k, _)| k == key) {
            fused.push((key.clone(), 0.0));
        }
    }
    let exact: std::collections::HashSet<&K> = exact.iter().collect();
    let (mut first, rest): (Vec<_>, Vec<_>) = fused.drain(..).partition(|(k, _)| exact.contains(k));
    first.extend(rest);
    *fused = first;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let dense = vec![("a", 0.9), ("b", 0.8), ("c", 0.7)];
        let lexical = vec![("c", 12.0), ("d", 9.0)];
        let fused = reciprocal_rank_fusion(&[dense, lexical], 10);
        let keys: Vec<&str> = fused.iter().map(|(k, _)| *k).collect();
        // c is third in one list and first in the other: 1/63 + 1/61 beats a's 1/61.
        assert_eq!(keys, vec!["c", "a", "b", "d"]);
        assert!((fused[0].1 - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
    }

    #[test]
    fn exact_matches_go_first_in_fused_order() {
        let mut fused = vec![("a", 0.3), ("b", 0.2), ("c", 0.1)];
        promote_exact(&mut fused, &["x", "c", "b"]);
        let keys: Vec<&str> = fused.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec!["b", "c", "x", "a"]);
        assert_eq!(fused[2].1, 0.0);
    }
}
