//! What a customer agreed to be texted for. The law treats the purposes differently: marketing
//! needs express written consent and quiet hours; replies to a customer's own texts and
//! messages about their orders do not — and one STOP revokes them all.

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

/// The purpose a text is sent for, and so the consent it needs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConsentPurpose {
    /// Flows and campaigns the store starts: cart reminders, offers, win-back.
    Marketing,
    /// Replies to a conversation the customer started.
    Conversational,
    /// Messages about the customer's own orders: confirmations, shipping updates.
    Transactional,
}

impl ConsentPurpose {
    /// Whether texts for this purpose are held to quiet hours and frequency caps.
    pub fn is_marketing(self) -> bool {
        self == Self::Marketing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_in_serde_and_strings() {
        for purpose in ConsentPurpose::VARIANTS {
            let text = purpose.to_string();
            assert_eq!(text.parse::<ConsentPurpose>().unwrap(), *purpose);
            assert_eq!(serde_json::to_string(purpose).unwrap(), format!("\"{text}\""));
        }
        assert_eq!(ConsentPurpose::Marketing.to_string(), "marketing");
        assert!("promo".parse::<ConsentPurpose>().is_err());
        assert!(ConsentPurpose::Marketing.is_marketing());
        assert!(!ConsentPurpose::Transactional.is_marketing());
    }
}
