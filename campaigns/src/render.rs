//! A flow step's message: its minijinja template rendered for one customer, strictly (a name
//! the context lacks is an error, so a typo is caught when the flows are loaded).

use minijinja::{Environment, UndefinedBehavior, context};
use serde::Serialize;

/// An offer as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferText {
    pub code: String,
    pub description: String,
    /// Already formatted for the customer ("Dec 8, 9:00 PM"), if the offer expires.
    pub expires: Option<String>,
}

/// The names a template may use. Missing facts read naturally: no first name is "there", no
/// product is "your items".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateContext {
    pub store: String,
    pub first_name: Option<String>,
    /// Product titles (the cart's, the order's), most relevant first.
    pub products: Vec<String>,
    pub cart_url: Option<String>,
    pub offer: Option<OfferText>,
    /// A product to suggest (upsell).
    pub recommendation: Option<String>,
}

impl TemplateContext {
    /// Every name filled in: what templates are checked against when loaded.
    pub fn sample() -> Self {
        Self {
            store: "Sample Store".into(),
            first_name: Some("Sam".into()),
            products: vec!["Sample Product".into()],
            cart_url: Some("https://example.com/cart".into()),
            offer: Some(OfferText {
                code: "SAMPLE10".into(),
                description: "10% off".into(),
                expires: Some("Jan 1".into()),
            }),
            recommendation: Some("Sample Add-on".into()),
        }
    }
}

/// Renders `template`; `Err` says what is wrong (syntax, an unknown name) and where.
pub fn render(template: &str, ctx: &TemplateContext) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // SMS text, not HTML: nothing is escaped.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let first_name = ctx
        .first_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or("there");
    let product = ctx.products.first().map(String::as_str).unwrap_or("your items");
    let rendered = env
        .render_str(
            template,
            context! {
                store => ctx.store,
                first_name => first_name,
                product => product,
                products => ctx.products,
                cart_url => ctx.cart_url.clone().unwrap_or_default(),
                offer => ctx.offer,
                recommendation => ctx.recommendation,
            },
        )
        .map_err(|err| describe(&err))?;
    // Conditionals leave stray spaces; a text reads better without them.
    let lines: Vec<String> = rendered
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok(lines.join("\n").trim().to_owned())
}

/// The names [`render`] gives a template.
pub const NAMES: [&str; 7] = [
    "store",
    "first_name",
    "product",
    "products",
    "cart_url",
    "offer",
    "recommendation",
];

/// Checks a template before it is ever used: it parses, names only [`NAMES`] (each misspelt
/// one is named), and renders with every name filled in.
pub fn check(template: &str) -> Result<(), String> {
    let env = Environment::new();
    let compiled = env.template_from_str(template).map_err(|err| describe(&err))?;
    let mut unknown: Vec<String> = compiled
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !NAMES.contains(&name.as_str()))
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(format!(
            "unknown name {}; a template may use {}",
            unknown.join(", "),
            NAMES.join(", ")
        ));
    }
    render(template, &TemplateContext::sample()).map(|_| ())
}

fn describe(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    if let Some(detail) = err.detail()
        && !text.contains(detail)
    {
        text = format!("{text}: {detail}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_renders_with_the_customer_and_falls_back_when_facts_are_missing() {
        let template = "Hi {{ first_name }}, still thinking about {{ product }}?{% if offer %} Code {{ offer.code }} ends {{ offer.expires }}.{% endif %} {{ cart_url }}";
        let full = render(template, &TemplateContext::sample()).unwrap();
        assert_eq!(
            full,
            "Hi Sam, still thinking about Sample Product? Code SAMPLE10 ends Jan 1. https://example.com/cart"
        );
        let bare = render(template, &TemplateContext::default()).unwrap();
        assert_eq!(bare, "Hi there, still thinking about your items?");
    }

    #[test]
    fn unknown_names_and_bad_syntax_are_errors_and_nothing_is_escaped() {
        let unknown = render("hi {{ frist_name }}", &TemplateContext::sample()).unwrap_err();
        assert!(
            unknown.contains("frist_name") || unknown.contains("undefined"),
            "{unknown}"
        );
        assert!(render("hi {{ first_name", &TemplateContext::sample()).is_err());
        let ctx = TemplateContext {
            store: "Tom & Jo's".into(),
            ..TemplateContext::default()
        };
        assert_eq!(render("{{ store }}", &ctx).unwrap(), "Tom & Jo's");
    }
}
