//! Escaping text into XML for TwiML replies (the inbox's pages are escaped by minijinja).

/// Appends `text` to `out` with `& < > " '` escaped, so it is safe in element content and
/// quoted attributes.
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry these at all, even escaped; one stray control character in
            // a generated reply would otherwise make Twilio reject the whole response.
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {}
            c => out.push(c),
        }
    }
}
