//! Size charts read as records: a customer's measurement ("I'm 5'10", "my head is 57 cm",
//! "170 lb") is put into the row of the right chart whose range holds it, and the answer says
//! the size with the numbers that put it there.
//!
//! Charts are the pipe tables in a product's description (HTML tables arrive as pipe rows,
//! see `parley_knowledge::text::html_to_text`) or in a policy passage. A product's own chart
//! wins over a general one, so the Tempo's chart answers for the Tempo and not the Loam's.

use std::sync::LazyLock;

use regex::Regex;

/// What was measured, in canonical units: lengths in centimetres, weights in kilograms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A person's height.
    Height(f32),
    /// A circumference or short length (head, waist, chest, foot), in cm.
    Length(f32),
    Weight(f32),
}

/// The measurement in a customer's message, with the words they used for it.
pub fn measurement(message: &str) -> Option<(Measure, String)> {
    static FEET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?i)\b([4-7])\s*(?:'|’|ft\b|foot\b|feet\b)\s*(?:(\d{1,2})(?:\.\d)?\s*(?:"|”|''|in\b|inches\b)?)?"#)
            .expect("valid")
    });
    static CM: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(\d{2,3}(?:[.,]\d)?)\s*(?:cm|centimet(?:er|re)s?)\b").expect("valid")
    });
    static METRES: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b([12])[.,](\d{2})\s*m\b").expect("valid"));
    static POUNDS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b(\d{2,3})\s*(?:lb|lbs|pounds)\b").expect("valid"));
    static KILOS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\b(\d{2,3})\s*(?:kg|kilos?|kilograms?)\b").expect("valid"));
    static INCHES: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"(?i)\b(waist|chest|inseam|hips?|head)\D{0,12}(\d{2}(?:\.\d)?)\s*(?:"|in\b|inch|inches)"#,
        )
        .expect("valid")
    });
    if let Some(c) = FEET.captures(message) {
        let feet: f32 = c[1].parse().ok()?;
        let inches: f32 = c.get(2).and_then(|m| m.as_str().parse().ok()).unwrap_or(0.0);
        if inches < 12.0 {
            return Some((
                Measure::Height((feet * 12.0 + inches) * 2.54),
                c[0].trim().to_owned(),
            ));
        }
    }
    if let Some(c) = METRES.captures(message) {
        let cm = format!("{}{}", &c[1], &c[2]).parse::<f32>().ok()?;
        return Some((Measure::Height(cm), c[0].trim().to_owned()));
    }
    if let Some(c) = CM.captures(message) {
        let value: f32 = c[1].replace(',', ".").parse().ok()?;
        let measure = if value >= 100.0 {
            Measure::Height(value)
        } else {
            Measure::Length(value)
        };
        return Some((measure, c[0].trim().to_owned()));
    }
    if let Some(c) = INCHES.captures(message) {
        let value: f32 = c[2].parse().ok()?;
        return Some((Measure::Length(value * 2.54), c[0].trim().to_owned()));
    }
    if let Some(c) = POUNDS.captures(message) {
        let value: f32 = c[1].parse().ok()?;
        return Some((Measure::Weight(value * 0.453_592), c[0].trim().to_owned()));
    }
    if let Some(c) = KILOS.captures(message) {
        let value: f32 = c[1].parse().ok()?;
        return Some((Measure::Weight(value), c[0].trim().to_owned()));
    }
    None
}

/// One row of a chart: its label (the size), the cell text, and the ranges it holds.
#[derive(Debug, Clone)]
struct Row {
    label: String,
    cells: Vec<String>,
    ranges: Vec<(Measure, Measure)>,
}

/// The pipe tables in `text`, each as its rows (the header row gives units to bare numbers).
fn tables(text: &str) -> Vec<Vec<Row>> {
    let mut out = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.trim();
        if !line.starts_with('|') {
            if !rows.is_empty() {
                out.push(std::mem::take(&mut rows));
            }
            header = None;
            continue;
        }
        let Some(cells) = parley_knowledge::sentences::table_cells(line) else {
            continue;
        };
        match &header {
            None => header = Some(cells),
            Some(names) => {
                let ranges = cells
                    .iter()
                    .enumerate()
                    .skip(1)
                    .filter_map(|(i, cell)| range(cell, names.get(i).map(String::as_str).unwrap_or("")))
                    .collect();
                let label = cells.first().cloned().unwrap_or_default();
                rows.push(Row { label, cells, ranges });
            }
        }
    }
    out
}

/// A range in one cell: "5'8\"-5'11\"", "170-177 cm", "55–59" under a "(cm)" header,
/// "150-180 lb".
fn range(cell: &str, header: &str) -> Option<(Measure, Measure)> {
    static FEET_RANGE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"([4-7])\s*'\s*(\d{1,2})?\s*"?\s*(?:-|–|to)\s*([4-7])\s*'\s*(\d{1,2})?"#).expect("valid")
    });
    static NUMBER_RANGE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(\d{2,3}(?:\.\d)?)\s*(?:-|–|to)\s*(\d{2,3}(?:\.\d)?)").expect("valid"));
    let height = |feet: &str, inches: Option<regex::Match>| {
        let feet: f32 = feet.parse().unwrap_or(0.0);
        let inches: f32 = inches.and_then(|m| m.as_str().parse().ok()).unwrap_or(0.0);
        Measure::Height((feet * 12.0 + inches) * 2.54)
    };
    if let Some(c) = FEET_RANGE.captures(cell) {
        // The top of "5'8\"-5'11\"" is the whole inch: 5'11.9" still fits.
        let Measure::Height(top) = height(&c[3], c.get(4)) else {
            unreachable!()
        };
        return Some((height(&c[1], c.get(2)), Measure::Height(top + 2.5)));
    }
    let c = NUMBER_RANGE.captures(cell)?;
    let (lo, hi): (f32, f32) = (c[1].parse().ok()?, c[2].parse().ok()?);
    let units = format!("{cell} {header}").to_lowercase();
    let make = |v: f32| -> Option<Measure> {
        if units.contains("lb") || units.contains("pound") {
            Some(Measure::Weight(v * 0.453_592))
        } else if units.contains("kg") {
            Some(Measure::Weight(v))
        } else if units.contains("cm") {
            Some(if v >= 100.0 {
                Measure::Height(v)
            } else {
                Measure::Length(v)
            })
        } else if units.contains(" in") || units.contains("inch") || units.contains('"') {
            Some(Measure::Length(v * 2.54))
        } else {
            None
        }
    };
    Some((make(lo)?, make(hi)?))
}

fn holds(range: &(Measure, Measure), measure: Measure) -> bool {
    match (range, measure) {
        ((Measure::Height(lo), Measure::Height(hi)), Measure::Height(v))
        | ((Measure::Length(lo), Measure::Length(hi)), Measure::Length(v))
        | ((Measure::Weight(lo), Measure::Weight(hi)), Measure::Weight(v)) => {
            *lo - 0.5 <= v && v <= *hi + 0.5
        }
        _ => false,
    }
}

/// The chart row for `measure` in `text`'s tables: the last row whose range holds it (a
/// measurement on a boundary takes the larger size, as charts advise). `None` when no table
/// in the text speaks of this kind of measurement, or none holds it.
pub fn fitting_row(text: &str, measure: Measure) -> Option<String> {
    for table in tables(text) {
        let kind_known = table.iter().any(|row| {
            row.ranges
                .iter()
                .any(|r| std::mem::discriminant(&r.0) == std::mem::discriminant(&measure))
        });
        if !kind_known {
            continue;
        }
        let row = table
            .iter()
            .rev()
            .find(|row| row.ranges.iter().any(|r| holds(r, measure)))?;
        let detail: Vec<&str> = row
            .cells
            .iter()
            .skip(1)
            .map(String::as_str)
            .filter(|c| !c.is_empty())
            .collect();
        return Some(format!("{} ({})", row.label, detail.join(", ")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART: &str = "| Frame size | Rider height (ft/in) | Rider height (cm) |\n|---|\n\
        | 52 | 5'5\"-5'8\" | 165-172 cm |\n| 54 | 5'8\"-5'11\" | 172-180 cm |\n| 56 | 5'11\"-6'2\" | 180-188 cm |";

    #[test]
    fn heights_are_read_in_feet_and_centimetres() {
        let (m, said) = measurement("I'm 5'10, what size?").unwrap();
        assert!(
            matches!(m, Measure::Height(h) if (h - 177.8).abs() < 0.1),
            "{m:?}"
        );
        assert_eq!(said, "5'10");
        assert!(matches!(measurement("im 175cm").unwrap().0, Measure::Height(h) if h == 175.0));
        assert!(
            matches!(measurement("6 foot even").unwrap().0, Measure::Height(h) if (h - 182.9).abs() < 0.1)
        );
        assert!(matches!(measurement("my head is 57 cm").unwrap().0, Measure::Length(l) if l == 57.0));
        assert!(measurement("do you have size 10?").is_none());
    }

    #[test]
    fn the_row_holding_the_measurement_is_chosen() {
        assert_eq!(
            fitting_row(CHART, measurement("5'10").unwrap().0).as_deref(),
            Some("54 (5'8\"-5'11\", 172-180 cm)")
        );
        assert_eq!(
            fitting_row(CHART, Measure::Height(166.0)).as_deref(),
            Some("52 (5'5\"-5'8\", 165-172 cm)")
        );
        assert!(fitting_row(CHART, Measure::Length(57.0)).is_none());
        let helmets =
            "| Size | Head circumference |\n|---|---|\n| S | 51-55 cm |\n| M | 55-59 cm |\n| L | 59-63 cm |";
        assert_eq!(
            fitting_row(helmets, Measure::Length(61.0)).as_deref(),
            Some("L (59-63 cm)")
        );
        assert_eq!(
            fitting_row(helmets, Measure::Length(55.0)).as_deref(),
            Some("M (55-59 cm)")
        );
    }
}
