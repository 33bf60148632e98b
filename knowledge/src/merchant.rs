//! A merchant's knowledge directory: `merchant.toml`, products, policies and orders, loaded
//! and validated as a whole before anything is written.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use parley_core::MerchantId;
use parley_core::{Phone, TimeZoneName};

use crate::error::{KnowledgeError, Result};
use crate::shopify::{Order, Product, load_orders_json, load_products_csv, load_products_json};

/// A discount the merchant really offers. The agent may mention these codes and no others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub code: String,
    pub description: String,
    #[serde(default)]
    pub conditions: Option<String>,
}

/// `merchant.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    pub id: MerchantId,
    pub name: String,
    /// IANA time zone name, e.g. `America/Denver`, checked against the tz database.
    pub timezone: TimeZoneName,
    pub support_email: String,
    pub support_hours: String,
    /// The E.164 number customers text (`+15551234567`); inbound messages to it are this
    /// merchant's. Optional: a merchant without one is reachable only through the simulator.
    #[serde(default)]
    pub sms_number: Option<Phone>,
    #[serde(default)]
    pub brand_voice: Option<String>,
    #[serde(default)]
    pub offers: Vec<Offer>,
    /// The store's Shopify domain (`trailhead.myshopify.com`): webhooks name their store by it
    /// in `X-Shopify-Shop-Domain`. Optional: without it, no Shopify webhook reaches this merchant.
    #[serde(default, deserialize_with = "shop_domain")]
    pub shop_domain: Option<String>,
}

/// A host name as Shopify writes it in `X-Shopify-Shop-Domain`: lower case letters, digits,
/// dashes and dots, with at least one dot.
fn shop_domain<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<String>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let domain = raw.trim().to_ascii_lowercase();
    let valid = domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(serde::de::Error::custom(format!(
            "{raw:?} is not a shop domain such as \"trailhead.myshopify.com\""
        )));
    }
    Ok(Some(domain))
}

/// Which format a policy document was written in; it decides how headings are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocFormat {
    Markdown,
    Html,
    Text,
}

/// One policy document, already decoded as UTF-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDoc {
    /// Path relative to the merchant directory with `/` separators, e.g. `policies/returns.md`.
    pub source: String,
    pub format: DocFormat,
    pub raw: String,
}

/// Everything a merchant directory holds, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerchantData {
    pub config: MerchantConfig,
    pub products: Vec<Product>,
    pub policies: Vec<PolicyDoc>,
    pub orders: Vec<Order>,
    /// `flows.toml` as written, if the directory has one; the server reads it with
    /// `parley-campaigns` (which validates it at ingest, naming the flow, step and key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows_toml: Option<String>,
    /// `segments.toml` as written, if any: thresholds for the built-in segments and the
    /// merchant's own (read and validated by the server with `parley-campaigns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_toml: Option<String>,
}

impl MerchantData {
    /// Loads and validates a merchant directory. Any problem is reported with the path of the
    /// file at fault; nothing is written anywhere, so a caller can validate before replacing.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(KnowledgeError::invalid(
                dir,
                "not a directory; a merchant is a directory holding merchant.toml",
            ));
        }
        let config_path = dir.join("merchant.toml");
        let config_text = read_text(&config_path)?;
        let config: MerchantConfig = toml::from_str(&config_text)
            .map_err(|err| KnowledgeError::invalid(&config_path, err.to_string()))?;
        validate_config(&config, &config_path)?;

        let json_path = dir.join("products.json");
        let csv_path = dir.join("products.csv");
        let products = match (json_path.exists(), csv_path.exists()) {
            (true, true) => {
                return Err(KnowledgeError::invalid(
                    dir,
                    "both products.json and products.csv are present; keep exactly one",
                ));
            }
            (true, false) => load_products_json(&json_path, &read_text(&json_path)?)?,
            (false, true) => load_products_csv(&csv_path, &read_text(&csv_path)?)?,
            (false, false) => Vec::new(),
        };

        let policies = load_policies(dir)?;

        let orders_path = dir.join("orders.json");
        let orders = if orders_path.exists() {
            load_orders_json(&orders_path, &read_text(&orders_path)?)?
        } else {
            Vec::new()
        };

        if products.is_empty() && policies.is_empty() {
            return Err(KnowledgeError::invalid(
                dir,
                "no knowledge found: add products.json (or products.csv) and/or files under policies/",
            ));
        }
        let flows_path = dir.join("flows.toml");
        let flows_toml = if flows_path.exists() {
            Some(read_text(&flows_path)?)
        } else {
            None
        };
        let segments_path = dir.join("segments.toml");
        let segments_toml = if segments_path.exists() {
            Some(read_text(&segments_path)?)
        } else {
            None
        };
        Ok(Self {
            config,
            products,
            policies,
            orders,
            flows_toml,
            segments_toml,
        })
    }
}

fn validate_config(config: &MerchantConfig, path: &Path) -> Result<()> {
    for (key, value) in [
        ("name", &config.name),
        ("support_email", &config.support_email),
        ("support_hours", &config.support_hours),
    ] {
        if value.trim().is_empty() {
            return Err(KnowledgeError::invalid(path, format!("`{key}` is empty")));
        }
    }
    for offer in &config.offers {
        let code_ok = !offer.code.is_empty()
            && offer
                .code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !code_ok {
            return Err(KnowledgeError::invalid(
                path,
                format!("offer code {:?} must be letters, digits, '-' or '_'", offer.code),
            ));
        }
    }
    Ok(())
}

/// Reads a file as UTF-8 text, refusing empty and binary files with a message naming it.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|err| KnowledgeError::io(path, err))?;
    decode_text(path, bytes)
}

pub(crate) fn decode_text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(KnowledgeError::invalid(path, "file is empty"));
    }
    if bytes.contains(&0) {
        return Err(KnowledgeError::invalid(
            path,
            "file looks binary (contains NUL bytes); expected UTF-8 text",
        ));
    }
    let mut text = String::from_utf8(bytes).map_err(|err| {
        KnowledgeError::invalid(
            path,
            format!(
                "file is not valid UTF-8 (first bad byte at offset {})",
                err.utf8_error().valid_up_to()
            ),
        )
    })?;
    // Editors on Windows like to start files with a byte-order mark; it is not content.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

fn load_policies(dir: &Path) -> Result<Vec<PolicyDoc>> {
    let policies_dir = dir.join("policies");
    if !policies_dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    collect_files(&policies_dir, &mut files)?;
    files.sort();
    let mut docs = Vec::with_capacity(files.len());
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Hidden files are editor and OS droppings (.DS_Store, .swp), never knowledge.
        if name.starts_with('.') {
            continue;
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let format = match extension.as_str() {
            "md" | "markdown" => DocFormat::Markdown,
            "html" | "htm" => DocFormat::Html,
            "txt" | "text" => DocFormat::Text,
            _ => {
                return Err(KnowledgeError::invalid(
                    &path,
                    "unsupported policy format; use .md, .html or .txt",
                ));
            }
        };
        let raw = read_text(&path)?;
        let relative: PathBuf = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
        let source = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        docs.push(PolicyDoc { source, format, raw });
    }
    Ok(docs)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|err| KnowledgeError::io(dir, err))?;
    for entry in entries {
        let entry = entry.map_err(|err| KnowledgeError::io(dir, err))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|err| KnowledgeError::io(&path, err))?;
        if file_type.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}
