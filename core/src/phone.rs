//! Phone numbers: the one place a number a customer, a provider or an order file wrote becomes
//! the E.164 string (`+17205550123`) that Parley stores, compares and sends to.

use serde::{Deserialize, Serialize};

/// The country a number written without `+` is read in (an ISO 3166 code).
pub use phonenumber::country::Id as Country;

/// A phone number in E.164 form: `+`, the country code and the national number, digits only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

/// Why a string is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{raw:?} is not a phone number: {reason}; write it in E.164 form, like +15551234567")]
pub struct InvalidPhone {
    pub raw: String,
    pub reason: &'static str,
}

impl Phone {
    /// Reads an international number: `+`, the country code, then the number, optionally
    /// grouped with spaces, dashes, dots or parentheses (`+1 (720) 555-0123`).
    pub fn parse(raw: &str) -> Result<Self, InvalidPhone> {
        Self::read(raw, None)
    }

    /// Reads a number that may be written nationally (`(720) 555-0123`), in `country` when
    /// it has no `+`. Order files and checkout forms hold numbers written this way.
    pub fn parse_in(raw: &str, country: Country) -> Result<Self, InvalidPhone> {
        Self::read(raw, Some(country))
    }

    fn read(raw: &str, country: Option<Country>) -> Result<Self, InvalidPhone> {
        let invalid = |reason| InvalidPhone {
            raw: raw.to_owned(),
            reason,
        };
        let text = raw.trim();
        // libphonenumber is lenient on purpose (it maps letters to keypad digits and skips
        // junk); an identifier must not be, so the characters are checked first.
        let body = text.strip_prefix('+').unwrap_or(text);
        if !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
        {
            return Err(invalid(
                "only digits, spaces, dashes, dots and parentheses may follow the +",
            ));
        }
        if country.is_none() && !text.starts_with('+') {
            return Err(invalid("it must start with + and the country code"));
        }
        let number = phonenumber::parse(country, text)
            .map_err(|_| invalid("its country code or length is not one any country uses"))?;
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        // E.164 allows at most 15 digits; fewer than 8 is no subscriber number anywhere.
        if !(9..=16).contains(&e164.len()) {
            return Err(invalid("E.164 numbers have 8 to 15 digits"));
        }
        Ok(Self(e164))
    }
}

string_newtype!(Phone, InvalidPhone);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers_become_e164() {
        for (raw, e164) in [
            ("+15551234567", "+15551234567"),
            ("+4930123456", "+4930123456"),
            ("+123456789012345", "+123456789012345"),
            (" +1 (720) 555-0123 ", "+17205550123"),
            ("+44 7700 900123", "+447700900123"),
        ] {
            assert_eq!(Phone::parse(raw).unwrap().as_str(), e164, "{raw}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for bad in [
            "15551234567",
            "(720) 555-0123",
            "+1555",
            "+1234567890123456",
            "+1555123456x",
            "+1720555012a",
            "+999123456789",
            "",
        ] {
            let err = Phone::parse(bad).unwrap_err();
            assert_eq!(err.raw, bad);
            assert!(err.to_string().contains("E.164"), "{err}");
        }
    }

    #[test]
    fn national_numbers_read_in_their_country() {
        for raw in [
            "(720) 555-0123",
            "720-555-0123",
            "720.555.0123",
            "+1 720 555 0123",
        ] {
            assert_eq!(
                Phone::parse_in(raw, Country::US).unwrap().as_str(),
                "+17205550123",
                "{raw}"
            );
        }
        assert_eq!(
            Phone::parse_in("030 123456", Country::DE).unwrap().as_str(),
            "+4930123456"
        );
        assert!(Phone::parse_in("555", Country::US).is_err());
    }

    #[test]
    fn serde_validates() {
        let phone: Phone = serde_json::from_str("\"+1 720 555 0123\"").unwrap();
        assert_eq!(serde_json::to_string(&phone).unwrap(), "\"+17205550123\"");
        assert!(serde_json::from_str::<Phone>("\"call me\"").is_err());
    }
}
