//! Fuzz entry points: each takes arbitrary bytes and feeds them to one parser or decoder the
//! way untrusted input reaches it in production. `fuzz/` (cargo fuzz, libFuzzer) drives them
//! for `make fuzz`; `make test` replays the kept corpus (`fuzz/corpus/<target>/`) through the
//! same functions, so every input that ever mattered stays a regression test. None may panic.

use std::path::Path;

use parley_agent::{compliance, sms};
use parley_knowledge::MerchantData;

use crate::twilio;

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and cargo-fuzz binary carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("twilio_webhook", twilio_webhook),
    ("compliance", compliance_detection),
    ("segments", segment_counting),
    ("merchant_dir", merchant_dir),
    ("upload", upload),
    ("snapshot", snapshot),
    ("sentences", sentences),
];

/// A webhook body: the form parser, then the signature check over what it parsed.
pub fn twilio_webhook(data: &[u8]) {
    let Ok(params) = twilio::parse_form(data) else {
        return;
    };
    let url = "https://sms.example.com/webhooks/twilio/sms?x=1";
    let good = twilio::signature("auth-token", url, &params);
    assert!(twilio::verify_signature("auth-token", url, &params, &good));
    // Arbitrary text as the signature header: checked without panicking.
    let forged = String::from_utf8_lossy(data);
    let _ = twilio::verify_signature("auth-token", url, &params, &forged);
    let _ = twilio::form_value(&params, "Body");
}

/// Compliance detection on any text, opted out or not.
pub fn compliance_detection(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for opted_out in [false, true] {
        let _ = compliance::detect(&text, opted_out);
    }
}

/// Segment counting, before and after GSM-friendly punctuation.
pub fn segment_counting(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let info = sms::segments(&text);
    assert!(text.is_empty() || info.segments >= 1);
    let friendly = sms::to_gsm_friendly(&text);
    let _ = sms::segments(&friendly);
}

const CONFIG: &str = "id = \"fuzz\"\nname = \"Fuzz\"\ntimezone = \"UTC\"\nsupport_email = \"a@b.example\"\n\
                      support_hours = \"9-5\"\n";

/// The merchant directory loader: the first byte picks which file the rest becomes (the
/// config itself, products as JSON or CSV, orders, or a Markdown/HTML/text policy), beside a
/// valid config and a valid policy.
pub fn merchant_dir(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).ok();
        }
        std::fs::write(path, bytes).ok();
    };
    write("merchant.toml", CONFIG.as_bytes());
    write(
        "policies/base.md",
        b"# Returns\nReturns are free within 30 days.\n",
    );
    match selector % 7 {
        0 => write("merchant.toml", body),
        1 => write("products.json", body),
        2 => write("products.csv", body),
        3 => write("orders.json", body),
        4 => write("policies/fuzz.md", body),
        5 => write("policies/fuzz.html", body),
        _ => write("policies/fuzz.txt", body),
    }
    let _ = MerchantData::load(dir.path());
}

/// A knowledge upload: the (gzipped) tar unpacker, then the loader over what it unpacked.
pub fn upload(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    if let Ok(root) = crate::api::unpack_archive(data, dir.path(), 1 << 20) {
        assert!(root.starts_with(dir.path()), "unpacked outside its directory");
        let _ = MerchantData::load(&root);
    }
}

/// The embedded index's snapshot decoder.
pub fn snapshot(data: &[u8]) {
    let _ = parley_knowledge::embedded::decode_snapshot(data);
}

/// The per-merchant sentence-vector file's decoder; what it accepts must be safe to read.
pub fn sentences(data: &[u8]) {
    let Ok(store) = parley_knowledge::SentenceVectors::decode(data) else {
        return;
    };
    // Every stored sentence reads back as one vector of the store's dimension; a file that
    // decoded but could not do this would panic on the hot path instead of here.
    let mut copy = parley_knowledge::SentenceVectors::new(store.model_id(), store.dimension());
    for (text, vector) in store.iter() {
        assert_eq!(vector.len(), store.dimension());
        assert_eq!(store.get(text), Some(vector));
        copy.insert(text.to_owned(), vector).unwrap();
    }
    assert_eq!(copy.len(), store.len());
}

/// Runs every file of `corpus/<target>/` through its target (the replay `make test` does).
/// Returns how many inputs ran.
pub fn replay(corpus: &Path) -> usize {
    let mut n = 0;
    for (name, target) in TARGETS {
        let Ok(entries) = std::fs::read_dir(corpus.join(name)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                target(&bytes);
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_corpus_replays_without_a_panic() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let n = replay(&corpus);
        assert!(n >= 20, "only {n} corpus inputs under {}", corpus.display());
    }

    #[test]
    fn a_sentence_file_that_decodes_is_read_back_whole() {
        let mut store = parley_knowledge::SentenceVectors::new("m", 2);
        store.insert("a".into(), &[1.0, 0.0]).unwrap();
        store.insert("b".into(), &[0.0, 1.0]).unwrap();
        let bytes = store.encode();
        assert_eq!(
            parley_knowledge::SentenceVectors::decode(&bytes).unwrap().len(),
            2
        );
        sentences(&bytes);
        // The kept seed for the target decodes too, so the fuzzer starts from a valid file.
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sentences");
        let valid = std::fs::read_dir(seeds)
            .unwrap()
            .flatten()
            .filter(|entry| {
                let bytes = std::fs::read(entry.path()).unwrap();
                parley_knowledge::SentenceVectors::decode(&bytes).is_ok_and(|store| store.len() == 2)
            })
            .count();
        assert!(valid >= 1, "no decodable seed in fuzz/corpus/sentences");
    }
}
