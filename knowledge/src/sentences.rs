//! Passage sentences and their vectors: how a chunk's text splits into the self-contained
//! sentences a reply is built from, and the per-merchant store of those sentences' embeddings,
//! computed at ingest so the responder never embeds a passage sentence on the hot path.
//!
//! The splitter lives here, not in the agent, because ingest and the responder must agree on
//! every sentence's exact text: the store is keyed by it. A sentence the store lacks (a fact
//! phrased by the agent's tools, or a splitter change since the last ingest) is simply
//! embedded when needed, so a stale store is slower, never wrong.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Splits a passage into clean, self-contained sentences: markdown emphasis and list
/// markers removed, headings and fragments dropped.
pub fn passage_sentences(text: &str) -> Vec<String> {
    static LIST_MARKER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\s*([-*•]|\d+[.)])\s+").expect("valid"));
    static BOLD_LABEL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(\*\*|__)([^*_]{2,80})(\*\*|__):?$").expect("valid"));
    let mut out = Vec::new();
    let mut table_header: Option<Vec<String>> = None;
    // A bold line on its own ("**Canada**") labels the list below it, like a heading: its
    // items read "Canada: DHL eCommerce, $19.95 flat rate …", not as the general rule.
    let mut label: Option<String> = None;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (index, &line) in lines.iter().enumerate() {
        if let Some(caps) = BOLD_LABEL.captures(line) {
            label = Some(caps[2].trim().trim_end_matches(':').to_owned());
            continue;
        }
        let is_item = LIST_MARKER.is_match(line);
        // Ingest keeps the label's text and drops its emphasis: a short line with no
        // sentence end, before a list, is a label too.
        // A longer one ("UK, EU, Norway, Switzerland, Australia, New Zealand and Japan")
        // labels the list it stands right above.
        let heads_list = lines[index + 1..]
            .iter()
            .find(|l| !l.is_empty())
            .is_some_and(|next| LIST_MARKER.is_match(next));
        let (max_chars, max_words) = if heads_list { (120, 16) } else { (80, 8) };
        // Beyond eight words a label is a row of names; "We currently ship to these
        // countries outside the US:" introduces its list, it does not scope it.
        let n_words = line.split_whitespace().count();
        let names = line
            .split_whitespace()
            .filter(|w| w.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit()))
            .count();
        let reads_as_names = n_words <= 8 || names * 5 >= n_words * 3;
        let short_label = reads_as_names
            && !is_item
            && !line.starts_with(['#', '|'])
            && (2..=max_chars).contains(&line.len())
            && n_words <= max_words
            && !line.ends_with(['.', '!', '?', ')', ',', ';'])
            // "Wholesale (spas): wholesale@…" is a line of its own, not a label.
            && !line.trim_end_matches(':').contains(':');
        if short_label {
            let text = line.trim_end_matches(':');
            // The chunker's own "Variants:" line heads variant rows that name themselves.
            label = (text != crate::chunk::VARIANTS_LABEL).then(|| text.to_owned());
            continue;
        }
        if !is_item && !line.is_empty() {
            label = None;
        }
        if line.starts_with('|') {
            // Table rows become sentences: "Standard: Cost $6.95; Delivery time 3-7 days."
            let Some(cells) = table_cells(line) else {
                continue;
            };
            match &table_header {
                None => table_header = Some(cells),
                Some(header) => out.push(table_row_sentence(header, &cells)),
            }
            continue;
        }
        table_header = None;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = LIST_MARKER.replace(line, "");
        let line = line.replace("**", "").replace("__", "").replace('`', "");
        let line = match label.as_deref().filter(|l| is_item && !line.starts_with(l)) {
            Some(label) => format!("{label}: {line}"),
            None => line,
        };
        for sentence in crate::text::split_sentences(&line) {
            let sentence = sentence.trim();
            // Fragments ("Gift cards"), label lines ("Note:") and catalogue metadata ("Tags:
            // …", "Serum (Skincare, by Glowleaf).") say too little alone.
            let metadata =
                sentence.starts_with("Tags:") || (sentence.contains(", by ") && sentence.ends_with(")."));
            if metadata
                || sentence.len() < 20
                || sentence.ends_with(':')
                || sentence.split_whitespace().count() < 4
            {
                continue;
            }
            let mut sentence = sentence.to_owned();
            if !sentence.ends_with(['.', '!', '?', ')']) {
                sentence.push('.');
            }
            out.push(sentence);
        }
    }
    out
}

fn table_row_sentence(header: &[String], cells: &[String]) -> String {
    let mut parts = Vec::new();
    for (idx, cell) in cells.iter().enumerate().skip(1) {
        if cell.is_empty() {
            continue;
        }
        match header.get(idx).filter(|h| !h.is_empty()) {
            Some(name) => parts.push(format!("{} {cell}", name.to_lowercase())),
            None => parts.push(cell.clone()),
        }
    }
    let first = cells.first().map(String::as_str).unwrap_or_default();
    format!("{first}: {}.", parts.join("; "))
}

/// A Markdown pipe-table row as its cells (emphasis removed), or `None` for the `|---|`
/// separator row.
pub fn table_cells(line: &str) -> Option<Vec<String>> {
    let cells: Vec<String> = line
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().replace("**", ""))
        .collect();
    let separator = cells
        .iter()
        .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
    (!separator).then_some(cells)
}

/// Bumped whenever the file layout changes; an older file is ignored (and rebuilt by the
/// next ingest), never misread.
const FILE_FORMAT: u32 = 1;

/// One merchant's passage sentences with their unit vectors, from one embedding model.
#[derive(Debug, Default, Clone)]
pub struct SentenceVectors {
    model_id: String,
    dimension: usize,
    rows: HashMap<String, usize>,
    /// Row-major, `rows.len() * dimension` values.
    vectors: Vec<f32>,
}

/// The on-disk layout: parallel lists, so the vectors are one flat allocation.
#[derive(Serialize, Deserialize)]
struct SentenceFile {
    format: u32,
    model_id: String,
    dimension: usize,
    texts: Vec<String>,
    vectors: Vec<f32>,
}

impl SentenceVectors {
    pub fn new(model_id: &str, dimension: usize) -> Self {
        Self {
            model_id: model_id.to_owned(),
            dimension,
            rows: HashMap::new(),
            vectors: Vec::new(),
        }
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Every stored sentence with its vector, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[f32])> {
        self.rows.iter().map(|(text, &row)| {
            (
                text.as_str(),
                &self.vectors[row * self.dimension..(row + 1) * self.dimension],
            )
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The stored vector of exactly this sentence text.
    pub fn get(&self, sentence: &str) -> Option<&[f32]> {
        let row = *self.rows.get(sentence)?;
        Some(&self.vectors[row * self.dimension..(row + 1) * self.dimension])
    }

    /// Adds (or keeps) a sentence's vector; a vector of another dimension is refused.
    pub fn insert(&mut self, sentence: String, vector: &[f32]) -> Result<(), String> {
        if vector.len() != self.dimension {
            return Err(format!(
                "a {}-dimensional vector for a {}-dimensional store",
                vector.len(),
                self.dimension
            ));
        }
        if !self.rows.contains_key(&sentence) {
            self.rows.insert(sentence, self.rows.len());
            self.vectors.extend_from_slice(vector);
        }
        Ok(())
    }

    /// The bytes [`SentenceVectors::decode`] reads back.
    pub fn encode(&self) -> Vec<u8> {
        let mut texts = vec![String::new(); self.rows.len()];
        for (text, &row) in &self.rows {
            texts[row] = text.clone();
        }
        let file = SentenceFile {
            format: FILE_FORMAT,
            model_id: self.model_id.clone(),
            dimension: self.dimension,
            texts,
            vectors: self.vectors.clone(),
        };
        bincode::serialize(&file).expect("in-memory bincode serialisation cannot fail")
    }

    /// Decodes and validates stored bytes, defensively: garbage, truncation or a hostile edit
    /// is an error saying what is wrong, never a panic or an allocation beyond the input's size.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let file: SentenceFile = crate::embedded::decode_bounded(bytes)?;
        if file.format != FILE_FORMAT {
            return Err(format!(
                "format {} is not supported (expected {FILE_FORMAT})",
                file.format
            ));
        }
        if file.texts.len().checked_mul(file.dimension) != Some(file.vectors.len()) {
            return Err(format!(
                "{} vector values for {} sentences of dimension {}: truncated or corrupt",
                file.vectors.len(),
                file.texts.len(),
                file.dimension
            ));
        }
        let mut rows = HashMap::with_capacity(file.texts.len());
        for (row, text) in file.texts.into_iter().enumerate() {
            if rows.insert(text, row).is_some() {
                return Err("a sentence is stored twice".into());
            }
        }
        Ok(Self {
            model_id: file.model_id,
            dimension: file.dimension,
            rows,
            vectors: file.vectors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cleaned() {
        let text = "## Window\n- You have **30 days from delivery** to return.\n- Gift cards\nNote:\n";
        assert_eq!(
            passage_sentences(text),
            vec!["You have 30 days from delivery to return."]
        );
        let labelled = "**Canada**\n- DHL eCommerce, $19.95 flat rate.\n- 5-10 business days.\n\nAll prices in USD are final here.\n- Plain item without a label here.\nJapan\n- DHL Express, $39.95 flat rate.\n";
        assert_eq!(
            passage_sentences(labelled),
            vec![
                "Canada: DHL eCommerce, $19.95 flat rate.",
                "Canada: 5-10 business days.",
                "All prices in USD are final here.",
                "Plain item without a label here.",
                "Japan: DHL Express, $39.95 flat rate.",
            ]
        );
        // A long label line scopes the list right below it, and only a list.
        let long_label = "UK, EU, Norway, Switzerland, Australia, New Zealand and Japan\n- DHL Express, $39.95 flat rate.\n\nWe currently ship to these countries outside the US:\n- Canada: $12.95 flat rate.\n\nOrders ship from Denver, Colorado, and from Reno, Nevada in the US\nEvery order leaves within two days.\n";
        assert_eq!(
            passage_sentences(long_label),
            vec![
                "UK, EU, Norway, Switzerland, Australia, New Zealand and Japan: DHL Express, $39.95 flat rate.",
                // An introduction ending in a colon is no sentence alone, and no label.
                "Canada: $12.95 flat rate.",
                "Orders ship from Denver, Colorado, and from Reno, Nevada in the US.",
                "Every order leaves within two days.",
            ]
        );
        let table =
            "| Method | Cost | Time |\n|---|---|---|\n| Standard | $6.95, **free over $75** | 3-7 days |\n";
        assert_eq!(
            passage_sentences(table),
            vec!["Standard: cost $6.95, free over $75; time 3-7 days."]
        );
    }

    #[test]
    fn vectors_round_trip_and_garbage_is_refused() {
        let mut store = SentenceVectors::new("model-x", 2);
        store.insert("Returns are free.".into(), &[0.6, 0.8]).unwrap();
        store
            .insert("Shipping takes 3 days.".into(), &[1.0, 0.0])
            .unwrap();
        // The first vector stored for a text stays.
        store.insert("Returns are free.".into(), &[0.0, 1.0]).unwrap();
        assert!(store.insert("Too long.".into(), &[1.0, 0.0, 0.0]).is_err());
        let bytes = store.encode();
        let back = SentenceVectors::decode(&bytes).unwrap();
        assert_eq!(back.model_id(), "model-x");
        assert_eq!(back.len(), 2);
        assert_eq!(back.get("Returns are free."), Some(&[0.6, 0.8][..]));
        assert_eq!(back.get("Shipping takes 3 days."), Some(&[1.0, 0.0][..]));
        assert_eq!(back.get("Unknown."), None);
        for cut in [0, 7, bytes.len() / 2, bytes.len() - 1] {
            assert!(SentenceVectors::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 9;
        assert!(
            SentenceVectors::decode(&wrong_format)
                .unwrap_err()
                .contains("format 9")
        );
    }
}
