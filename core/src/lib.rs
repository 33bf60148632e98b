//! Parley's shared vocabulary, the crate every other one may use and which uses none of them:
//! merchant ids, E.164 phone numbers, the injected clock, durations in settings, the retry
//! policy for external APIs, time zones, the purposes consent is given for, where a phone
//! number probably is, and the rule every send obeys (`send_policy::Policy::may_send`).

/// The conversions every validated string newtype has: `as_str`, `TryFrom<String>` through its
/// `parse` (so serde validates with `try_from = "String"`), back into `String`, `AsRef<str>`
/// and `Display`.
macro_rules! string_newtype {
    ($name:ident, $error:ty) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(value: String) -> Result<Self, $error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub mod clock;
pub mod consent;
pub mod duration;
pub mod geo;
pub mod merchant;
pub mod phone;
pub mod retry;
pub mod send_policy;
pub mod tz;

pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::ConsentPurpose;
pub use duration::deserialize_duration;
pub use merchant::{InvalidMerchantId, MerchantId};
pub use phone::{InvalidPhone, Phone};
pub use retry::RetryPolicy;
pub use send_policy::{Policy as SendPolicy, Verdict};
pub use tz::{InvalidTimeZone, TimeZoneName};
