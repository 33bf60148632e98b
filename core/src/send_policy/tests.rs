//! `may_send` as a table: purposes, consent, zones, daylight saving, state windows, area
//! codes, caps and the exact window edges, each row with its own now.

use super::*;

const MIN: i64 = MINUTE_MS;
const HOUR: i64 = 60 * MIN;

#[derive(Clone, Copy)]
enum Kind {
    Marketing,
    Conversational,
    Transactional,
    Compliance,
}

#[derive(Clone, Copy)]
enum Rules {
    Default,
    /// Replies held to quiet hours too.
    ConversationalQuiet,
    /// The merchant added a Colorado window of 10:00–19:00.
    Extended,
}

struct Row {
    name: &'static str,
    phone: &'static str,
    now: &'static str,
    expect: &'static str,
    kind: Kind,
    opted_out: bool,
    marketing: MarketingConsent,
    ship_to: Option<&'static str>,
    zone: Option<&'static str>,
    /// (minutes before now, subject)
    recent: Vec<(i64, Option<&'static str>)>,
    subject: Option<&'static str>,
    not_after: Option<&'static str>,
    rules: Rules,
}

/// A confirmed marketing text with nothing sent before, under the default rules.
fn row(name: &'static str, phone: &'static str, now: &'static str, expect: &'static str) -> Row {
    Row {
        name,
        phone,
        now,
        expect,
        kind: Kind::Marketing,
        opted_out: false,
        marketing: MarketingConsent::Confirmed,
        ship_to: None,
        zone: None,
        recent: Vec::new(),
        subject: None,
        not_after: None,
        rules: Rules::Default,
    }
}

impl Row {
    fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }
    fn opted_out(mut self) -> Self {
        self.opted_out = true;
        self
    }
    fn consent(mut self, marketing: MarketingConsent) -> Self {
        self.marketing = marketing;
        self
    }
    fn ship_to(mut self, region: &'static str) -> Self {
        self.ship_to = Some(region);
        self
    }
    fn zone(mut self, zone: &'static str) -> Self {
        self.zone = Some(zone);
        self
    }
    fn sent(mut self, minutes_ago: &[i64], subject: Option<&'static str>) -> Self {
        self.recent.extend(minutes_ago.iter().map(|&m| (m, subject)));
        self
    }
    fn subject(mut self, subject: &'static str) -> Self {
        self.subject = Some(subject);
        self
    }
    fn not_after(mut self, at: &'static str) -> Self {
        self.not_after = Some(at);
        self
    }
    fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }
}

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

fn policy(rules: Rules) -> Policy {
    let mut quiet_hours = QuietHours::builtin();
    if let Rules::Extended = rules {
        let extra: QuietHours =
            toml::from_str("[[window]]\nregion = \"US-CO\"\nfrom = \"10:00\"\nuntil = \"19:00\"\n").unwrap();
        quiet_hours = quiet_hours.extended(extra);
    }
    Policy {
        quiet_hours,
        caps: Caps {
            per_day: Some(4),
            per_week: Some(8),
        },
        merchant_zone: TimeZoneName::parse("America/Denver").unwrap(),
        conversational_quiet_hours: matches!(rules, Rules::ConversationalQuiet),
    }
}

fn verdict_text(verdict: Verdict) -> String {
    match verdict {
        Verdict::Allow => "allow".to_owned(),
        Verdict::Defer { until_ms, reason } => {
            format!(
                "defer {} {reason}",
                Timestamp::from_millisecond(until_ms).unwrap()
            )
        }
        Verdict::Refuse(reason) => format!("refuse {reason}"),
    }
}

/// `expect` as the verdict text: a deferral's time is written with an offset in the table and
/// compared as an instant.
fn expected_text(expect: &str) -> String {
    match expect.split_whitespace().collect::<Vec<_>>()[..] {
        ["defer", at, reason] => format!("defer {} {reason}", at.parse::<Timestamp>().unwrap()),
        _ => expect.to_owned(),
    }
}

fn rows() -> Vec<Row> {
    use Kind::*;
    use MarketingConsent::{AwaitingConfirmation, None as NoConsent};
    const NY: &str = "+12125550123";
    const FL: &str = "+13055550123";
    const OK: &str = "+14055550123";
    const TX: &str = "+17135550123";
    const RI: &str = "+14015550123";
    const CT: &str = "+18605550123";
    const WA: &str = "+12065550123";
    const MD: &str = "+14105550123";
    const NJ: &str = "+12015550123";
    const MS: &str = "+16015550123";
    const LA: &str = "+13105550123";
    const CO: &str = "+17205550123";
    const HI: &str = "+18085550123";
    const AK: &str = "+19075550123";
    const ON: &str = "+14165550123";
    const UK: &str = "+442079460000";
    // 2026-07-01 is a Wednesday; the 4th a Saturday, the 5th a Sunday.
    vec![
        // Purposes and consent.
        row(
            "confirmed marketing at noon",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        ),
        row("opted out", NY, "2026-07-01T12:00:00-04:00", "refuse opted_out").opted_out(),
        row(
            "no marketing opt-in",
            NY,
            "2026-07-01T12:00:00-04:00",
            "refuse no_marketing_consent",
        )
        .consent(NoConsent),
        row(
            "opt-in not yet confirmed",
            NY,
            "2026-07-01T12:00:00-04:00",
            "refuse awaiting_confirmation",
        )
        .consent(AwaitingConfirmation),
        row(
            "compliance text to an opted-out number at 3 am",
            NY,
            "2026-07-01T03:00:00-04:00",
            "allow",
        )
        .kind(Compliance)
        .opted_out(),
        row(
            "reply at 23:00 is not held",
            NY,
            "2026-07-01T23:00:00-04:00",
            "allow",
        )
        .kind(Conversational),
        row(
            "order update at 23:00 is not held",
            NY,
            "2026-07-01T23:00:00-04:00",
            "allow",
        )
        .kind(Transactional),
        row(
            "reply to an opted-out number",
            NY,
            "2026-07-01T12:00:00-04:00",
            "refuse opted_out",
        )
        .kind(Conversational)
        .opted_out(),
        row(
            "order update to an opted-out number",
            NY,
            "2026-07-01T12:00:00-04:00",
            "refuse opted_out",
        )
        .kind(Transactional)
        .opted_out(),
        row(
            "order update needs no marketing opt-in",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .kind(Transactional)
        .consent(NoConsent),
        row(
            "reply needs no marketing opt-in",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .kind(Conversational)
        .consent(NoConsent),
        // TCPA 8:00-21:00 and its edges.
        row("20:59:59 is inside", NY, "2026-07-01T20:59:59-04:00", "allow"),
        row(
            "21:00:00 is outside",
            NY,
            "2026-07-01T21:00:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        ),
        row(
            "07:59:59 waits a second",
            NY,
            "2026-07-01T07:59:59-04:00",
            "defer 2026-07-01T08:00:00-04:00 quiet_hours",
        ),
        row("08:00:00 is inside", NY, "2026-07-01T08:00:00-04:00", "allow"),
        row(
            "midnight waits for 8",
            NY,
            "2026-07-01T00:00:00-04:00",
            "defer 2026-07-01T08:00:00-04:00 quiet_hours",
        ),
        row(
            "saturday night to sunday 8",
            NY,
            "2026-07-04T23:30:00-04:00",
            "defer 2026-07-05T08:00:00-04:00 quiet_hours",
        ),
        // Florida, by area code.
        row("florida 19:59:59", FL, "2026-07-01T19:59:59-04:00", "allow"),
        row(
            "florida 20:00",
            FL,
            "2026-07-01T20:00:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        ),
        row("florida noon", FL, "2026-07-01T12:00:00-04:00", "allow"),
        // Oklahoma: an Oklahoma area code presumes residence; Central time.
        row("oklahoma 19:30 central", OK, "2026-07-01T19:30:00-05:00", "allow"),
        row(
            "oklahoma 20:00 central",
            OK,
            "2026-07-01T20:00:00-05:00",
            "defer 2026-07-02T08:00:00-05:00 quiet_hours",
        ),
        row(
            "oklahoma 7:00 central is 8:00 eastern",
            OK,
            "2026-07-01T07:00:00-05:00",
            "defer 2026-07-01T08:00:00-05:00 quiet_hours",
        ),
        row(
            "maryland 20:30",
            MD,
            "2026-07-01T20:30:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        ),
        row(
            "washington 19:59 pacific",
            WA,
            "2026-07-01T19:59:00-07:00",
            "allow",
        ),
        row(
            "washington 20:00 pacific",
            WA,
            "2026-07-01T20:00:00-07:00",
            "defer 2026-07-02T08:00:00-07:00 quiet_hours",
        ),
        row(
            "new jersey 20:15",
            NJ,
            "2026-07-01T20:15:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        ),
        row(
            "mississippi 20:00 central",
            MS,
            "2026-07-01T20:00:00-05:00",
            "defer 2026-07-02T08:00:00-05:00 quiet_hours",
        ),
        row(
            "connecticut 8:30 waits for 9",
            CT,
            "2026-07-01T08:30:00-04:00",
            "defer 2026-07-01T09:00:00-04:00 quiet_hours",
        ),
        row("connecticut 19:59:59", CT, "2026-07-01T19:59:59-04:00", "allow"),
        row(
            "connecticut 20:00",
            CT,
            "2026-07-01T20:00:00-04:00",
            "defer 2026-07-02T09:00:00-04:00 quiet_hours",
        ),
        // Rhode Island: 9-18 weekdays, 10-17 weekends.
        row(
            "rhode island wednesday 8:59",
            RI,
            "2026-07-01T08:59:00-04:00",
            "defer 2026-07-01T09:00:00-04:00 quiet_hours",
        ),
        row(
            "rhode island wednesday 18:00",
            RI,
            "2026-07-01T18:00:00-04:00",
            "defer 2026-07-02T09:00:00-04:00 quiet_hours",
        ),
        row(
            "rhode island friday 18:00 to saturday 10",
            RI,
            "2026-07-03T18:00:00-04:00",
            "defer 2026-07-04T10:00:00-04:00 quiet_hours",
        ),
        row(
            "rhode island saturday 9:30",
            RI,
            "2026-07-04T09:30:00-04:00",
            "defer 2026-07-04T10:00:00-04:00 quiet_hours",
        ),
        row(
            "rhode island saturday 17:00",
            RI,
            "2026-07-04T17:00:00-04:00",
            "defer 2026-07-05T10:00:00-04:00 quiet_hours",
        ),
        row(
            "rhode island sunday 16:59:59",
            RI,
            "2026-07-05T16:59:59-04:00",
            "allow",
        ),
        row(
            "rhode island sunday 17:00 to monday 9",
            RI,
            "2026-07-05T17:00:00-04:00",
            "defer 2026-07-06T09:00:00-04:00 quiet_hours",
        ),
        // Texas: 9-21 Monday to Saturday, 12-21 Sunday.
        row("texas saturday 9:00", TX, "2026-07-04T09:00:00-05:00", "allow"),
        row(
            "texas saturday 8:59",
            TX,
            "2026-07-04T08:59:00-05:00",
            "defer 2026-07-04T09:00:00-05:00 quiet_hours",
        ),
        row(
            "texas sunday 11:00",
            TX,
            "2026-07-05T11:00:00-05:00",
            "defer 2026-07-05T12:00:00-05:00 quiet_hours",
        ),
        row("texas sunday 12:00", TX, "2026-07-05T12:00:00-05:00", "allow"),
        row(
            "texas saturday 21:00 to sunday noon",
            TX,
            "2026-07-04T21:00:00-05:00",
            "defer 2026-07-05T12:00:00-05:00 quiet_hours",
        ),
        row("texas sunday 20:59", TX, "2026-07-05T20:59:00-05:00", "allow"),
        // Zones far from the merchant's.
        row(
            "hawaii 7:00",
            HI,
            "2026-07-01T07:00:00-10:00",
            "defer 2026-07-01T08:00:00-10:00 quiet_hours",
        ),
        // 907 spans Anchorage and Adak (an hour behind): 8:00 in Adak is 9:00 in Anchorage.
        row(
            "alaska 21:00",
            AK,
            "2026-07-01T21:00:00-08:00",
            "defer 2026-07-02T09:00:00-08:00 quiet_hours",
        ),
        row(
            "a toll-free number falls back to the merchant's zone",
            "+18005550199",
            "2026-07-01T07:30:00-06:00",
            "defer 2026-07-01T08:00:00-06:00 quiet_hours",
        ),
        row(
            "ontario 21:30",
            ON,
            "2026-07-01T21:30:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        ),
        row(
            "london 20:59 summer time",
            UK,
            "2026-07-01T20:59:00+01:00",
            "allow",
        ),
        row(
            "london 21:00 summer time",
            UK,
            "2026-07-01T21:00:00+01:00",
            "defer 2026-07-02T08:00:00+01:00 quiet_hours",
        ),
        // Where the facts disagree, every place's rules hold.
        row(
            "new york number shipping to california: 9 eastern is 6 pacific",
            NY,
            "2026-07-01T09:00:00-04:00",
            "defer 2026-07-01T08:00:00-07:00 quiet_hours",
        )
        .ship_to("US-CA"),
        // One of Florida's area codes is in Central time by libphonenumber's map (689): 8:00 there is 9:00 here.
        row(
            "new york number shipping to florida: florida's 20:00",
            NY,
            "2026-07-01T20:30:00-04:00",
            "defer 2026-07-02T09:00:00-04:00 quiet_hours",
        )
        .ship_to("US-FL"),
        row(
            "california number shipping to florida at 7:30 pacific",
            LA,
            "2026-07-01T07:30:00-07:00",
            "defer 2026-07-01T08:00:00-07:00 quiet_hours",
        )
        .ship_to("US-FL"),
        row(
            "california number shipping to florida at noon pacific",
            LA,
            "2026-07-01T12:00:00-07:00",
            "allow",
        )
        .ship_to("US-FL"),
        row(
            "a known customer zone counts too",
            NY,
            "2026-07-01T15:30:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        )
        .zone("Europe/Berlin"),
        // Daylight saving (US: 2026-03-08 and 2026-11-01; UK: 2026-03-29).
        row(
            "spring forward morning",
            NY,
            "2026-03-08T07:30:00-04:00",
            "defer 2026-03-08T08:00:00-04:00 quiet_hours",
        ),
        row(
            "evening before spring forward",
            NY,
            "2026-03-07T21:00:00-05:00",
            "defer 2026-03-08T08:00:00-04:00 quiet_hours",
        ),
        row(
            "evening before fall back",
            NY,
            "2026-10-31T21:00:00-04:00",
            "defer 2026-11-01T08:00:00-05:00 quiet_hours",
        ),
        row(
            "fall back morning 7:59:59",
            NY,
            "2026-11-01T07:59:59-05:00",
            "defer 2026-11-01T08:00:00-05:00 quiet_hours",
        ),
        row(
            "fall back 20:59 standard time",
            NY,
            "2026-11-01T20:59:00-05:00",
            "allow",
        ),
        row(
            "uk spring forward",
            UK,
            "2026-03-28T21:30:00+00:00",
            "defer 2026-03-29T08:00:00+01:00 quiet_hours",
        ),
        // Caps: 4 a day, 8 a week, rolling.
        row(
            "three today is under the daily cap",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .sent(&[60, 120, 180], None),
        row(
            "four today waits for the oldest to age out",
            NY,
            "2026-07-01T12:00:00-04:00",
            "defer 2026-07-01T16:00:00-04:00 daily_cap",
        )
        .sent(&[60, 120, 180, 20 * 60], None),
        row(
            "the cap's opening falls in quiet hours",
            NY,
            "2026-07-01T12:00:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        )
        .sent(&[60, 120, 180, 14 * 60], None),
        row(
            "a send exactly a day ago no longer counts",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .sent(&[60, 120, 180, 24 * 60], None),
        row(
            "eight this week waits for the oldest",
            NY,
            "2026-07-01T12:00:00-04:00",
            "defer 2026-07-01T14:00:00-04:00 weekly_cap",
        )
        .sent(
            &[
                26 * 60,
                27 * 60,
                50 * 60,
                51 * 60,
                74 * 60,
                75 * 60,
                98 * 60,
                7 * 24 * 60 - 120,
            ],
            None,
        ),
        row(
            "caps do not hold replies",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .kind(Conversational)
        .sent(&[10, 20, 30, 40, 50], None),
        row(
            "caps do not hold order updates",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .kind(Transactional)
        .sent(&[10, 20, 30, 40, 50], None),
        // Same subject: 3 per 24 h in Florida, Oklahoma and Maryland.
        row(
            "florida: a third on one cart is fine",
            FL,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .subject("cart-1")
        .sent(&[60, 120], Some("cart-1")),
        row(
            "florida: a fourth on one cart waits",
            FL,
            "2026-07-01T12:00:00-04:00",
            "defer 2026-07-01T15:00:00-04:00 subject_cap",
        )
        .subject("cart-1")
        .sent(&[60, 120, 21 * 60], Some("cart-1")),
        row(
            "florida: other subjects do not count",
            FL,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .subject("cart-1")
        .sent(&[60, 120, 180], Some("cart-2")),
        row(
            "new york has no subject limit",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .subject("cart-1")
        .sent(&[60, 120, 180], Some("cart-1")),
        row(
            "oklahoma's limit by area code",
            OK,
            "2026-07-01T12:00:00-05:00",
            "defer 2026-07-01T13:00:00-05:00 subject_cap",
        )
        .subject("flash")
        .sent(&[60, 120, 23 * 60], Some("flash")),
        row(
            "maryland's limit by ship-to",
            NY,
            "2026-07-01T12:00:00-04:00",
            "defer 2026-07-01T14:00:00-04:00 subject_cap",
        )
        .ship_to("US-MD")
        .subject("flash")
        .sent(&[60, 120, 22 * 60], Some("flash")),
        // Offers that expire.
        row(
            "expires before the first allowed minute",
            NY,
            "2026-07-01T22:00:00-04:00",
            "refuse expired",
        )
        .not_after("2026-07-02T06:00:00-04:00"),
        row(
            "expires after the first allowed minute",
            NY,
            "2026-07-01T22:00:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        )
        .not_after("2026-07-02T09:00:00-04:00"),
        row(
            "allowed now, before expiry",
            NY,
            "2026-07-01T12:00:00-04:00",
            "allow",
        )
        .not_after("2026-07-01T12:30:00-04:00"),
        // Settings and merchant rules.
        row(
            "replies held when the setting says so",
            FL,
            "2026-07-01T22:00:00-04:00",
            "defer 2026-07-02T08:00:00-04:00 quiet_hours",
        )
        .kind(Conversational)
        .rules(Rules::ConversationalQuiet),
        row(
            "order updates still not held",
            FL,
            "2026-07-01T22:00:00-04:00",
            "allow",
        )
        .kind(Transactional)
        .rules(Rules::ConversationalQuiet),
        row(
            "a merchant's colorado window",
            CO,
            "2026-07-01T09:30:00-06:00",
            "defer 2026-07-01T10:00:00-06:00 quiet_hours",
        )
        .rules(Rules::Extended),
        row(
            "the merchant's window leaves others alone",
            NY,
            "2026-07-01T09:30:00-04:00",
            "allow",
        )
        .rules(Rules::Extended),
    ]
}

#[test]
fn may_send_table() {
    let rows = rows();
    assert!(rows.len() >= 60, "{} rows", rows.len());
    let mut failures = Vec::new();
    for row in rows {
        let policy = policy(row.rules);
        let phone = Phone::parse(row.phone).unwrap();
        let zone = row.zone.map(|z| TimeZoneName::parse(z).unwrap());
        let now = ms(row.now);
        let recent: Vec<SentMarketing<'_>> = row
            .recent
            .iter()
            .map(|&(ago, subject)| SentMarketing {
                at_ms: now - ago * MIN,
                subject,
            })
            .collect();
        let recipient = Recipient {
            phone: &phone,
            opted_out: row.opted_out,
            marketing: row.marketing,
            ship_to_region: row.ship_to,
            zone: zone.as_ref(),
            recent_marketing: &recent,
        };
        let (purpose, compliance) = match row.kind {
            Kind::Marketing => (ConsentPurpose::Marketing, false),
            Kind::Conversational => (ConsentPurpose::Conversational, false),
            Kind::Transactional => (ConsentPurpose::Transactional, false),
            Kind::Compliance => (ConsentPurpose::Conversational, true),
        };
        let message = Outgoing {
            purpose,
            compliance,
            subject: row.subject,
            not_after_ms: row.not_after.map(ms),
        };
        let got = verdict_text(policy.may_send(&recipient, &message, now));
        let want = expected_text(row.expect);
        if got != want {
            failures.push(format!("{}: got {got}, want {want}", row.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_builtin_table_loads_and_is_valid() {
    let text: QuietHours = toml::from_str(BUILTIN_QUIET_HOURS).unwrap();
    text.validate().unwrap();
    assert_eq!(QuietHours::builtin(), text);
    assert!(text.windows.iter().any(|w| w.region == "*"));
}

#[test]
fn a_bad_table_names_the_entry() {
    let bad = |toml_text: &str| -> String {
        match toml::from_str::<QuietHours>(toml_text) {
            Ok(table) => table.validate().unwrap_err().to_string(),
            Err(error) => error.to_string(),
        }
    };
    let two = "[[window]]\nregion = \"*\"\nfrom = \"08:00\"\nuntil = \"21:00\"\n";
    assert!(
        bad(&format!(
            "{two}[[window]]\nregion = \"Florida\"\nfrom = \"08:00\"\nuntil = \"20:00\"\n"
        ))
        .contains("window[1].region")
    );
    assert!(
        bad("[[window]]\nregion = \"US-FL\"\nfrom = \"20:00\"\nuntil = \"08:00\"\n")
            .contains("window[0].until")
    );
    assert!(bad("[[window]]\nregion = \"US-FL\"\nfrom = \"8am\"\nuntil = \"20:00\"\n").contains("\"8am\""));
    assert!(
        bad("[[window]]\nregion = \"US-FL\"\ndays = []\nfrom = \"08:00\"\nuntil = \"20:00\"\n")
            .contains("window[0].days")
    );
    assert!(bad("[[subject_limit]]\nregion = \"US-FL\"\nper_24h = 0\n").contains("subject_limit[0].per_24h"));
    assert!(
        bad("[[window]]\nregion = \"*\"\nfrom = \"08:00\"\nuntill = \"21:00\"\n").contains("unknown field")
    );
}

#[test]
fn times_of_day_are_read_strictly() {
    assert_eq!(TimeOfDay::parse("08:00"), Some(TimeOfDay(480)));
    assert_eq!(TimeOfDay::parse("8:05"), Some(TimeOfDay(485)));
    assert_eq!(TimeOfDay::parse("24:00"), Some(TimeOfDay(1440)));
    for bad in ["24:01", "08:60", "08:5", "0800", "-1:00", "08:00:00", "ab:cd", ""] {
        assert_eq!(TimeOfDay::parse(bad), None, "{bad}");
    }
    assert_eq!(TimeOfDay(485).to_string(), "08:05");
}

#[test]
fn a_table_that_allows_no_minute_refuses_instead_of_looping() {
    let mut policy = policy(Rules::Default);
    policy.quiet_hours = toml::from_str(
        "[[window]]\nregion = \"*\"\ndays = [\"mon\"]\nfrom = \"08:00\"\nuntil = \"09:00\"\n\
         [[window]]\nregion = \"US\"\ndays = [\"tue\"]\nfrom = \"08:00\"\nuntil = \"09:00\"\n",
    )
    .unwrap();
    let phone = Phone::parse("+12125550123").unwrap();
    let recipient = Recipient {
        phone: &phone,
        opted_out: false,
        marketing: MarketingConsent::Confirmed,
        ship_to_region: None,
        zone: None,
        recent_marketing: &[],
    };
    let message = Outgoing {
        purpose: ConsentPurpose::Marketing,
        compliance: false,
        subject: None,
        not_after_ms: None,
    };
    let now = ms("2026-07-01T12:00:00-04:00");
    assert_eq!(
        policy.may_send(&recipient, &message, now),
        Verdict::Refuse(RefuseReason::NoAllowedTime)
    );
}

#[test]
fn rolling_cap_bounds() {
    let now = 100 * HOUR;
    assert_eq!(cap_bound(&[], 2, DAY_MS, now), None);
    assert_eq!(cap_bound(&[now - HOUR], 2, DAY_MS, now), None);
    assert_eq!(
        cap_bound(&[now - HOUR, now - 3 * HOUR], 2, DAY_MS, now),
        Some(now - 3 * HOUR + DAY_MS)
    );
    // Three inside a limit of two: the two oldest must age out.
    assert_eq!(
        cap_bound(&[now - HOUR, now - 2 * HOUR, now - 3 * HOUR], 2, DAY_MS, now),
        Some(now - 2 * HOUR + DAY_MS)
    );
    assert_eq!(
        cap_bound(&[now - 25 * HOUR, now - 30 * HOUR], 2, DAY_MS, now),
        None
    );
}
