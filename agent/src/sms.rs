//! SMS length rules: GSM-7 vs UCS-2 encoding, segment counting, the substitutions that keep
//! a reply in GSM-7 (carriers bill per segment; one emoji turns 160 chars into 70), and
//! trimming a reply to the segment limit.

/// GSM 03.38 basic character set (each counts 1).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (each counts 2: escape + character).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub encoding: Encoding,
    /// Length in encoding units: GSM-7 septets, or UTF-16 code units for UCS-2.
    pub units: usize,
    pub segments: usize,
}

/// Counts segments: GSM-7 fits 160 units in one segment and 153 per part when split; UCS-2
/// fits 70 and 67. Characters outside the BMP take two UTF-16 units.
pub fn segments(text: &str) -> SegmentInfo {
    let gsm_units: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (encoding, units, single, multi) = match gsm_units {
        Some(units) => (Encoding::Gsm7, units, 160, 153),
        None => (Encoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = match units {
        0 => 0,
        n if n <= single => 1,
        n => n.div_ceil(multi),
    };
    SegmentInfo {
        encoding,
        units,
        segments,
    }
}

/// Replaces typographic characters that have plain GSM-7 equivalents (smart quotes, dashes,
/// ellipsis, non-breaking spaces), so a reply is not billed as UCS-2 for punctuation alone.
pub fn to_gsm_friendly(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' => out.push('"'),
            '\u{2013}' | '\u{2014}' | '\u{2212}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '\u{00A0}' | '\u{2009}' | '\u{202F}' => out.push(' '),
            '\u{2022}' => out.push('-'),
            _ => out.push(c),
        }
    }
    out
}

/// Trims a reply to the segment limit at a sentence boundary.
pub fn fit_segments(text: &str, max_segments: usize) -> String {
    if segments(text).segments <= max_segments {
        return text.to_owned();
    }
    let mut kept = String::new();
    for sentence in parley_knowledge::text::split_sentences(text) {
        let candidate = if kept.is_empty() {
            sentence.trim().to_owned()
        } else {
            format!("{kept} {}", sentence.trim())
        };
        if segments(&candidate).segments > max_segments {
            break;
        }
        kept = candidate;
    }
    if kept.is_empty() { text.to_owned() } else { kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, encoding: Encoding, units: usize, n_segments: usize) {
        let info = segments(text);
        assert_eq!(
            info,
            SegmentInfo {
                encoding,
                units,
                segments: n_segments
            },
            "{text:?}"
        );
    }

    #[test]
    fn gsm7_boundaries() {
        check("", Encoding::Gsm7, 0, 0);
        check(&"a".repeat(160), Encoding::Gsm7, 160, 1);
        check(&"a".repeat(161), Encoding::Gsm7, 161, 2);
        check(&"a".repeat(306), Encoding::Gsm7, 306, 2);
        check(&"a".repeat(307), Encoding::Gsm7, 307, 3);
    }

    #[test]
    fn extension_characters_count_double() {
        check("€5 {ok}", Encoding::Gsm7, 10, 1);
        check(&"€".repeat(80), Encoding::Gsm7, 160, 1);
        check(&"€".repeat(81), Encoding::Gsm7, 162, 2);
    }

    #[test]
    fn one_non_gsm_character_switches_the_whole_message_to_ucs2() {
        check(&format!("{}’", "a".repeat(69)), Encoding::Ucs2, 70, 1);
        check(&format!("{}’", "a".repeat(70)), Encoding::Ucs2, 71, 2);
        // An emoji outside the BMP is two UTF-16 units.
        check("ok 👍", Encoding::Ucs2, 5, 1);
        check(&"👍".repeat(34), Encoding::Ucs2, 68, 1);
        check(&"a".repeat(135), Encoding::Gsm7, 135, 1);
    }

    #[test]
    fn smart_punctuation_is_replaced_to_stay_gsm7() {
        let text = to_gsm_friendly("We’re open – “always”… ok");
        assert_eq!(text, "We're open - \"always\"... ok");
        assert_eq!(segments(&text).encoding, Encoding::Gsm7);
    }

    #[test]
    fn a_long_reply_is_cut_at_a_sentence_within_the_limit() {
        let first = format!("{}.", "Returns are free. ".repeat(8).trim().trim_end_matches('.'));
        let second = format!("Shipping takes {} days.", "two ".repeat(30).trim());
        let text = format!("{first} {second}");
        assert_eq!(segments(&text).segments, 2);
        // Within the limit: unchanged.
        assert_eq!(fit_segments(&text, 2), text);
        // Over it: whole sentences only, never a cut word.
        let fitted = fit_segments(&text, 1);
        assert_eq!(fitted, first);
        assert_eq!(segments(&fitted).segments, 1);
        // One sentence longer than the limit has no boundary to cut at: it is kept whole.
        let long = "c".repeat(400);
        assert_eq!(fit_segments(&long, 1), long);
    }
}
