//! Text helpers: HTML to text with a real HTML parser, light Markdown clean-up, sentence
//! splitting and token counting with tiktoken.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// Converts HTML to readable plain text. Headings come out as Markdown-style `#` lines, which
/// lets HTML documents be split on their structure exactly like Markdown ones.
pub fn html_to_text(html: &str) -> String {
    if html.trim().is_empty() {
        return String::new();
    }
    // A very wide line keeps paragraphs on one line: wrapping is the SMS composer's job.
    match html2text::config::plain()
        .link_footnotes(false)
        .string_from_read(html.as_bytes(), 100_000)
    {
        Ok(text) => tidy_lines(&text),
        // html5ever accepts any input; an error here is an I/O error on a byte slice, which
        // cannot happen. Falling back to the raw text keeps ingestion going regardless.
        Err(_) => html.to_owned(),
    }
}

/// Removes Markdown markup that carries no meaning for a reader or for retrieval
/// (emphasis markers, link syntax), keeping the words and the link targets.
pub fn strip_markdown_inline(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        if let Some(close) = after.find("](")
            && let Some(end) = after[close + 2..].find(')')
        {
            let label = &after[..close];
            let url = &after[close + 2..close + 2 + end];
            out.push_str(label);
            if !url.is_empty() && url != label {
                out.push_str(" (");
                out.push_str(url);
                out.push(')');
            }
            rest = &after[close + 2 + end + 1..];
            continue;
        }
        out.push('[');
        rest = after;
    }
    out.push_str(rest);
    out.replace("**", "").replace("__", "").replace('`', "")
}

/// Collapses blank runs, and turns html2text's box-drawn tables ("L │5'10\"-6'1\"") into
/// Markdown pipe rows ("| L | 5'10\"-6'1\" |"), the one table form the rest of Parley reads:
/// a size chart in a product description is then a table like one in a policy file.
fn tidy_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line
            .chars()
            .all(|c| matches!(c, '─' | '┼' | '┬' | '┴' | '━' | ' '))
            && line.contains('─')
        {
            out.push_str("|---|\n");
            continue;
        }
        let piped;
        let line = if line.contains('│') {
            let cells: Vec<&str> = line.split('│').map(str::trim).collect();
            piped = format!("| {} |", cells.join(" | "));
            piped.as_str()
        } else {
            line
        };
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

/// Splits text into sentences at `.`, `!` or `?` followed by whitespace, keeping decimals like
/// `$19.99` and abbreviations like `e.g.` mostly intact (a split needs a following capital,
/// digit or quote).
pub fn split_sentences(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut idx = 0;
    while idx < bytes.len() {
        let byte = bytes[idx];
        if matches!(byte, b'.' | b'!' | b'?') {
            let mut next = idx + 1;
            while next < bytes.len() && matches!(bytes[next], b'.' | b'!' | b'?' | b')' | b'"') {
                next += 1;
            }
            if next < bytes.len() && bytes[next].is_ascii_whitespace() {
                let mut after = next;
                while after < bytes.len() && bytes[after].is_ascii_whitespace() {
                    after += 1;
                }
                let starts_sentence = after >= bytes.len()
                    || bytes[after].is_ascii_uppercase()
                    || bytes[after].is_ascii_digit()
                    || matches!(bytes[after], b'"' | b'(' | b'-' | b'*' | b'$');
                if starts_sentence {
                    let sentence = text[start..next].trim();
                    if !sentence.is_empty() {
                        sentences.push(sentence);
                    }
                    start = after;
                    idx = after;
                    continue;
                }
            }
        }
        idx += 1;
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        sentences.push(tail);
    }
    sentences
}

/// The tokenizer used for every token budget in Parley (cl100k_base, the encoding of the
/// OpenAI chat models most deployments use). Loaded once: building it takes ~100 ms.
pub fn tokenizer() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().expect("cl100k_base ships inside tiktoken-rs"))
}

pub fn count_tokens(text: &str) -> usize {
    tokenizer().encode_ordinary(text).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_headings_become_markdown_headings() {
        let text = html_to_text(
            "<h1>Warranty</h1><p>We cover <b>defects</b>.</p><h2>How to claim</h2><ul><li>Email us</li></ul>",
        );
        assert!(text.contains("# Warranty"), "{text}");
        assert!(text.contains("## How to claim"), "{text}");
        assert!(text.contains("defects"), "{text}");
        assert!(!text.contains("<b>"), "{text}");
    }

    #[test]
    fn html_tables_become_pipe_tables() {
        let text = html_to_text(
            "<table><tr><th>Frame size</th><th>Rider height</th></tr>\
             <tr><td>52</td><td>5'5\"-5'8\"</td></tr><tr><td>54</td><td>5'8\"-5'11\"</td></tr></table>",
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[0].contains("Frame size") && rows[0].contains("| Rider height"),
            "{text}"
        );
        assert!(rows[2].starts_with("| 54 | 5'8\"-5'11\""), "{text}");
        assert!(!text.contains('│'), "{text}");
    }

    #[test]
    fn sentences_keep_prices_together() {
        let sentences = split_sentences("Shipping is $5.99 in the US. Orders over $75 ship free! Ok?");
        assert_eq!(
            sentences,
            vec![
                "Shipping is $5.99 in the US.",
                "Orders over $75 ship free!",
                "Ok?"
            ]
        );
    }

    #[test]
    fn markdown_links_keep_label_and_url() {
        assert_eq!(
            strip_markdown_inline("See **our** [returns page](https://x.example/r)."),
            "See our returns page (https://x.example/r)."
        );
    }
}
