//! The merchant id: the key every piece of a merchant's data is filed under.

use serde::{Deserialize, Serialize};

/// A validated merchant id: 1-64 characters of lowercase ASCII letters, digits, `-` or `_`.
/// The id names files under the data directory, so anything path-like is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MerchantId(String);

/// Why a string is not a merchant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid merchant id {id:?}: {reason}")]
pub struct InvalidMerchantId {
    pub id: String,
    pub reason: &'static str,
}

impl MerchantId {
    pub fn parse(raw: &str) -> Result<Self, InvalidMerchantId> {
        let invalid = |reason| InvalidMerchantId {
            id: raw.to_owned(),
            reason,
        };
        if raw.is_empty() || raw.len() > 64 {
            return Err(invalid("must be 1 to 64 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid("use only lowercase letters, digits, '-' and '_'"));
        }
        Ok(Self(raw.to_owned()))
    }
}

string_newtype!(MerchantId, InvalidMerchantId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_lowercase_and_not_path_like() {
        for good in ["trailhead", "glow-leaf_2", "a"] {
            assert_eq!(MerchantId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Trailhead", "../etc", "a/b", "a b", &"x".repeat(65)] {
            let err = MerchantId::parse(bad).unwrap_err();
            assert_eq!(err.id, bad);
        }
        let json: Result<MerchantId, _> = serde_json::from_str("\"no/slash\"");
        assert!(json.unwrap_err().to_string().contains("invalid merchant id"));
    }
}
