//! The durable scheduler on the real server, on the injected clock: a scheduled text goes at
//! its time and once, through the outbox (consent, quiet hours, the opt-out line), an
//! unreachable provider is retried with backoff a bounded number of times, a pending job can
//! be cancelled, and one merchant's jobs are invisible to another. (`restart.rs` kills the
//! real binary mid-schedule.)

use std::time::Duration;

use parley_core::clock::rfc3339;
use parley_server::store::{MessageStatus, UserRole};
use serde_json::{Value, json};

use crate::helpers::*;

/// Miami: T0 (12:00 UTC) is 07:00 there, before marketing's 8:00.
const FLORIDA: &str = "+13055550188";
const OTHER: &str = "+13055550199";
const JOBS: &str = "/v1/merchants/trailhead/jobs";

/// An app on the fake Twilio whose background poller stays out of the way (the tests run due
/// jobs themselves); `accepting`: the fake accepts every message.
async fn scheduler_app(max_retries: u32, accepting: bool) -> TestApp {
    let app = spawn_app_tweaked(Channel::TwilioRest, |settings| {
        settings.scheduler.poll_every = Duration::from_secs(3600);
        settings.scheduler.max_retries = max_retries;
    })
    .await;
    if accepting {
        accept_all_messages(app.twilio.as_ref().unwrap()).await;
    }
    app
}

/// `phone` opted in to trailhead's marketing texts, as an import from another tool records it.
async fn opted_in(app: &TestApp, phone: &str) {
    let csv =
        format!("phone,consent,consented_at,source\n{phone},opted_in,2026-01-05T10:00:00Z,signup form\n");
    let customers = parley_server::import::read_consent_csv(csv.as_bytes(), "test.csv", T0).unwrap();
    let store = &app.state.service.store;
    assert_eq!(
        store.import_customers("trailhead", &customers, T0).await.unwrap(),
        (1, 1)
    );
}

async fn run_due(app: &TestApp) -> usize {
    let started = app.state.service.run_due_jobs().await.unwrap();
    app.settle().await;
    started
}

async fn job(app: &TestApp, token: &str, id: i64) -> Value {
    let response = app.get(&format!("{JOBS}/{id}"), token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_scheduled_text_goes_at_its_time_once_with_the_opt_out_line() {
    let app = scheduler_app(3, true).await;
    opted_in(&app, FLORIDA).await;
    // 17:00 UTC: noon in Miami.
    app.clock.advance(Duration::from_secs(5 * 3600));
    let admin = app.token("trailhead", "ana", UserRole::Admin).await;
    let at = app.clock_now() + 10 * 60_000;
    let request = json!({
        "to": "+1 (305) 555-0188",
        "body": "Our winter sale starts today: 20% off all jackets.",
        "purpose": "marketing",
        "subject": "winter sale",
        "send_at": rfc3339(at),
        "key": "winter-sale-1",
    });
    let response = app.post_json(JOBS, &admin, request.clone()).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["status"], "pending");
    assert_eq!(created["to"], FLORIDA);
    let id = created["id"].as_i64().unwrap();
    // The same key again is the same job, not a second text.
    let again = app.post_json(JOBS, &admin, request).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id);

    // Not before its time...
    app.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(run_due(&app).await, 0);
    assert!(app.twilio_sends().await.is_empty());
    // ...at it, once, however often the scheduler looks.
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(run_due(&app).await, 1);
    assert_eq!(run_due(&app).await, 0);
    let sends = app.twilio_sends().await;
    assert_eq!(sends.len(), 1);
    assert_eq!(form_value(&sends[0], "To"), Some(FLORIDA));
    assert_eq!(
        form_value(&sends[0], "Body"),
        Some("Our winter sale starts today: 20% off all jackets. Reply STOP to opt out")
    );
    let done = job(&app, &admin, id).await;
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_i64()),
        (Some("done"), Some(1))
    );
    let message = app.message(done["message_id"].as_i64().unwrap()).await;
    assert_eq!(message.status, MessageStatus::Queued);

    // The outbox's answer is in the export, with the job's message.
    let export = app
        .get("/v1/merchants/trailhead/send-decisions/export", &admin)
        .await;
    assert_eq!(export.status(), 200);
    let csv = export.text().await.unwrap();
    assert!(csv.starts_with("id,timestamp,merchant_id,message_id,phone,purpose,verdict,reason,until\n"));
    let row = csv
        .lines()
        .find(|line| line.contains(&format!(",{},", message.id)))
        .expect("the job's decision is exported");
    assert!(row.contains(",marketing,allow,"), "{row}");
    // The list shows it too, filtered by status.
    let listed: Value = app
        .get(&format!("{JOBS}?status=done"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn quiet_hours_hold_a_marketing_text_and_without_consent_it_is_refused() {
    let app = scheduler_app(3, true).await;
    opted_in(&app, FLORIDA).await;
    let admin = app.token("trailhead", "ana", UserRole::Admin).await;
    let body = |to: &str| json!({ "to": to, "body": "New arrivals are in.", "purpose": "marketing" });
    let held = app.post_json(JOBS, &admin, body(FLORIDA)).await;
    assert_eq!(held.status(), 201);
    let held = held.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // OTHER never agreed to marketing texts.
    let refused = app.post_json(JOBS, &admin, body(OTHER)).await;
    let refused = refused.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(run_due(&app).await, 2);
    assert!(
        app.twilio_sends().await.is_empty(),
        "07:00 in Miami is quiet hours"
    );

    let refused = job(&app, &admin, refused).await;
    assert_eq!(refused["status"], "refused");
    assert!(
        refused["last_error"].as_str().unwrap().contains("consent"),
        "{refused}"
    );
    let held = job(&app, &admin, held).await;
    assert_eq!(held["status"], "running", "its message waits in the outbox");
    let message = app.message(held["message_id"].as_i64().unwrap()).await;
    assert_eq!(message.status, MessageStatus::Deferred);

    // At 8:00 in Miami the sweeper sends it, and the job is done.
    app.clock.advance(Duration::from_secs(3600));
    app.state.service.resume_stale().await.unwrap();
    app.settle().await;
    assert_eq!(app.twilio_sends().await.len(), 1);
    let id = held["id"].as_i64().unwrap();
    assert_eq!(job(&app, &admin, id).await["status"], "done");
}

#[tokio::test]
async fn an_unreachable_provider_is_retried_with_backoff_then_the_job_fails() {
    let app = scheduler_app(2, false).await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(app.twilio.as_ref().unwrap())
        .await;
    app.clock.advance(Duration::from_secs(5 * 3600));
    opted_in(&app, FLORIDA).await;
    let admin = app.token("trailhead", "ana", UserRole::Admin).await;
    let response = app
        .post_json(
            JOBS,
            &admin,
            json!({ "to": FLORIDA, "body": "Your order ships today.", "purpose": "transactional" }),
        )
        .await;
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    assert_eq!(run_due(&app).await, 1);
    let first = job(&app, &admin, id).await;
    assert_eq!(
        (first["status"].as_str(), first["attempts"].as_i64()),
        (Some("pending"), Some(1))
    );
    assert_eq!(
        first["due_at"],
        rfc3339(app.clock_now() + 60_000),
        "the first retry waits 60 s"
    );
    assert_eq!(run_due(&app).await, 0, "not before its retry time");

    app.clock.advance(Duration::from_secs(60));
    assert_eq!(run_due(&app).await, 1);
    let second = job(&app, &admin, id).await;
    assert_eq!(second["attempts"], 2);
    assert_eq!(
        second["due_at"],
        rfc3339(app.clock_now() + 120_000),
        "the next one twice as long"
    );

    app.clock.advance(Duration::from_secs(120));
    assert_eq!(run_due(&app).await, 1);
    let last = job(&app, &admin, id).await;
    assert_eq!(
        (last["status"].as_str(), last["attempts"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(last["last_error"], "unavailable");
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(run_due(&app).await, 0, "a failed job is not tried again");
    // Transactional: no opt-out line was added.
    let sends = app.twilio_sends().await;
    assert!(!sends.is_empty());
    assert_eq!(form_value(&sends[0], "Body"), Some("Your order ships today."));
}

#[tokio::test]
async fn a_pending_job_can_be_cancelled_bad_requests_change_nothing_and_merchants_are_apart() {
    let app = scheduler_app(3, true).await;
    app.clock.advance(Duration::from_secs(5 * 3600));
    opted_in(&app, FLORIDA).await;
    let admin = app.token("trailhead", "ana", UserRole::Admin).await;
    let agent = app.token("trailhead", "sam", UserRole::Agent).await;
    let other = app.token("glowleaf", "lee", UserRole::Admin).await;
    let request = json!({
        "to": FLORIDA,
        "body": "Flash sale tomorrow.",
        "purpose": "marketing",
        "send_at": rfc3339(app.clock_now() + 3_600_000),
    });

    // Bad input: a clear error naming the field, and no job.
    for (change, field) in [
        (json!({ "to": "555" }), "to:"),
        (json!({ "body": " " }), "body:"),
        (json!({ "purpose": "conversational" }), "purpose"),
        (json!({ "send_at": "tomorrow" }), "send_at:"),
    ] {
        let mut bad = request.clone();
        for (key, value) in change.as_object().unwrap() {
            bad[key] = value.clone();
        }
        let response = app.post_json(JOBS, &admin, bad).await;
        assert!(response.status() == 400 || response.status() == 422, "{change}");
        let error = response.text().await.unwrap();
        assert!(error.contains(field), "{change}: {error}");
    }
    // Only an admin of this merchant schedules.
    assert_eq!(app.post_json(JOBS, &agent, request.clone()).await.status(), 403);
    assert_eq!(
        app.post_json("/v1/merchants/glowleaf/jobs", &admin, request.clone())
            .await
            .status(),
        404
    );
    let listed: Value = app.get(JOBS, &admin).await.json().await.unwrap();
    assert!(listed["jobs"].as_array().unwrap().is_empty());

    let response = app.post_json(JOBS, &admin, request).await;
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // Another merchant's admin sees nothing of it.
    assert_eq!(app.get(&format!("{JOBS}/{id}"), &other).await.status(), 404);
    let theirs: Value = app
        .get("/v1/merchants/glowleaf/jobs", &other)
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs["jobs"].as_array().unwrap().is_empty());
    assert_eq!(
        app.post_json(
            &format!("/v1/merchants/glowleaf/jobs/{id}/cancel"),
            &other,
            json!({})
        )
        .await
        .status(),
        404
    );

    let cancelled = app
        .post_json(&format!("{JOBS}/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "cancelled");
    let twice = app
        .post_json(&format!("{JOBS}/{id}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(twice.status(), 409);
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(run_due(&app).await, 0);
    assert!(app.twilio_sends().await.is_empty());
}

#[tokio::test]
async fn join_signs_up_for_marketing_once_the_programs_confirmation_has_gone() {
    let app = spawn_app_tweaked(Channel::TwilioRest, |settings| {
        settings.scheduler.poll_every = Duration::from_secs(3600);
        settings.outbox.message_frequency = Some("2-4 msgs/month".into());
    })
    .await;
    let twilio = app.twilio.as_ref().unwrap();
    app.clock.advance(Duration::from_secs(5 * 3600));
    let admin = app.token("trailhead", "ana", UserRole::Admin).await;
    let store = &app.state.service.store;
    let marketing = |phone: &'static str| async move {
        store
            .customer_by_phone("trailhead", phone)
            .await
            .unwrap()
            .unwrap()
            .marketing
    };
    let promo = |to: &str| json!({ "to": to, "body": "New arrivals are in.", "purpose": "marketing" });

    // The provider is down when FLORIDA texts JOIN: no confirmation went, so no marketing yet.
    let outage = wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount_as_scoped(twilio)
        .await;
    app.text_ok("SM7001", FLORIDA, TRAILHEAD_NUMBER, "JOIN").await;
    app.settle().await;
    assert_eq!(marketing(FLORIDA).await, "awaiting_confirmation");
    let response = app.post_json(JOBS, &admin, promo(FLORIDA)).await;
    let early = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(run_due(&app).await, 1);
    assert_eq!(job(&app, &admin, early).await["status"], "refused");
    drop(outage);

    // With the provider back, OTHER's JOIN is confirmed by the program's confirmation text...
    accept_all_messages(twilio).await;
    app.text_ok("SM7002", OTHER, TRAILHEAD_NUMBER, "join").await;
    app.settle().await;
    let sends = app.twilio_sends().await;
    let confirmation = sends.last().unwrap();
    assert_eq!(form_value(confirmation, "To"), Some(OTHER));
    assert_eq!(
        form_value(confirmation, "Body"),
        Some(
            "Trailhead Outfitters: you're signed up for recurring marketing texts. 2-4 msgs/month. \
             Msg&data rates may apply. Reply HELP for help, STOP to cancel."
        )
    );
    assert_eq!(marketing(OTHER).await, "confirmed");
    let ledger = store.consent_ledger("trailhead").await.unwrap();
    let entry = ledger.iter().rev().find(|e| e.phone == OTHER).unwrap();
    assert_eq!(
        (
            entry.purpose.as_str(),
            entry.source.as_str(),
            entry.keyword.as_str()
        ),
        ("marketing", "sms", "join")
    );
    // ...and then marketing texts go to OTHER, and still not to FLORIDA.
    let response = app.post_json(JOBS, &admin, promo(OTHER)).await;
    let promoted = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let response = app.post_json(JOBS, &admin, promo(FLORIDA)).await;
    let still = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(run_due(&app).await, 2);
    assert_eq!(job(&app, &admin, promoted).await["status"], "done");
    assert_eq!(job(&app, &admin, still).await["status"], "refused");

    // STOP ends it: the next marketing text is refused.
    app.text_ok("SM7003", OTHER, TRAILHEAD_NUMBER, "STOP").await;
    app.settle().await;
    let response = app.post_json(JOBS, &admin, promo(OTHER)).await;
    let after_stop = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(run_due(&app).await, 1);
    assert_eq!(job(&app, &admin, after_stop).await["status"], "refused");
}
