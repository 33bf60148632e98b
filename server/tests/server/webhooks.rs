//! Twilio's webhooks end to end: signatures, storage before acknowledgement, dedupe,
//! compliance keywords, both reply modes, status callbacks and bad input.

use parley_server::store::{ConsentAction, CountOf, MessageStatus};

use crate::helpers::*;

const CUSTOMER: &str = "+15550001001";

fn message_of(twiml: &str) -> Option<String> {
    let start = twiml.find("<Message>")? + "<Message>".len();
    let end = twiml.find("</Message>")?;
    Some(twiml[start..end].to_owned())
}

#[tokio::test]
async fn signed_webhook_is_stored_and_answered_inline() {
    let app = spawn_app(Channel::TwilioTwiml).await;
    let response = app
        .text(
            "SM0001",
            CUSTOMER,
            TRAILHEAD_NUMBER,
            "How long does standard shipping take?",
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let twiml = response.text().await.unwrap();
    let reply = message_of(&twiml).unwrap_or_else(|| panic!("no reply in {twiml}"));
    assert!(!reply.is_empty());
    assert_eq!(app.count(CountOf::Inbound).await, 1);
    assert_eq!(app.count(CountOf::Unprocessed).await, 0);
    assert_eq!(app.count(CountOf::Outbound).await, 1);
    // Inline replies never touch the REST API.
    assert!(app.twilio_sends().await.is_empty());
}

#[tokio::test]
async fn forged_or_missing_signatures_are_refused_and_nothing_is_stored() {
    let app = spawn_app(Channel::TwilioTwiml).await;
    let form = inbound_form("SM0002", CUSTOMER, TRAILHEAD_NUMBER, "hi");
    let body = encode_form(&form).into_bytes();
    let missing = app.post_form("/webhooks/twilio/sms", body.clone(), None).await;
    assert_eq!(missing.status(), 403);
    let forged = app
        .post_form(
            "/webhooks/twilio/sms",
            body.clone(),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        )
        .await;
    assert_eq!(forged.status(), 403);
    // Signed correctly, then one field changed in transit.
    let signed =
        parley_server::twilio::signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/webhooks/twilio/sms"), &form);
    let tampered = encode_form(&inbound_form("SM0002", CUSTOMER, TRAILHEAD_NUMBER, "hi there"));
    let response = app
        .post_form("/webhooks/twilio/sms", tampered.into_bytes(), Some(&signed))
        .await;
    assert_eq!(response.status(), 403);
    // Signed with another account's token.
    let other = parley_server::twilio::signature(
        "another-token",
        &format!("{PUBLIC_URL}/webhooks/twilio/sms"),
        &form,
    );
    let response = app.post_form("/webhooks/twilio/sms", body, Some(&other)).await;
    assert_eq!(response.status(), 403);
    app.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_retried_message_sid_is_answered_once() {
    let app = spawn_app(Channel::TwilioRest).await;
    accept_all_messages(app.twilio.as_ref().unwrap()).await;
    for _ in 0..3 {
        let response = app
            .text("SM0003", CUSTOMER, TRAILHEAD_NUMBER, "do you ship to Canada?")
            .await;
        assert_eq!(response.status(), 200);
        assert!(message_of(&response.text().await.unwrap()).is_none());
    }
    app.settle().await;
    assert_eq!(app.count(CountOf::Inbound).await, 1);
    assert_eq!(app.count(CountOf::Outbound).await, 1);
    let sends = app.twilio_sends().await;
    assert_eq!(sends.len(), 1, "{sends:?}");
    let send = &sends[0];
    assert_eq!(form_value(send, "To"), Some(CUSTOMER));
    assert_eq!(form_value(send, "From"), Some(TRAILHEAD_NUMBER));
    assert_eq!(
        form_value(send, "StatusCallback"),
        Some(format!("{PUBLIC_URL}/webhooks/twilio/status").as_str())
    );
    assert!(!form_value(send, "Body").unwrap_or_default().is_empty());
}

#[tokio::test]
async fn status_callbacks_update_the_message_and_never_go_backwards() {
    let app = spawn_app(Channel::TwilioRest).await;
    accept_all_messages(app.twilio.as_ref().unwrap()).await;
    app.text("SM0004", CUSTOMER, TRAILHEAD_NUMBER, "what are your store hours?")
        .await;
    app.settle().await;
    let sent = app.sent_to("trailhead", CUSTOMER).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, MessageStatus::Queued);
    let sid = sent[0].provider_sid.clone().unwrap();
    let callback = |status: &str| {
        vec![
            ("MessageSid".to_owned(), sid.clone()),
            ("MessageStatus".to_owned(), status.to_owned()),
            ("AccountSid".to_owned(), ACCOUNT_SID.to_owned()),
        ]
    };
    let response = app
        .post_signed("/webhooks/twilio/status", &callback("delivered"))
        .await;
    assert_eq!(response.status(), 204);
    // A late "sent" after "delivered" must not move it back.
    app.post_signed("/webhooks/twilio/status", &callback("sent"))
        .await;
    let message = app.message(sent[0].id).await;
    assert_eq!(message.status, MessageStatus::Delivered);
    // Replays out of order cannot flip a final status: delivered stays delivered.
    for status in ["undelivered", "failed", "delivered", "undelivered"] {
        let response = app
            .post_signed("/webhooks/twilio/status", &callback(status))
            .await;
        assert_eq!(response.status(), 204);
    }
    let message = app.message(sent[0].id).await;
    assert_eq!(
        (message.status, message.error_code),
        (MessageStatus::Delivered, None)
    );
    // Unsigned callbacks are refused.
    let forged = app
        .post_form(
            "/webhooks/twilio/status",
            encode_form(&callback("failed")).into_bytes(),
            Some("bm9wZQ=="),
        )
        .await;
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn stop_is_recorded_confirmed_once_and_honoured_until_start() {
    let app = spawn_app(Channel::TwilioTwiml).await;
    let stop = app.text("SM0010", CUSTOMER, TRAILHEAD_NUMBER, "STOP").await;
    let confirmation = message_of(&stop.text().await.unwrap()).expect("one confirmation");
    assert!(
        confirmation.to_lowercase().contains("unsubscribed"),
        "{confirmation}"
    );
    let ledger = app.state.service.store.consent_ledger("trailhead").await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].action, ConsentAction::OptOut);
    assert_eq!(ledger[0].keyword, "STOP");
    assert_eq!(ledger[0].phone, CUSTOMER);
    assert_eq!(ledger[0].provider_sid.as_deref(), Some("SM0010"));

    // Nothing more to that number: a question gets no reply, a second STOP no second text.
    for (sid, text) in [("SM0011", "do you ship to Canada?"), ("SM0012", "stop")] {
        let response = app.text(sid, CUSTOMER, TRAILHEAD_NUMBER, text).await;
        assert_eq!(response.status(), 200);
        assert_eq!(message_of(&response.text().await.unwrap()), None, "{text}");
    }

    let start = app.text("SM0013", CUSTOMER, TRAILHEAD_NUMBER, "START").await;
    let confirmation = message_of(&start.text().await.unwrap()).expect("opt-in confirmation");
    assert!(!confirmation.is_empty());
    let answered = app
        .text(
            "SM0014",
            CUSTOMER,
            TRAILHEAD_NUMBER,
            "How long does standard shipping take?",
        )
        .await;
    assert!(message_of(&answered.text().await.unwrap()).is_some());
    let actions: Vec<ConsentAction> = app
        .state
        .service
        .store
        .consent_ledger("trailhead")
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert_eq!(
        actions,
        [ConsentAction::OptOut, ConsentAction::OptOut, ConsentAction::OptIn]
    );
}

#[tokio::test]
async fn with_rest_replies_a_stop_is_in_the_ledger_before_twilio_gets_its_answer() {
    let app = spawn_app(Channel::TwilioRest).await;
    app.text_ok("SM0015", CUSTOMER, TRAILHEAD_NUMBER, "Stop texting me")
        .await;
    // No settling: the acknowledgement itself must mean the opt-out is committed.
    let ledger = app.state.service.store.consent_ledger("trailhead").await.unwrap();
    assert_eq!(ledger.len(), 1, "the ledger entry is written before the 200");
    assert_eq!(ledger[0].action, ConsentAction::OptOut);
    assert_eq!(ledger[0].provider_sid.as_deref(), Some("SM0015"));
    app.settle().await;
    let sends = app.twilio_sends().await;
    assert_eq!(sends.len(), 1, "one confirmation, through the REST API");
    assert_eq!(form_value(&sends[0], "To"), Some(CUSTOMER));
}

#[tokio::test]
async fn help_gets_the_carrier_required_text() {
    let app = spawn_app(Channel::TwilioTwiml).await;
    let response = app.text("SM0020", CUSTOMER, TRAILHEAD_NUMBER, "HELP").await;
    let help = message_of(&response.text().await.unwrap()).unwrap();
    for part in [
        "Trailhead Outfitters",
        "Msg&amp;data rates may apply",
        "Reply STOP to cancel",
    ] {
        assert!(help.contains(part), "{part:?} missing from {help}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_nothing_is_written() {
    let app = spawn_app(Channel::TwilioTwiml).await;
    // Unknown To: signed, well formed, but no merchant owns the number.
    let response = app.text("SM0030", CUSTOMER, "+18005550199", "hello").await;
    assert_eq!(response.status(), 404);
    // Missing From.
    let mut form = inbound_form("SM0031", CUSTOMER, TRAILHEAD_NUMBER, "hello");
    form.retain(|(name, _)| name != "From");
    let response = app.post_signed("/webhooks/twilio/sms", &form).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("From"));
    // A From that is not a phone number.
    let response = app
        .text("SM0032", "not-a-number", TRAILHEAD_NUMBER, "hello")
        .await;
    assert_eq!(response.status(), 400);
    // Invalid UTF-8 in Body.
    let body = format!(
        "MessageSid=SM0033&AccountSid={ACCOUNT_SID}&From=%2B15550001001&To=%2B18005550101&Body=%FF%FE"
    );
    let response = app
        .post_form("/webhooks/twilio/sms", body.into_bytes(), Some("c2ln"))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("Body"));
    // Oversized body (the limit in these tests is 16 KiB).
    let huge = inbound_form("SM0034", CUSTOMER, TRAILHEAD_NUMBER, &"x".repeat(40_000));
    let response = app.post_signed("/webhooks/twilio/sms", &huge).await;
    assert_eq!(response.status(), 413);
    app.assert_nothing_stored().await;
}

#[tokio::test]
async fn provider_rejections_are_recorded_not_retried() {
    let app = spawn_app(Channel::TwilioRest).await;
    let server = app.twilio.as_ref().unwrap();
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "code": 21610,
                "message": "Attempt to send to unsubscribed recipient",
                "more_info": "https://www.twilio.com/docs/errors/21610",
                "status": 400
            })),
        )
        .mount(server)
        .await;
    app.text("SM0040", CUSTOMER, TRAILHEAD_NUMBER, "what are your store hours?")
        .await;
    app.settle().await;
    assert_eq!(app.twilio_sends().await.len(), 1);
    let sent = app.sent_to("trailhead", CUSTOMER).await;
    assert_eq!(sent[0].status, MessageStatus::Failed);
    assert_eq!(sent[0].error_code.as_deref(), Some("21610"));
    // 21610 is a carrier opt-out: written to the ledger once, and nothing more is sent.
    let ledger = app.state.service.store.consent_ledger("trailhead").await.unwrap();
    let carrier: Vec<_> = ledger.iter().filter(|e| e.source == "carrier").collect();
    assert_eq!(carrier.len(), 1, "{ledger:?}");
    assert_eq!(
        (carrier[0].action, carrier[0].purpose.as_str()),
        (ConsentAction::OptOut, "all")
    );
    app.text("SM0041", CUSTOMER, TRAILHEAD_NUMBER, "and on sundays?")
        .await;
    app.settle().await;
    assert_eq!(
        app.twilio_sends().await.len(),
        1,
        "an opted-out number is not texted again"
    );
    assert_eq!(
        app.state
            .service
            .store
            .consent_ledger("trailhead")
            .await
            .unwrap()
            .len(),
        ledger.len()
    );
}
