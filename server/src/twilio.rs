//! Twilio wire formats: webhook signatures, form parsing, TwiML, and the Messages REST client.

use std::borrow::Cow;
use std::error::Error as _;
use std::time::Duration;

use backon::Retryable as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use parley_core::RetryPolicy;
use percent_encoding::percent_decode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha1::Sha1;
use tracing::{debug, warn};

/// Twilio refuses longer bodies (error 21617), so a send fails here, before using a request.
const MAX_BODY_CHARS: usize = 1600;

// ---------------------------------------------------------------------------------------------
// Webhook forms
// ---------------------------------------------------------------------------------------------

/// Why a webhook body is not a usable form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// `field` is the field's name, with undecodable bytes replaced, so that even a bad name
    /// can be reported.
    #[error("form field {field:?} is not valid UTF-8 once decoded")]
    InvalidUtf8 { field: String },
}

/// Parses an `application/x-www-form-urlencoded` body, keeping every field in order, duplicates
/// included, because the webhook signature covers exactly what Twilio sent.
///
/// Unlike lenient parsers, it refuses bytes that do not decode to UTF-8 rather than replacing
/// them: a silently altered `Body` would both change the customer's words and break the
/// signature check in a way that is hard to diagnose. A malformed escape such as `%zz` is kept
/// literally, as browsers and Twilio's own libraries do.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    body.split(|&byte| byte == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (raw_name, raw_value) = match segment.iter().position(|&byte| byte == b'=') {
                Some(idx) => (&segment[..idx], &segment[idx + 1..]),
                None => (segment, &[][..]),
            };
            let name = decode_component(raw_name).map_err(|bytes| FormError::InvalidUtf8 {
                field: String::from_utf8_lossy(&bytes).into_owned(),
            })?;
            let value =
                decode_component(raw_value).map_err(|_| FormError::InvalidUtf8 { field: name.clone() })?;
            Ok((name, value))
        })
        .collect()
}

/// Decodes one name or value; on invalid UTF-8, hands back the decoded bytes for the report.
fn decode_component(raw: &[u8]) -> Result<String, Vec<u8>> {
    // '+' must become a space before percent-decoding, so that an encoded `%2B` stays a '+'.
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    let decoded: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(decoded).map_err(|err| err.into_bytes())
}

/// The first value of the field `name`, if the form has one.
pub fn form_value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.as_str())
}

// ---------------------------------------------------------------------------------------------
// Webhook signatures
// ---------------------------------------------------------------------------------------------

/// The `X-Twilio-Signature` Twilio computes for a form POST to `url`: base64 of
/// HMAC-SHA1(auth token, url followed by every name and value, sorted by name then value).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(signature_mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header_value` is Twilio's signature for this request.
///
/// Twilio signs the URL as it dialled it, and whether that included the default port depends
/// on the caller's configuration and on proxies in between; Twilio's own validators therefore
/// accept the URL with the default port either written out or left off, and so does this.
/// The comparison is constant-time, so that timing does not reveal how much of a forged
/// signature was right.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header_value: &str,
) -> bool {
    let Ok(claimed) = BASE64.decode(header_value) else {
        return false;
    };
    std::iter::once(Cow::Borrowed(url))
        .chain(toggle_default_port(url).map(Cow::Owned))
        .any(|candidate| {
            signature_mac(auth_token, &candidate, params)
                .verify_slice(&claimed)
                .is_ok()
        })
}

fn signature_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    // Tuples order by name, then value, which is Twilio's order for repeated names; byte order
    // of UTF-8 is code-point order, as in Twilio's libraries.
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_unstable();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// `url` with its scheme's default port added when it has no port, or removed when it names
/// exactly the default one; `None` for other ports and other schemes.
fn toggle_default_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return None;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host_start = authority.rfind('@').map_or(0, |idx| idx + 1);
    // A colon inside an IPv6 literal (`[::1]`) is part of the host, not a port separator.
    let port_colon = authority[host_start..]
        .rfind(':')
        .map(|idx| host_start + idx)
        .filter(|&idx| !authority[idx..].contains(']'));
    match port_colon {
        None => Some(format!("{scheme}://{authority}:{default_port}{tail}")),
        Some(idx) if &authority[idx + 1..] == default_port => {
            Some(format!("{scheme}://{}{tail}", &authority[..idx]))
        }
        Some(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// TwiML
// ---------------------------------------------------------------------------------------------

const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// A TwiML response sending each of `messages` as an SMS; with none, `<Response/>`, which
/// tells Twilio to send nothing.
pub fn twiml(messages: &[&str]) -> String {
    if messages.is_empty() {
        return format!("{XML_DECLARATION}<Response/>");
    }
    let mut xml = format!("{XML_DECLARATION}<Response>");
    for message in messages {
        xml.push_str("<Message>");
        crate::markup::push_escaped(&mut xml, message);
        xml.push_str("</Message>");
    }
    xml.push_str("</Response>");
    xml
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The `[twilio]` settings section. Durations deserialize from milliseconds (`10000`) or a
/// string with a unit (`"10s"`, `"500ms"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account, `AC…`: the user name for the REST API and part of its paths.
    pub account_sid: String,
    /// Signs webhooks and authenticates REST calls.
    pub auth_token: SecretString,
    /// The externally visible base URL Twilio calls, e.g. `https://sms.example.com`. Behind a
    /// proxy the request's own URL is not the one Twilio signed, so it is rebuilt from this.
    pub public_url: String,
    /// The REST API root; changed only to point at a fake in tests.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// When set, messages are sent through this Messaging Service (`MG…`), which picks the
    /// sending number, instead of from the number the customer wrote to.
    pub messaging_service_sid: Option<String>,
    #[serde(default)]
    pub reply: ReplyMode,
    #[serde(
        default = "default_timeout",
        deserialize_with = "parley_core::deserialize_duration"
    )]
    pub timeout: Duration,
    /// Further attempts after the first, on timeouts, connection errors, 429 and 5xx.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The wait before the first retry; it doubles for each one after.
    #[serde(
        default = "default_retry_backoff",
        deserialize_with = "parley_core::deserialize_duration"
    )]
    pub retry_backoff: Duration,
}

/// How replies reach the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyMode {
    /// Acknowledge the webhook with an empty `<Response/>` and send through the REST API:
    /// slow drafts do not hit Twilio's 15-second webhook timeout, sends are retried, and
    /// delivery is reported through status callbacks.
    #[default]
    Rest,
    /// Answer inside the webhook response: no outbound credentials used, but no retries and
    /// no delivery reports.
    Twiml,
}

fn default_api_base() -> String {
    "https://api.twilio.com".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_retries() -> u32 {
    3
}

fn default_retry_backoff() -> Duration {
    Duration::from_millis(500)
}

impl TwilioConfig {
    /// Checks every field, so that a bad setting fails at start-up, naming the key, rather
    /// than on the first customer message.
    pub fn validate(&self) -> Result<(), String> {
        if !self.account_sid.starts_with("AC") {
            return Err("twilio.account_sid must start with AC".into());
        }
        if self.auth_token.expose_secret().trim().is_empty() {
            return Err("twilio.auth_token must not be empty".into());
        }
        check_base_url("public_url", &self.public_url)?;
        check_base_url("api_base", &self.api_base)?;
        if let Some(sid) = &self.messaging_service_sid
            && !sid.starts_with("MG")
        {
            return Err("twilio.messaging_service_sid must start with MG".into());
        }
        if self.timeout.is_zero() {
            return Err("twilio.timeout must be greater than zero".into());
        }
        if self.max_retries > 10 {
            return Err(format!("twilio.max_retries is {}; at most 10", self.max_retries));
        }
        Ok(())
    }

    /// The full URL Twilio calls for `path_and_query` (e.g. `/webhooks/twilio/sms`): the URL
    /// the webhook signature covers. A trailing slash on `public_url` is allowed.
    pub fn webhook_url(&self, path_and_query: &str) -> String {
        format!(
            "{}/{}",
            self.public_url.trim_end_matches('/'),
            path_and_query.trim_start_matches('/')
        )
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base.trim_end_matches('/'),
            self.account_sid
        )
    }
}

/// `value` must be an http(s) URL with a host, and nothing after its path, because paths are
/// appended to it.
fn check_base_url(key: &str, value: &str) -> Result<(), String> {
    let url =
        reqwest::Url::parse(value).map_err(|err| format!("twilio.{key} {value:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "twilio.{key} must use http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err(format!("twilio.{key} {value:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "twilio.{key} {value:?} must not have a query or fragment"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Messages REST client
// ---------------------------------------------------------------------------------------------

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Caught before any request: an empty body or one over [`MAX_BODY_CHARS`].
    #[error("message not sent: {0}")]
    InvalidMessage(String),
    /// Twilio refused the request; resending it cannot help. `message` is Twilio's and may
    /// quote the recipient's number, so it does not belong in logs above debug level.
    #[error("Twilio rejected the message (HTTP {status}, code {}): {message}", code.map_or("none".to_owned(), |code| code.to_string()))]
    Rejected {
        status: u16,
        code: Option<u32>,
        message: String,
    },
    /// Connection failures, 429 or 5xx on every attempt; the last problem is kept. No attempt
    /// can have created the message, so sending it again later is safe.
    #[error("Twilio unavailable: {0}")]
    Unavailable(String),
    /// Every attempt failed and at least one timed out after the request went: Twilio may
    /// have queued the message, so sending it again could text the customer twice.
    #[error("Twilio did not answer: {0}")]
    Unanswered(String),
    /// Twilio accepted the request but its answer could not be read. The message was most
    /// likely queued, so this is not worth retrying: it could text the customer twice.
    #[error("Twilio answered HTTP {status} with a body Parley cannot read: {problem}")]
    InvalidResponse { status: u16, problem: String },
    /// The HTTP client could not be set up or could not build the request.
    #[error("Twilio client misconfigured: {0}")]
    Config(String),
}

impl SendError {
    /// True when sending the same message again later cannot succeed or should not happen.
    pub fn is_permanent(&self) -> bool {
        match self {
            SendError::InvalidMessage(_)
            | SendError::Rejected { .. }
            | SendError::InvalidResponse { .. }
            | SendError::Unanswered(_)
            | SendError::Config(_) => true,
            SendError::Unavailable(_) => false,
        }
    }
}

/// One SMS to send. Deliberately without `Debug`: it holds a phone number and a message body,
/// which must not end up in logs by accident.
#[derive(Clone, Copy)]
pub struct OutboundSms<'a> {
    pub to: &'a str,
    /// Ignored when a Messaging Service is configured: the service picks the sender.
    pub from: &'a str,
    pub body: &'a str,
    /// Where Twilio reports delivery (`MessageSid`, `MessageStatus`, `ErrorCode`).
    pub status_callback: Option<&'a str>,
}

/// Twilio's answer to an accepted send, from the Message resource it returns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    /// `SM…`, the id delivery callbacks refer to.
    pub sid: String,
    /// Usually `queued` or `accepted`.
    pub status: String,
}

/// The Error resource Twilio answers failed requests with.
#[derive(Deserialize)]
struct ApiErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// Sends SMS through Twilio's Messages API. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    config: TwilioConfig,
    messages_url: String,
}

/// A transient failure after the request went out.
const TIMED_OUT: &str = "timed out";

/// How one attempt failed: worth another try, or final.
enum Failure {
    Transient(String),
    Permanent(SendError),
}

impl TwilioClient {
    pub fn new(config: TwilioConfig) -> Result<Self, SendError> {
        config.validate().map_err(SendError::Config)?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            // Twilio does not redirect API calls; following one would resend the credentials
            // and turn the POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| {
                SendError::Config(format!("cannot build the HTTP client: {}", error_chain(&err)))
            })?;
        let messages_url = config.messages_url();
        Ok(Self {
            http,
            config,
            messages_url,
        })
    }

    /// Sends `message`, retrying timeouts, connection errors, 429 and 5xx with exponential
    /// backoff. A timed-out request may have reached Twilio, so a retry can, rarely, deliver
    /// a message twice; that is judged better than a customer left without an answer.
    pub async fn send(&self, message: &OutboundSms<'_>) -> Result<SentMessage, SendError> {
        let n_body_chars = message.body.chars().count();
        if n_body_chars == 0 {
            return Err(SendError::InvalidMessage("the body is empty".into()));
        }
        if n_body_chars > MAX_BODY_CHARS {
            return Err(SendError::InvalidMessage(format!(
                "the body is {n_body_chars} characters; Twilio accepts at most {MAX_BODY_CHARS}"
            )));
        }
        let form = self.form(message);
        let n_attempts = self.config.max_retries + 1;
        let mut attempt = 1;
        let mut timed_out = false;
        // Logs carry the attempt and the problem only: never the number or the body.
        let result = (|| self.attempt(&form))
            .retry(RetryPolicy::new(self.config.retry_backoff, self.config.max_retries).backoff())
            .sleep(tokio::time::sleep)
            .when(|failure| matches!(failure, Failure::Transient(_)))
            .notify(|failure, backoff| {
                if let Failure::Transient(problem) = failure {
                    timed_out |= problem == TIMED_OUT;
                    warn!(
                        attempt,
                        %problem,
                        backoff_ms = backoff.as_millis() as u64,
                        "Twilio send failed; retrying"
                    );
                }
                attempt += 1;
            })
            .await;
        match result {
            Ok(sent) => {
                debug!(sid = %sent.sid, status = %sent.status, "Twilio accepted the message");
                Ok(sent)
            }
            Err(Failure::Permanent(error)) => Err(error),
            Err(Failure::Transient(problem)) => {
                warn!(n_attempts, %problem, "Twilio send failed; no retries left");
                let problem = format!("{n_attempts} attempts failed, the last: {problem}");
                if timed_out || problem.ends_with(TIMED_OUT) {
                    Err(SendError::Unanswered(problem))
                } else {
                    Err(SendError::Unavailable(problem))
                }
            }
        }
    }

    fn form<'a>(&'a self, message: &OutboundSms<'a>) -> Vec<(&'static str, &'a str)> {
        let mut form = vec![("To", message.to)];
        match &self.config.messaging_service_sid {
            Some(sid) => form.push(("MessagingServiceSid", sid.as_str())),
            None => form.push(("From", message.from)),
        }
        form.push(("Body", message.body));
        if let Some(url) = message.status_callback {
            form.push(("StatusCallback", url));
        }
        form
    }

    async fn attempt(&self, form: &[(&str, &str)]) -> Result<SentMessage, Failure> {
        let sent = self
            .http
            .post(&self.messages_url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose_secret()),
            )
            .form(form)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) if err.is_builder() => {
                return Err(Failure::Permanent(SendError::Config(error_chain(&err))));
            }
            // Connecting timed out: nothing was sent. Otherwise the request may have arrived.
            Err(err) if err.is_timeout() && !err.is_connect() => {
                return Err(Failure::Transient(TIMED_OUT.into()));
            }
            // Refused or reset connections, DNS failures: the network or Twilio's edge.
            Err(err) => return Err(Failure::Transient(error_chain(&err))),
        };
        let status = response.status();
        if status.is_success() {
            return response.json::<SentMessage>().await.map_err(|err| {
                Failure::Permanent(SendError::InvalidResponse {
                    status: status.as_u16(),
                    problem: error_chain(&err),
                })
            });
        }
        // A proxy in between may answer with HTML, and a cut-off body reads as empty: either
        // way the status code still decides what happens next.
        let text = response.text().await.unwrap_or_default();
        let error: Option<ApiErrorBody> = serde_json::from_str(&text).ok();
        let code = error.as_ref().and_then(|error| error.code);
        if status.as_u16() == 429 || status.is_server_error() {
            // Twilio's message is left out: it goes to logs and might quote the request.
            let code = code.map_or(String::new(), |code| format!(" (Twilio error {code})"));
            return Err(Failure::Transient(format!("HTTP {}{code}", status.as_u16())));
        }
        let message = error
            .and_then(|error| error.message)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no error message").to_owned());
        Err(Failure::Permanent(SendError::Rejected {
            status: status.as_u16(),
            code,
            message,
        }))
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request") hides
/// whether the connection was refused, reset or never resolved.
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const URL_443: &str = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    const SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const SIG_443: &str = "kvajT1Ptam85bY51eRf/AJRuM3w=";

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    fn call_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn signature_matches_twilio_vectors() {
        assert_eq!(signature(TOKEN, URL, &call_params()), SIG);
        assert_eq!(signature(TOKEN, URL_443, &call_params()), SIG_443);
        let repeated = params(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(signature(TOKEN, URL, &repeated), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn verify_accepts_url_with_or_without_default_port() {
        assert!(verify_signature(TOKEN, URL, &call_params(), SIG));
        assert!(verify_signature(TOKEN, URL_443, &call_params(), SIG_443));
        assert!(verify_signature(TOKEN, URL_443, &call_params(), SIG));
        assert!(verify_signature(TOKEN, URL, &call_params(), SIG_443));
    }

    #[test]
    fn verify_rejects_tampering() {
        assert!(!verify_signature("54321", URL, &call_params(), SIG));

        let mut changed = call_params();
        changed[2].1 = "9999".into();
        assert!(!verify_signature(TOKEN, URL, &changed, SIG));

        let mut added = call_params();
        added.push(("Body".into(), "hi".into()));
        assert!(!verify_signature(TOKEN, URL, &added, SIG));

        assert!(!verify_signature(
            TOKEN,
            "https://mycompany.com/other.php?foo=1&bar=2",
            &call_params(),
            SIG
        ));
        for claimed in ["", "garbage", "not base64!", "AAAA", &SIG[..SIG.len() - 4]] {
            assert!(
                !verify_signature(TOKEN, URL, &call_params(), claimed),
                "{claimed:?}"
            );
        }
    }

    #[test]
    fn toggles_only_the_default_port() {
        let cases = [
            ("https://a.com/x", Some("https://a.com:443/x")),
            ("https://a.com:443/x", Some("https://a.com/x")),
            ("http://a.com?q=1", Some("http://a.com:80?q=1")),
            ("http://a.com:80", Some("http://a.com")),
            ("https://user:pw@a.com/x", Some("https://user:pw@a.com:443/x")),
            ("https://[::1]/x", Some("https://[::1]:443/x")),
            ("https://[::1]:443/x", Some("https://[::1]/x")),
            ("https://a.com:8443/x", None),
            ("http://a.com:443/x", None),
            ("ftp://a.com/x", None),
        ];
        for (url, expected) in cases {
            assert_eq!(toggle_default_port(url).as_deref(), expected, "{url}");
        }
    }

    #[test]
    fn parses_plus_and_percent_escapes() {
        let form =
            parse_form(b"Body=Where+is+my+order%3F+%F0%9F%93%A6&From=%2B14155550100&Note=a%2Bb%zz").unwrap();
        assert_eq!(
            form,
            params(&[
                ("Body", "Where is my order? 📦"),
                ("From", "+14155550100"),
                ("Note", "a+b%zz"),
            ])
        );
    }

    #[test]
    fn keeps_order_duplicates_and_bare_names() {
        let form = parse_form(b"MediaUrl=b&&MediaUrl=a&Flag&Empty=&=x").unwrap();
        assert_eq!(
            form,
            params(&[
                ("MediaUrl", "b"),
                ("MediaUrl", "a"),
                ("Flag", ""),
                ("Empty", ""),
                ("", "x"),
            ])
        );
        assert_eq!(form_value(&form, "MediaUrl"), Some("b"));
        assert_eq!(form_value(&form, "Missing"), None);
        assert!(parse_form(b"").unwrap().is_empty());
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        let err = parse_form(b"From=%2B1&Body=%FF").unwrap_err();
        assert_eq!(err, FormError::InvalidUtf8 { field: "Body".into() });
        assert!(err.to_string().contains("\"Body\""), "{err}");
        assert!(matches!(
            parse_form(b"B%FFdy=x"),
            Err(FormError::InvalidUtf8 { .. })
        ));
    }

    #[test]
    fn twiml_escapes_and_empty_response() {
        assert_eq!(twiml(&[]), r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#);
        assert_eq!(
            twiml(&["Fish & chips <b>\"hot\"</b> isn't\u{7} ok", "Bye"]),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
                "<Message>Fish &amp; chips &lt;b&gt;&quot;hot&quot;&lt;/b&gt; isn&apos;t ok</Message>",
                "<Message>Bye</Message></Response>"
            )
        );
    }

    #[test]
    fn config_defaults_and_overrides() {
        let config: TwilioConfig = serde_json::from_value(json!({
            "account_sid": "AC123",
            "auth_token": "secret",
            "public_url": "https://sms.example.com/",
        }))
        .unwrap();
        assert_eq!(config.api_base, "https://api.twilio.com");
        assert_eq!(config.reply, ReplyMode::Rest);
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.retry_backoff, Duration::from_millis(500));
        assert_eq!(config.messaging_service_sid, None);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.webhook_url("/webhooks/twilio/sms"),
            "https://sms.example.com/webhooks/twilio/sms"
        );
        assert!(!format!("{config:?}").contains("secret"));

        let config: TwilioConfig = serde_json::from_value(json!({
            "account_sid": "AC123",
            "auth_token": "secret",
            "public_url": "https://sms.example.com",
            "reply": "twiml",
            "timeout": "2s",
            "retry_backoff": 50,
            "messaging_service_sid": "MG1",
        }))
        .unwrap();
        assert_eq!(config.reply, ReplyMode::Twiml);
        assert_eq!(config.timeout, Duration::from_secs(2));
        assert_eq!(config.retry_backoff, Duration::from_millis(50));
        assert_eq!(
            config.webhook_url("webhooks/twilio/sms?x=1"),
            "https://sms.example.com/webhooks/twilio/sms?x=1"
        );

        let unknown = serde_json::from_value::<TwilioConfig>(json!({
            "account_sid": "AC123", "auth_token": "secret", "public_url": "https://a.com", "from": "+1",
        }));
        assert!(unknown.is_err());
        let missing = serde_json::from_value::<TwilioConfig>(json!({"account_sid": "AC123"}));
        assert!(missing.is_err());
    }

    #[test]
    fn validate_names_the_bad_key() {
        fn check(spoil: impl FnOnce(&mut TwilioConfig), expected: &str) {
            let mut config = test_config("https://api.twilio.com");
            spoil(&mut config);
            let err = config.validate().unwrap_err();
            assert!(err.starts_with(expected), "{err}");
        }
        check(
            |c| c.account_sid = "XX123".into(),
            "twilio.account_sid must start with AC",
        );
        check(|c| c.auth_token = " ".into(), "twilio.auth_token");
        check(|c| c.public_url = "sms.example.com".into(), "twilio.public_url");
        check(
            |c| c.public_url = "https://a.com/?x=1".into(),
            "twilio.public_url",
        );
        check(|c| c.api_base = "ftp://a.com".into(), "twilio.api_base");
        check(
            |c| c.messaging_service_sid = Some("PN1".into()),
            "twilio.messaging_service_sid",
        );
        check(|c| c.timeout = Duration::ZERO, "twilio.timeout");
        check(|c| c.max_retries = 11, "twilio.max_retries");
    }

    // The fake Messages API below checks the wire format Twilio expects.

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const AUTH: &str = "s3cr3t";

    fn test_config(api_base: &str) -> TwilioConfig {
        TwilioConfig {
            account_sid: SID.into(),
            auth_token: AUTH.into(),
            public_url: "https://sms.example.com".into(),
            api_base: api_base.into(),
            messaging_service_sid: None,
            reply: ReplyMode::Rest,
            timeout: Duration::from_secs(5),
            max_retries: 2,
            retry_backoff: Duration::from_millis(1),
        }
    }

    fn client(server: &MockServer) -> TwilioClient {
        TwilioClient::new(test_config(&server.uri())).unwrap()
    }

    const SMS: OutboundSms<'static> = OutboundSms {
        to: "+14155550100",
        from: "+14155550199",
        body: "Your order shipped & arrives Friday 📦",
        status_callback: Some("https://sms.example.com/webhooks/twilio/status?m=1"),
    };

    fn messages_path() -> String {
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    }

    fn queued() -> ResponseTemplate {
        ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SM0123456789abcdef0123456789abcdef",
            "status": "queued",
            "account_sid": SID,
            "body": SMS.body,
            "num_segments": "1",
        }))
    }

    async fn received_forms(server: &MockServer) -> Vec<Vec<(String, String)>> {
        let requests = server.received_requests().await.unwrap();
        requests
            .iter()
            .map(|request| parse_form(&request.body).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn send_speaks_the_messages_api() {
        let server = MockServer::start().await;
        let basic = format!("Basic {}", BASE64.encode(format!("{SID}:{AUTH}")));
        Mock::given(method("POST"))
            .and(path(messages_path()))
            .and(header("authorization", basic.as_str()))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(queued())
            .expect(1)
            .mount(&server)
            .await;

        let sent = client(&server).send(&SMS).await.unwrap();
        assert_eq!(
            sent,
            SentMessage {
                sid: "SM0123456789abcdef0123456789abcdef".into(),
                status: "queued".into(),
            }
        );
        let forms = received_forms(&server).await;
        assert_eq!(
            forms,
            vec![params(&[
                ("To", SMS.to),
                ("From", SMS.from),
                ("Body", SMS.body),
                ("StatusCallback", SMS.status_callback.unwrap()),
            ])]
        );
    }

    #[tokio::test]
    async fn send_uses_the_messaging_service_instead_of_from() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(messages_path()))
            .respond_with(queued())
            .expect(1)
            .mount(&server)
            .await;
        let mut config = test_config(&server.uri());
        config.messaging_service_sid = Some("MG0123456789abcdef0123456789abcdef".into());
        let message = OutboundSms {
            status_callback: None,
            ..SMS
        };

        TwilioClient::new(config).unwrap().send(&message).await.unwrap();
        let forms = received_forms(&server).await;
        assert_eq!(
            forms,
            vec![params(&[
                ("To", SMS.to),
                ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
                ("Body", SMS.body),
            ])]
        );
    }

    #[tokio::test]
    async fn send_retries_a_server_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(queued())
            .expect(1)
            .mount(&server)
            .await;

        let sent = client(&server).send(&SMS).await.unwrap();
        assert_eq!(sent.status, "queued");
        let forms = received_forms(&server).await;
        assert_eq!(forms.len(), 2);
        assert_eq!(forms[0], forms[1], "the retry resends the same form");
    }

    #[tokio::test]
    async fn send_does_not_retry_a_rejection() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "code": 21610,
                "message": "Attempt to send to unsubscribed recipient",
                "more_info": "https://www.twilio.com/docs/errors/21610",
                "status": 400,
            })))
            .expect(1)
            .mount(&server)
            .await;

        let err = client(&server).send(&SMS).await.unwrap_err();
        assert_eq!(
            err,
            SendError::Rejected {
                status: 400,
                code: Some(21610),
                message: "Attempt to send to unsubscribed recipient".into(),
            }
        );
        assert!(err.is_permanent());
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn send_gives_up_after_max_retries() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).set_body_json(json!({"code": 20503, "message": "down"})))
            .expect(3)
            .mount(&server)
            .await;

        let err = client(&server).send(&SMS).await.unwrap_err();
        assert!(
            matches!(&err, SendError::Unavailable(problem) if problem.contains("HTTP 503")),
            "{err}"
        );
        assert!(!err.is_permanent());
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn send_retries_timeouts() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(queued().set_delay(Duration::from_secs(2)))
            .expect(2)
            .mount(&server)
            .await;
        let mut config = test_config(&server.uri());
        config.timeout = Duration::from_millis(100);
        config.max_retries = 1;

        let err = TwilioClient::new(config).unwrap().send(&SMS).await.unwrap_err();
        // Twilio may have queued it: not to be sent again later.
        assert!(
            matches!(&err, SendError::Unanswered(problem) if problem.contains("timed out")),
            "{err}"
        );
        assert!(err.is_permanent());
    }

    #[tokio::test]
    async fn send_refuses_bodies_twilio_would_reject() {
        let server = MockServer::start().await;
        let client = client(&server);
        let too_long = "é".repeat(MAX_BODY_CHARS + 1);
        for body in ["", too_long.as_str()] {
            let err = client.send(&OutboundSms { body, ..SMS }).await.unwrap_err();
            assert!(matches!(err, SendError::InvalidMessage(_)), "{err}");
            assert!(err.is_permanent());
        }
        let at_limit = "é".repeat(MAX_BODY_CHARS);
        Mock::given(method("POST"))
            .respond_with(queued())
            .expect(1)
            .mount(&server)
            .await;
        client
            .send(&OutboundSms {
                body: &at_limit,
                ..SMS
            })
            .await
            .unwrap();
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
}
