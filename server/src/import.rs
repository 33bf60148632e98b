//! Customers and their marketing consent from a CSV file (`parley customers import`), e.g.
//! an export from the store's previous SMS tool. Every row is checked before anything is
//! written, and every bad row is reported with its line, so a file either imports whole or
//! changes nothing: a half-imported consent list is a list nobody can vouch for.

use std::collections::HashMap;

use parley_core::Phone;
use parley_core::clock::parse_rfc3339;

use crate::store::commerce::{CustomerFacts, MarketingSignal};

/// The columns a file must have; `first_name`, `last_name`, `email` and `tags` may be added.
pub const REQUIRED_COLUMNS: [&str; 4] = ["phone", "consent", "consented_at", "source"];
const OPTIONAL_COLUMNS: [&str; 4] = ["first_name", "last_name", "email", "tags"];

/// One bad row (or the header, line 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RowError {
    pub line: u64,
    pub problem: String,
}

/// Reads a consent file into the customers to import; `Err` holds every problem found.
/// `label` (the file's name) goes into each ledger entry's proof with the row's `source`.
pub fn read_consent_csv(data: &[u8], label: &str, now_ms: i64) -> Result<Vec<CustomerFacts>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(data);
    let header = |problem: String| vec![RowError { line: 1, problem }];
    let headers = reader
        .headers()
        .map_err(|err| header(format!("unreadable header: {err}")))?
        .clone();
    let mut columns: HashMap<String, usize> = HashMap::new();
    for (at, name) in headers.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        if !REQUIRED_COLUMNS.contains(&name.as_str()) && !OPTIONAL_COLUMNS.contains(&name.as_str()) {
            return Err(header(format!(
                "unknown column {name:?}; the columns are {} and optionally {}",
                REQUIRED_COLUMNS.join(", "),
                OPTIONAL_COLUMNS.join(", ")
            )));
        }
        if columns.insert(name.clone(), at).is_some() {
            return Err(header(format!("column {name:?} appears twice")));
        }
    }
    if let Some(missing) = REQUIRED_COLUMNS.iter().find(|c| !columns.contains_key(**c)) {
        return Err(header(format!("missing column {missing:?}")));
    }

    let mut customers = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                errors.push(RowError {
                    line,
                    problem: format!("unreadable row: {err}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let field = |name: &str| {
            columns
                .get(name)
                .and_then(|&at| record.get(at))
                .filter(|value| !value.is_empty())
        };
        match read_row(&field, label, now_ms) {
            Ok(facts) => match seen.insert(facts.phone.clone(), line) {
                Some(first) => errors.push(RowError {
                    line,
                    problem: format!(
                        "{} is also on line {first}; give each customer one row",
                        facts.phone
                    ),
                }),
                None => customers.push(facts),
            },
            Err(problem) => errors.push(RowError { line, problem }),
        }
    }
    if errors.is_empty() && customers.is_empty() {
        errors.push(RowError {
            line: 1,
            problem: "the file has a header but no customers".into(),
        });
    }
    if errors.is_empty() {
        Ok(customers)
    } else {
        Err(errors)
    }
}

fn read_row<'a>(
    field: &impl Fn(&str) -> Option<&'a str>,
    label: &str,
    now_ms: i64,
) -> Result<CustomerFacts, String> {
    let required = |name: &str| field(name).ok_or_else(|| format!("{name} is empty"));
    let phone = Phone::parse(required("phone")?).map_err(|err| format!("phone: {err}"))?;
    let consent = required("consent")?;
    let subscribed = match consent.to_ascii_lowercase().as_str() {
        "opted_in" | "subscribed" | "yes" | "true" => true,
        "opted_out" | "unsubscribed" | "no" | "false" => false,
        other => {
            return Err(format!(
                "consent: {other:?} is neither opted_in (subscribed, yes) nor opted_out (unsubscribed, no)"
            ));
        }
    };
    let at = required("consented_at")?;
    let at_ms = parse_rfc3339(at)
        .ok_or_else(|| format!("consented_at: {at:?} is not an RFC 3339 time (2026-03-01T10:00:00Z)"))?;
    if at_ms > now_ms {
        return Err(format!("consented_at: {at} is in the future"));
    }
    let source = required("source")?;
    if source.chars().count() > 200 {
        return Err("source: longer than 200 characters".into());
    }
    let owned = |name: &str| field(name).map(str::to_owned);
    Ok(CustomerFacts {
        phone: phone.as_str().to_owned(),
        shopify_id: None,
        first_name: owned("first_name"),
        last_name: owned("last_name"),
        email: owned("email"),
        tags: owned("tags"),
        ship_to_region: None,
        marketing: Some(MarketingSignal {
            subscribed,
            at_ms,
            source: "import",
            proof: format!("{source} (imported from {label}, consented {at})"),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000; // 2026-05-28

    fn read(text: &str) -> Result<Vec<CustomerFacts>, Vec<RowError>> {
        read_consent_csv(text.as_bytes(), "old-tool.csv", NOW)
    }

    #[test]
    fn a_good_file_reads_every_row_with_its_proof() {
        let customers = read(
            "phone,consent,consented_at,source,first_name\n\
             +14155550100,opted_in,2026-03-01T10:00:00Z,popup form,Ana\n\
             +1 720 555 0123 , Unsubscribed ,2026-03-02T10:00:00-07:00,keyword,\n",
        )
        .unwrap();
        assert_eq!(customers.len(), 2);
        assert_eq!(customers[0].phone, "+14155550100");
        assert_eq!(customers[0].first_name.as_deref(), Some("Ana"));
        let signal = customers[0].marketing.as_ref().unwrap();
        assert!(signal.subscribed);
        assert_eq!(signal.source, "import");
        assert!(signal.proof.contains("popup form") && signal.proof.contains("old-tool.csv"));
        assert_eq!(customers[1].phone, "+17205550123");
        assert!(!customers[1].marketing.as_ref().unwrap().subscribed);
        assert_eq!(customers[1].first_name, None);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let errors = read(
            "phone,consent,consented_at,source\n\
             +14155550100,opted_in,2026-03-01T10:00:00Z,form\n\
             555,opted_in,2026-03-01T10:00:00Z,form\n\
             +14155550101,maybe,2026-03-01T10:00:00Z,form\n\
             +14155550102,opted_in,yesterday,form\n\
             +14155550103,opted_in,2027-03-01T10:00:00Z,form\n\
             +14155550104,opted_in,2026-03-01T10:00:00Z,\n\
             +14155550100,opted_out,2026-03-05T10:00:00Z,form\n",
        )
        .unwrap_err();
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8], "{errors:?}");
        let problem = |line: u64| &errors.iter().find(|e| e.line == line).unwrap().problem;
        assert!(problem(3).starts_with("phone:"));
        assert!(problem(4).starts_with("consent:"));
        assert!(problem(5).contains("RFC 3339"));
        assert!(problem(6).contains("future"));
        assert_eq!(problem(7), "source is empty");
        assert!(problem(8).contains("also on line 2"));
    }

    #[test]
    fn the_header_must_name_the_columns() {
        let problem = |text: &str| read(text).unwrap_err()[0].problem.clone();
        assert!(problem("phone,consent,consented_at\n").contains("missing column \"source\""));
        assert!(problem("phone,consent,consented_at,source,fone\n").contains("unknown column \"fone\""));
        assert!(problem("phone,consent,consented_at,source\n").contains("no customers"));
        assert!(problem("phone,Phone,consent,consented_at,source\n").contains("twice"));
    }
}
