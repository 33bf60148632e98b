//! Chunking: policies are split on their headings, then by token budget with overlap; each
//! product becomes a chunk of its facts (options, prices, SKUs, stock) plus description
//! chunks when the description is long.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::merchant::{DocFormat, MerchantData, MerchantId, PolicyDoc};
use crate::shopify::Product;
use crate::text::{count_tokens, html_to_text, split_sentences, strip_markdown_inline, tokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkKind {
    Policy,
    Product,
    ProductVariants,
    ProductDescription,
}

/// A retrievable passage. `source` is what answers cite: `policies/returns.md` or
/// `products/<handle>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Stable id: the same merchant, source and content always give the same id, so a
    /// backend can upsert by it.
    pub id: String,
    pub merchant_id: MerchantId,
    pub source: String,
    pub kind: ChunkKind,
    /// The document's or product's title.
    pub title: String,
    /// Headings above this passage, outermost first.
    pub heading_path: Vec<String>,
    pub text: String,
    /// sha256 of [`Chunk::embedding_text`]: equal hashes mean the stored vector is reusable.
    pub content_hash: String,
}

impl Chunk {
    /// What gets embedded and indexed: the passage with its title and headings, because
    /// "Refunds take 5-7 days" means little without "Returns > Refund timing" above it.
    pub fn embedding_text(&self) -> String {
        embedding_text(&self.title, &self.heading_path, &self.text)
    }
}

fn embedding_text(title: &str, heading_path: &[String], text: &str) -> String {
    let mut context: Vec<&str> = vec![title];
    for heading in heading_path {
        if heading != title {
            context.push(heading);
        }
    }
    format!("{}\n{}", context.join(" > "), text)
}

/// The line that heads a product chunk's variant rows (followed by a colon).
pub const VARIANTS_LABEL: &str = "Variants";

/// Token budgets for chunks, counted with [`crate::text::count_tokens`].
#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    /// Most tokens in one chunk's text. MiniLM-class embedders read about 256 word pieces,
    /// so the default leaves room for the heading context.
    pub max_tokens: usize,
    /// Tokens of trailing context repeated at the start of the next chunk of a section, so
    /// a fact split across a boundary is still found whole in one of them.
    pub overlap_tokens: usize,
    /// A product description up to this many tokens rides in the product's main chunk.
    pub inline_description_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            max_tokens: 200,
            overlap_tokens: 40,
            inline_description_tokens: 120,
        }
    }
}

/// Turns a merchant's data into chunks, in a deterministic order.
pub fn chunk_merchant(data: &MerchantData, config: &ChunkConfig) -> Vec<Chunk> {
    let merchant = &data.config.id;
    let mut builder = ChunkBuilder {
        merchant,
        chunks: Vec::new(),
    };
    for doc in &data.policies {
        chunk_policy(&mut builder, doc, config);
    }
    // Chunk ids are unique per source, so products can be chunked on their own.
    let mut chunks = builder.chunks;
    chunks.extend(chunk_products(data, config));
    chunks
}

/// The chunks of the merchant's active products only, exactly as [`chunk_merchant`] makes
/// them: the agent keeps them by product so a question about one product can always read that
/// product's own text, whatever retrieval ranked first.
pub fn chunk_products(data: &MerchantData, config: &ChunkConfig) -> Vec<Chunk> {
    let mut builder = ChunkBuilder {
        merchant: &data.config.id,
        chunks: Vec::new(),
    };
    for product in data.products.iter().filter(|p| p.is_active()) {
        chunk_product(&mut builder, product, config);
    }
    builder.chunks
}

struct ChunkBuilder<'a> {
    merchant: &'a MerchantId,
    chunks: Vec<Chunk>,
}

impl ChunkBuilder<'_> {
    fn push(&mut self, source: &str, kind: ChunkKind, title: &str, heading_path: &[String], text: String) {
        let text = text.trim().to_owned();
        if text.is_empty() {
            return;
        }
        let content_hash = hex::encode(Sha256::digest(
            embedding_text(title, heading_path, &text).as_bytes(),
        ));
        // Identical passages inside one source (a repeated disclaimer) still need distinct ids.
        let duplicates = self
            .chunks
            .iter()
            .filter(|c| c.source == source && c.content_hash == content_hash)
            .count();
        let id_digest = Sha256::digest(
            format!(
                "{}\u{1f}{source}\u{1f}{content_hash}\u{1f}{duplicates}",
                self.merchant
            )
            .as_bytes(),
        );
        self.chunks.push(Chunk {
            id: hex::encode(&id_digest[..16]),
            merchant_id: self.merchant.clone(),
            source: source.to_owned(),
            kind,
            title: title.to_owned(),
            heading_path: heading_path.to_vec(),
            text,
            content_hash,
        });
    }
}

/// One heading's worth of a document.
#[derive(Debug, PartialEq)]
struct Section {
    heading_path: Vec<String>,
    body: String,
}

fn chunk_policy(builder: &mut ChunkBuilder<'_>, doc: &PolicyDoc, config: &ChunkConfig) {
    let text = match doc.format {
        DocFormat::Html => html_to_text(&doc.raw),
        DocFormat::Markdown | DocFormat::Text => doc.raw.clone(),
    };
    let sections = match doc.format {
        DocFormat::Text => vec![Section {
            heading_path: Vec::new(),
            body: text,
        }],
        DocFormat::Markdown | DocFormat::Html => split_sections(&text),
    };
    let title = sections
        .iter()
        .find_map(|s| s.heading_path.first().cloned())
        .unwrap_or_else(|| title_from_source(&doc.source));
    for section in sections {
        for piece in split_by_tokens(&section.body, config) {
            builder.push(
                &doc.source,
                ChunkKind::Policy,
                &title,
                &section.heading_path,
                piece,
            );
        }
    }
}

/// "policies/shipping-and-delivery.md" → "Shipping and delivery".
fn title_from_source(source: &str) -> String {
    let stem = source
        .rsplit('/')
        .next()
        .unwrap_or(source)
        .split('.')
        .next()
        .unwrap_or(source)
        .replace(['-', '_'], " ");
    let mut chars = stem.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => stem,
    }
}

/// Splits Markdown-style text on ATX headings (`#` to `######`), tracking the heading path.
/// Lines inside fenced code blocks are never headings.
fn split_sections(text: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut body = String::new();
    let mut in_fence = false;
    let flush = |path: &[(usize, String)], body: &mut String, sections: &mut Vec<Section>| {
        if !body.trim().is_empty() {
            sections.push(Section {
                heading_path: path.iter().map(|(_, h)| h.clone()).collect(),
                body: std::mem::take(body),
            });
        }
        body.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if let Some((level, heading)) = (!in_fence).then(|| parse_heading(line)).flatten() {
            flush(&path, &mut body, &mut sections);
            path.retain(|(l, _)| *l < level);
            path.push((level, heading));
            continue;
        }
        body.push_str(&strip_markdown_inline(line));
        body.push('\n');
    }
    flush(&path, &mut body, &mut sections);
    sections
}

fn parse_heading(line: &str) -> Option<(usize, String)> {
    let trimmed = line.trim_start();
    let level = trimmed.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.starts_with(' ') {
        return None;
    }
    let heading = strip_markdown_inline(rest.trim().trim_end_matches('#').trim());
    (!heading.is_empty()).then_some((level, heading))
}

/// Packs paragraphs (then sentences, then raw token windows for run-on text) into pieces of
/// at most `max_tokens`, repeating up to `overlap_tokens` of trailing units in the next piece.
fn split_by_tokens(body: &str, config: &ChunkConfig) -> Vec<String> {
    let mut units: Vec<(String, usize)> = Vec::new();
    for paragraph in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let tokens = count_tokens(paragraph);
        if tokens <= config.max_tokens {
            units.push((paragraph.to_owned(), tokens));
            continue;
        }
        for line in paragraph.lines().map(str::trim).filter(|l| !l.is_empty()) {
            for sentence in split_sentences(line) {
                let tokens = count_tokens(sentence);
                if tokens <= config.max_tokens {
                    units.push((sentence.to_owned(), tokens));
                } else {
                    units.extend(token_windows(sentence, config.max_tokens));
                }
            }
        }
    }

    let mut pieces = Vec::new();
    let mut current: Vec<(String, usize)> = Vec::new();
    let mut current_tokens = 0;
    // Joining units with "\n\n" costs a token or so each; keep a margin for it.
    let joined_cost = |n: usize| n.saturating_sub(1);
    for unit in units {
        if !current.is_empty() && current_tokens + unit.1 + joined_cost(current.len() + 1) > config.max_tokens
        {
            pieces.push(join_units(&current));
            let mut carried: Vec<(String, usize)> = Vec::new();
            let mut carried_tokens = 0;
            for previous in current.iter().rev() {
                if carried_tokens + previous.1 > config.overlap_tokens
                    || carried_tokens + previous.1 + unit.1 + joined_cost(carried.len() + 2)
                        > config.max_tokens
                {
                    break;
                }
                carried_tokens += previous.1;
                carried.insert(0, previous.clone());
            }
            current = carried;
            current_tokens = carried_tokens;
        }
        current_tokens += unit.1;
        current.push(unit);
    }
    if !current.is_empty() {
        pieces.push(join_units(&current));
    }
    pieces
}

fn join_units(units: &[(String, usize)]) -> String {
    units
        .iter()
        .map(|(text, _)| text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Last resort for a "sentence" longer than the budget: cut it into token windows.
fn token_windows(text: &str, max_tokens: usize) -> Vec<(String, usize)> {
    let bpe = tokenizer();
    let tokens = bpe.encode_ordinary(text);
    tokens
        .chunks(max_tokens.saturating_sub(2).max(1))
        .filter_map(|window| {
            let piece = bpe.decode(window.to_vec()).ok()?;
            let count = count_tokens(&piece);
            Some((piece, count))
        })
        .collect()
}

fn chunk_product(builder: &mut ChunkBuilder<'_>, product: &Product, config: &ChunkConfig) {
    let source = format!("products/{}", product.handle);
    let title = product.title.as_str();
    let no_headings: &[String] = &[];

    let mut header = String::from(title);
    match (product.product_type.is_empty(), product.vendor.is_empty()) {
        (false, false) => header.push_str(&format!(" ({}, by {})", product.product_type, product.vendor)),
        (false, true) => header.push_str(&format!(" ({})", product.product_type)),
        (true, false) => header.push_str(&format!(" (by {})", product.vendor)),
        (true, true) => {}
    }
    header.push('.');
    if !product.tags.is_empty() {
        header.push_str(&format!("\nTags: {}.", product.tags.join(", ")));
    }
    let options: Vec<String> = product
        .options
        .iter()
        .filter(|o| o.name != "Title" && !o.values.is_empty())
        .map(|o| format!("{}: {}", o.name, o.values.join(", ")))
        .collect();
    if !options.is_empty() {
        header.push_str(&format!("\nOptions: {}.", options.join("; ")));
    }
    header.push_str(&price_summary(product));

    let description = product.description_text();
    let description_tokens = count_tokens(&description);
    let inline = !description.is_empty()
        && description_tokens <= config.inline_description_tokens
        && count_tokens(&header) + description_tokens < config.max_tokens;
    let main = if inline {
        format!("{header}\n{description}")
    } else {
        header
    };

    // Variant lines go in the main chunk while they fit, then into "variants" chunks.
    let variant_lines: Vec<String> = product
        .variants
        .iter()
        .map(|v| variant_line(product, v))
        .collect();
    let mut with_variants = format!("{main}\n{VARIANTS_LABEL}:");
    let mut lines = variant_lines.into_iter().peekable();
    let mut n_inline = 0;
    while let Some(line) = lines.peek() {
        if count_tokens(&format!("{with_variants}\n{line}")) > config.max_tokens {
            break;
        }
        with_variants.push('\n');
        with_variants.push_str(line);
        lines.next();
        n_inline += 1;
    }
    let main_text = if n_inline > 0 { with_variants } else { main };
    builder.push(&source, ChunkKind::Product, title, no_headings, main_text);

    let rest: Vec<String> = lines.collect();
    if !rest.is_empty() {
        let heading = vec![format!("{title} variants")];
        for piece in split_by_tokens(&rest.join("\n\n"), config) {
            builder.push(
                &source,
                ChunkKind::ProductVariants,
                title,
                &heading,
                piece.replace("\n\n", "\n"),
            );
        }
    }
    if !inline && !description.is_empty() {
        let heading = vec!["Description".to_owned()];
        for section in split_sections(&description) {
            let mut path = heading.clone();
            path.extend(section.heading_path);
            for piece in split_by_tokens(&section.body, config) {
                builder.push(&source, ChunkKind::ProductDescription, title, &path, piece);
            }
        }
    }
}

fn price_summary(product: &Product) -> String {
    let prices: Vec<f64> = product
        .variants
        .iter()
        .filter_map(|v| v.price.trim().parse::<f64>().ok())
        .collect();
    let Some(min) = prices.iter().copied().reduce(f64::min) else {
        return String::new();
    };
    let max = prices.iter().copied().fold(min, f64::max);
    let mut summary = if (max - min).abs() < 0.005 {
        format!("\nPrice: ${min:.2}.")
    } else {
        format!("\nPrice: ${min:.2} to ${max:.2}.")
    };
    let tracked: Vec<bool> = product.variants.iter().filter_map(|v| v.in_stock()).collect();
    if !tracked.is_empty() {
        let in_stock = tracked.iter().filter(|s| **s).count();
        summary.push_str(&match in_stock {
            0 => " Currently sold out.".to_owned(),
            n if n == tracked.len() => " All options in stock.".to_owned(),
            n => format!(" {n} of {} options in stock.", tracked.len()),
        });
    }
    summary
}

fn variant_line(product: &Product, variant: &crate::shopify::Variant) -> String {
    let values = variant.option_values();
    let name = if values.is_empty() {
        product.title.clone()
    } else {
        values.join(" / ")
    };
    let mut line = format!("- {name}: ${}", variant.price.trim());
    if let Some(compare) = variant
        .compare_at_price
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        line.push_str(&format!(" (on sale, was ${})", compare.trim()));
    }
    if !variant.sku.is_empty() {
        line.push_str(&format!(", SKU {}", variant.sku));
    }
    line.push_str(match variant.in_stock() {
        Some(true) => ", in stock",
        Some(false) => ", sold out",
        None => "",
    });
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_heading_structure() {
        let sections = split_sections(
            "# Returns\nIntro.\n## Window\n30 days.\n### Sale items\nFinal.\n## Refunds\nFast.\n",
        );
        let paths: Vec<Vec<String>> = sections.iter().map(|s| s.heading_path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                vec!["Returns".to_owned()],
                vec!["Returns".to_owned(), "Window".to_owned()],
                vec!["Returns".to_owned(), "Window".to_owned(), "Sale items".to_owned()],
                vec!["Returns".to_owned(), "Refunds".to_owned()],
            ]
        );
        assert_eq!(sections[1].body.trim(), "30 days.");
    }

    #[test]
    fn hashes_in_code_fences_are_not_headings() {
        let sections = split_sections("# A\n```\n# not a heading\n```\ntext\n");
        assert_eq!(sections.len(), 1);
        assert!(sections[0].body.contains("# not a heading"));
    }

    #[test]
    fn long_sections_respect_budget_and_overlap() {
        let config = ChunkConfig {
            max_tokens: 40,
            overlap_tokens: 12,
            inline_description_tokens: 10,
        };
        let body: String = (1..=30)
            .map(|i| format!("Sentence number {i} is about returns. "))
            .collect();
        let pieces = split_by_tokens(&body, &config);
        assert!(pieces.len() > 3, "{pieces:?}");
        for piece in &pieces {
            assert!(
                count_tokens(piece) <= config.max_tokens,
                "{} tokens: {piece}",
                count_tokens(piece)
            );
        }
        // Overlap: the last sentence of a piece opens the next one.
        let last_of_first = split_sentences(&pieces[0]).last().copied().unwrap().to_owned();
        assert!(pieces[1].starts_with(&last_of_first), "{pieces:?}");
    }

    #[test]
    fn a_run_on_sentence_is_cut_into_windows() {
        let config = ChunkConfig {
            max_tokens: 20,
            overlap_tokens: 0,
            inline_description_tokens: 10,
        };
        let body = "word ".repeat(200);
        for piece in split_by_tokens(&body, &config) {
            assert!(count_tokens(&piece) <= 20);
        }
    }

    #[test]
    fn title_from_file_name() {
        assert_eq!(
            title_from_source("policies/shipping-and-delivery.md"),
            "Shipping and delivery"
        );
    }
}
