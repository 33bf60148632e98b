//! The lexical side of retrieval, shared by every backend so they tokenise and match alike:
//! the English analyzer behind BM25, SKU extraction from chunks and questions, and BM25
//! term weights as sparse vectors for engines that score lexically by dot product (Qdrant).

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter,
    TextAnalyzer,
};

/// BM25 term-frequency saturation: the usual value, and the one tantivy uses.
pub const BM25_K1: f32 = 1.2;
/// BM25 length normalisation: the usual value, and the one tantivy uses.
pub const BM25_B: f32 = 0.75;

/// English analysis for BM25: split on non-alphanumerics (so `RL2-BLK-10` is `rl2 blk 10`,
/// matching however a customer types it), fold accents, drop stop words, stem.
pub fn analyzer() -> TextAnalyzer {
    let stop_words = StopWordFilter::new(Language::English).expect("tantivy ships English stop words");
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(stop_words)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Every analysed term of `text`, in order, repeats included.
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        terms.push(stream.token().text.clone());
    }
    terms
}

/// The distinct analysed terms of a question, in first-seen order: each counts once, as in a
/// BM25 query of OR-ed terms.
pub fn query_terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for term in terms(analyzer, text) {
        if !unique.contains(&term) {
            unique.push(term);
        }
    }
    unique
}

/// SKUs written in product chunks as `SKU <code>` (see `chunk::variant_line`), lowercased.
pub fn chunk_skus(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split("SKU ").skip(1).filter_map(|rest| {
        let code: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            .collect();
        let code = code.trim_end_matches(['.', '/']).to_lowercase();
        (!code.is_empty()).then_some(code)
    })
}

/// Words of a question that could be SKUs, lowercased: codes have a digit or a separator.
pub fn query_codes(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
        .map(|word| word.trim_matches(['.', '/', '-', '_']).to_lowercase())
        .filter(|word| word.len() >= 3 && word.chars().any(|c| c.is_ascii_digit() || c == '-' || c == '_'))
        .collect()
}

/// The sparse-vector dimension of an analysed term: the first four bytes of its sha256, so
/// the same term maps to the same dimension in every process, version and merchant.
pub fn term_id(term: &str) -> u32 {
    let digest = Sha256::digest(term.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A sparse vector as parallel arrays, indices ascending and unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseTerms {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseTerms {
    fn from_map(weights: HashMap<u32, f32>) -> Self {
        let mut pairs: Vec<(u32, f32)> = weights.into_iter().collect();
        pairs.sort_by_key(|(index, _)| *index);
        let (indices, values) = pairs.into_iter().unzip();
        Self { indices, values }
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// A document's BM25 term weights without the IDF factor, which the engine multiplies in at
/// query time from its own document frequencies:
/// `tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))`, summed per dimension.
/// `len` is the document's number of analysed terms, as tantivy counts it.
pub fn bm25_document(terms: &[String], avg_len: f32) -> SparseTerms {
    let mut counts: HashMap<u32, f32> = HashMap::new();
    for term in terms {
        *counts.entry(term_id(term)).or_default() += 1.0;
    }
    let len = terms.len() as f32;
    let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * len / avg_len.max(f32::MIN_POSITIVE));
    let weights = counts
        .into_iter()
        .map(|(index, tf)| (index, tf * (BM25_K1 + 1.0) / (tf + norm)))
        .collect();
    SparseTerms::from_map(weights)
}

/// A question's sparse vector: weight 1 per distinct term, so a document's score is the sum
/// of its (IDF-scaled) weights for the terms it shares with the question.
pub fn bm25_query(terms: &[String]) -> SparseTerms {
    SparseTerms::from_map(terms.iter().map(|term| (term_id(term), 1.0)).collect())
}

/// The mean number of analysed terms per document, the BM25 length reference.
pub fn average_len(lengths: impl IntoIterator<Item = usize>) -> f32 {
    let (total, count) = lengths
        .into_iter()
        .fold((0usize, 0usize), |(total, count), len| (total + len, count + 1));
    if count == 0 {
        1.0
    } else {
        total as f32 / count as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_read_from_product_chunks_and_questions() {
        let text = "- S / Black: $199.00, SKU SLJ-M-BLK-S, in stock\n- M: $5, SKU GL-VC15-30.";
        assert_eq!(
            chunk_skus(text).collect::<Vec<_>>(),
            vec!["slj-m-blk-s", "gl-vc15-30"]
        );
        assert_eq!(
            query_codes("is slj-m-blk-s in stock? size 10"),
            vec!["slj-m-blk-s"]
        );
        assert_eq!(query_codes("Do you have GL-VC15-30."), vec!["gl-vc15-30"]);
    }

    #[test]
    fn analysis_stems_folds_and_drops_stop_words() {
        let mut analyzer = analyzer();
        assert_eq!(
            terms(&mut analyzer, "The Café returns are RETURNED"),
            vec!["cafe", "return", "return"]
        );
        assert_eq!(
            query_terms(&mut analyzer, "returns returned RL2-BLK-10"),
            vec!["return", "rl2", "blk", "10"]
        );
    }

    #[test]
    fn bm25_weights_saturate_with_frequency_and_shrink_with_length() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let once = bm25_document(&words("tent pole"), 2.0);
        let twice = bm25_document(&words("tent tent"), 2.0);
        let long = bm25_document(&words("tent a b c d e f g"), 2.0);
        let tent = term_id("tent");
        let weight = |v: &SparseTerms| v.values[v.indices.iter().position(|&i| i == tent).unwrap()];
        // At average length one occurrence weighs exactly 1: (k1 + 1) / (1 + k1).
        assert!((weight(&once) - 1.0).abs() < 1e-6);
        assert!(weight(&twice) > weight(&once) && weight(&twice) < 2.0);
        assert!(weight(&long) < weight(&once));
        assert!(once.indices.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(bm25_query(&words("tent tent")).values, vec![1.0]);
    }
}
