//! Durations in settings files and environment variables: milliseconds (`1500`) or a number
//! with a unit (`"200ms"`, `"10s"`, `"15m"`), shared by every crate's settings so they all
//! read alike.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Accepts milliseconds as a number, or a string ending in `ms`, `s`, `m`, `h` or `d` (`"1.5s"`,
/// `"15m"`).
pub fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }
    let text = match Raw::deserialize(deserializer)? {
        Raw::Millis(ms) => return Ok(Duration::from_millis(ms)),
        Raw::Text(text) => text,
    };
    let text = text.trim();
    let parsed = if let Some(ms) = text.strip_suffix("ms") {
        ms.trim().parse::<u64>().ok().map(Duration::from_millis)
    } else if let Some((number, unit_secs)) = text
        .strip_suffix('s')
        .map(|n| (n, 1.0))
        .or_else(|| text.strip_suffix('m').map(|n| (n, 60.0)))
        .or_else(|| text.strip_suffix('h').map(|n| (n, 3600.0)))
        .or_else(|| text.strip_suffix('d').map(|n| (n, 86_400.0)))
    {
        number
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| Duration::try_from_secs_f64(n * unit_secs).ok())
    } else {
        text.parse::<u64>().ok().map(Duration::from_millis)
    };
    parsed.ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration; write milliseconds (500) or a unit (\"500ms\", \"10s\", \"15m\", \"1h\", \"7d\")"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_milliseconds_or_with_a_unit() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "deserialize_duration")]
            value: Duration,
        }
        let parse = |json: &str| serde_json::from_str::<Holder>(json).map(|holder| holder.value);
        assert_eq!(parse(r#"{"value": 1500}"#).unwrap(), Duration::from_millis(1500));
        assert_eq!(
            parse(r#"{"value": "200ms"}"#).unwrap(),
            Duration::from_millis(200)
        );
        assert_eq!(
            parse(r#"{"value": "1.5s"}"#).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse(r#"{"value": "250"}"#).unwrap(), Duration::from_millis(250));
        assert_eq!(parse(r#"{"value": "15m"}"#).unwrap(), Duration::from_secs(900));
        assert_eq!(parse(r#"{"value": "2h"}"#).unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse(r#"{"value": "3d"}"#).unwrap(),
            Duration::from_secs(3 * 86_400)
        );
        assert!(parse(r#"{"value": "soon"}"#).is_err());
        assert!(parse(r#"{"value": "5 days"}"#).is_err());
    }
}
