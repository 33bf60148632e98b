//! Hardening regressions (issue 13): a full disk loses no acknowledged message, STOP works
//! whatever else is broken (a picture attached, the merchant's catalog and index unreadable),
//! one merchant's broken knowledge leaves the others answered, and hostile requests cannot
//! grow `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parley_knowledge::MerchantData;
use parley_server::settings::Settings;
use parley_server::startup;
use parley_server::store::{ConsentAction, CountOf, EscalationStatus, Merchant, MessageStatus, Store};

use crate::helpers::*;

const GLOWLEAF_NUMBER: &str = "+18005550102";

fn phone(n: usize) -> String {
    format!("+1555300{n:04}")
}

async fn readyz(app: &TestApp) -> (u16, serde_json::Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Every 5th text is a STOP from its own number, the rest questions padded to a full SMS so
/// the database keeps needing new pages.
fn text_of(n: usize) -> String {
    if n.is_multiple_of(5) {
        "STOP".to_owned()
    } else {
        format!("Do you ship to Canada? order note {n}: {}", "x".repeat(1200))
    }
}

#[tokio::test]
async fn after_a_full_disk_every_acknowledged_message_is_stored_and_writes_recover() {
    // A real filesystem that fills up: SQLite meets ENOSPC mid-commit, as in production.
    // Room for the demo merchants' orders (synced into the store at start) and then some texts.
    let disk = SmallDisk::mount(1024);
    let app = spawn_app_in(Channel::TwilioRest, knowledge().await, disk.path(), |_| {}).await;
    accept_all_messages(app.twilio.as_ref().unwrap()).await;
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
    let store = &app.state.service.store;
    let ledger_has = |phone: String| async move {
        store
            .consent_ledger("trailhead")
            .await
            .unwrap()
            .iter()
            .any(|row| row.phone == phone)
    };

    let mut outcome: BTreeMap<usize, u16> = BTreeMap::new();
    let mut first_failure = None;
    for n in 0..600 {
        let sid = format!("SMfull{n:06}");
        let status = app
            .text(&sid, &phone(n), TRAILHEAD_NUMBER, &text_of(n))
            .await
            .status()
            .as_u16();
        outcome.insert(n, status);
        // A 200 means a separate connection reads the message, and for a STOP its ledger row.
        if status == 200 {
            assert!(
                store.inbound_by_sid(&sid).await.unwrap().is_some(),
                "text {n} answered 200 but is not stored (first failure at {first_failure:?})"
            );
            if n.is_multiple_of(5) {
                assert!(
                    ledger_has(phone(n)).await,
                    "STOP {n} answered 200 without its ledger row"
                );
            }
        } else {
            assert_eq!(status, 500, "text {n}");
            first_failure.get_or_insert(n);
        }
        // Keep texting well past the first failure: that is where acknowledged writes vanished.
        if first_failure.is_some_and(|first| n >= first + 40) {
            break;
        }
    }
    assert!(first_failure.is_some(), "the disk never filled up");
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 503, "not ready while no write can commit: {ready}");
    assert_eq!(ready["store_writable"], false, "{ready}");
    app.settle().await;

    // Space is freed: ready again, and Twilio's retries of every refused webhook are taken.
    disk.resize(64 * 1024);
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
    for (&n, &status) in &outcome {
        if status != 200 {
            let sid = format!("SMfull{n:06}");
            let retry = app.text(&sid, &phone(n), TRAILHEAD_NUMBER, &text_of(n)).await;
            assert_eq!(retry.status(), 200, "retry of text {n}");
            if n.is_multiple_of(5) {
                assert!(
                    ledger_has(phone(n)).await,
                    "STOP {n}'s retry answered 200 without its ledger row"
                );
            }
        }
    }
    // Decisions and sends that failed while the disk was full are picked up by the sweeper.
    app.clock.advance(Duration::from_secs(120));
    app.state.service.resume_stale().await.unwrap();
    app.settle().await;

    let texts = i64::try_from(outcome.len()).unwrap();
    assert_eq!(
        app.count(CountOf::Inbound).await,
        texts,
        "every text stored exactly once"
    );
    assert_eq!(app.count(CountOf::Unprocessed).await, 0, "every text decided");
    let ledger = store.consent_ledger("trailhead").await.unwrap();
    let sends = app.twilio_sends().await;
    for &n in outcome.keys() {
        let to = phone(n);
        let texted = sends
            .iter()
            .filter(|form| form_value(form, "To") == Some(to.as_str()))
            .count();
        assert!(texted <= 1, "text {n} was answered {texted} times");
        if n.is_multiple_of(5) {
            let entries = ledger.iter().filter(|row| row.phone == to).count();
            assert_eq!(entries, 1, "STOP {n} has one ledger entry");
            assert_eq!(texted, 1, "STOP {n} is confirmed once");
        }
    }
}

#[tokio::test]
async fn stop_with_a_picture_is_an_opt_out_and_the_picture_is_noted_for_people() {
    let app = spawn_app(Channel::TwilioRest).await;
    accept_all_messages(app.twilio.as_ref().unwrap()).await;
    let customer = phone(1);
    let mut form = inbound_form("SMmms0001", &customer, TRAILHEAD_NUMBER, "STOP");
    for (name, value) in [
        ("NumMedia", "1"),
        ("MediaContentType0", "image/jpeg"),
        (
            "MediaUrl0",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        ),
    ] {
        form.retain(|(k, _)| k != name);
        form.push((name.to_owned(), value.to_owned()));
    }
    let response = app.post_signed("/webhooks/twilio/sms", &form).await;
    assert_eq!(response.status(), 200);
    let ledger = app.state.service.store.consent_ledger("trailhead").await.unwrap();
    assert_eq!(ledger.len(), 1, "the opt-out is durable before Twilio's answer");
    assert_eq!(
        (ledger[0].action, ledger[0].keyword.as_str()),
        (ConsentAction::OptOut, "STOP")
    );

    let stored = app
        .state
        .service
        .store
        .inbound_by_sid("SMmms0001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.body.as_str(), stored.attachments), ("STOP", 1));
    app.settle().await;
    let sent = app.sent_to("trailhead", &customer).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body.contains("unsubscribed"), "{}", sent[0].body);
}

#[tokio::test]
async fn stop_and_help_work_and_other_merchants_answer_while_one_merchants_knowledge_is_unreadable() {
    let kb_dir = tempfile::tempdir().unwrap();
    let knowledge = Arc::new(copied_knowledge(kb_dir.path()));
    // The store knows the merchant (it always does after its first start)...
    let data_dir = tempfile::tempdir().unwrap();
    let trailhead_dir = workspace_root().join("fixtures/merchants/trailhead");
    let config = MerchantData::load(&trailhead_dir).unwrap().config;
    let store = Store::open(&data_dir.path().join("parley.db")).await.unwrap();
    let row = Merchant::from_config(&config, None);
    store.upsert_merchant(&row, T0).await.unwrap();
    store.close().await;
    // ...but its catalog and its index snapshot are garbage now.
    let garbage: Vec<u8> = (0..4096_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(kb_dir.path().join("merchants/trailhead.json"), &garbage).unwrap();
    std::fs::write(kb_dir.path().join("index/trailhead.snapshot"), &garbage).unwrap();

    let app = spawn_app_in(Channel::TwilioRest, knowledge.clone(), data_dir.path(), |_| {}).await;
    accept_all_messages(app.twilio.as_ref().unwrap()).await;
    let store = &app.state.service.store;

    let (stopper, helper, asker) = (phone(11), phone(12), phone(13));
    app.text_ok("SMbk0001", &stopper, TRAILHEAD_NUMBER, "STOP").await;
    let ledger = store.consent_ledger("trailhead").await.unwrap();
    assert_eq!(ledger.len(), 1, "the STOP is in the ledger");
    assert_eq!(ledger[0].phone, stopper);
    app.text_ok("SMbk0002", &helper, TRAILHEAD_NUMBER, "HELP").await;
    let question = "How long does standard shipping take?";
    app.text_ok("SMbk0003", &asker, TRAILHEAD_NUMBER, question).await;
    app.settle().await;

    let confirmation = app.sent_to("trailhead", &stopper).await;
    assert_eq!(confirmation.len(), 1);
    assert!(
        confirmation[0].body.contains("Trailhead Outfitters"),
        "{}",
        confirmation[0].body
    );
    let help = app.sent_to("trailhead", &helper).await;
    assert!(help[0].body.contains(&config.support_email), "{}", help[0].body);
    let open = store
        .escalations("trailhead", &[EscalationStatus::Open])
        .await
        .unwrap();
    let reasons: Vec<(&str, &str)> = open
        .iter()
        .map(|e| (e.customer_phone.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(reasons, [(asker.as_str(), "knowledge_unavailable")]);

    // The other merchant is answered as usual, and the replica stays ready, naming the broken one.
    let glow_customer = phone(14);
    let glow_question = "do you ship to Canada?";
    app.text_ok("SMbk0004", &glow_customer, GLOWLEAF_NUMBER, glow_question)
        .await;
    app.settle().await;
    assert!(
        store
            .escalations("glowleaf", &[EscalationStatus::Open])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(app.sent_to("glowleaf", &glow_customer).await.len(), 1);
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["merchants_unavailable"], serde_json::json!(["trailhead"]));

    // Re-ingesting the merchant's directory repairs it.
    knowledge.ingest_dir(&trailhead_dir, &|_, _| {}).await.unwrap();
    let (_, ready) = readyz(&app).await;
    assert_eq!(ready["merchants_unavailable"], serde_json::json!([]));
    let later = phone(15);
    app.text_ok("SMbk0005", &later, TRAILHEAD_NUMBER, question).await;
    app.settle().await;
    let answered = app.sent_to("trailhead", &later).await;
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].author, parley_server::store::Author::Ai);
    assert_eq!(
        store
            .escalations("trailhead", &[EscalationStatus::Open])
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn invented_http_methods_do_not_grow_the_metrics() {
    let app = spawn_app(Channel::Simulator).await;
    let metrics_size = || async {
        let body = app.metrics_text().await;
        assert!(!body.contains("INVENTED"), "a raw method became a label");
        body.len()
    };
    let send = |n: usize| {
        let method = reqwest::Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        let request = app.client.request(method, app.url("/healthz")).send();
        async move { request.await.unwrap().status() }
    };
    send(0).await;
    // Twice: the first read adds /metrics's own series.
    metrics_size().await;
    let before = metrics_size().await;
    for n in 1..300 {
        assert_ne!(send(n).await, 200);
    }
    let after = metrics_size().await;
    assert!(
        after <= before + 64,
        "metrics grew from {before} to {after} bytes"
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_cannot_crowd_out_a_webhook() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_tweaked(Channel::TwilioTwiml, |settings| {
        settings.server.header_timeout = Duration::from_secs(1);
        settings.server.max_connections = 4;
    })
    .await;
    let addr = app.addr.trim_start_matches("http://").to_owned();
    // As many clients as there are connection slots: two send half a request's headers and
    // stall, two connect and send nothing.
    let mut slow = Vec::new();
    for n in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if n % 2 == 0 {
            stream
                .write_all(b"POST /webhooks/twilio/sms HTTP/1.1\r\nHost: parley\r\n")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    // A real webhook still gets its answer: the slow ones are closed after the header timeout.
    let answered = tokio::time::timeout(
        Duration::from_secs(20),
        app.text("SMslow0001", &phone(21), TRAILHEAD_NUMBER, "HELP"),
    )
    .await
    .expect("the webhook was answered although slow clients held every slot");
    assert_eq!(answered.status(), 200);
    for mut stream in slow {
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "a slow client's connection stayed open");
    }
}

#[tokio::test]
async fn provider_errors_never_put_a_customers_number_in_the_logs() {
    let app = spawn_app(Channel::TwilioRest).await;
    let customer = "+15553009999";
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "code": 21211,
                "message": format!("The 'To' number {customer} is not a valid phone number."),
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400
            })),
        )
        .mount(app.twilio.as_ref().unwrap())
        .await;
    app.text(
        "SMlog0001",
        customer,
        TRAILHEAD_NUMBER,
        "what are your store hours?",
    )
    .await;
    app.settle().await;
    let sent = app.sent_to("trailhead", customer).await;
    assert_eq!(sent[0].error_code.as_deref(), Some("21211"));
    let logs = captured_logs();
    // The rejection was logged (so this test can see a leak)...
    assert!(logs.contains("provider rejected a message"), "{logs}");
    // ...without the number, in any spelling.
    for spelling in [customer, "5553009999"] {
        assert!(!logs.contains(spelling), "{spelling} is in the logs");
    }
}

#[tokio::test]
async fn a_human_reply_during_a_provider_hang_is_queued_and_sent_in_the_background() {
    let app = spawn_app(Channel::TwilioRest).await;
    let server = app.twilio.as_ref().unwrap();
    accept_all_messages(server).await;
    let customer = phone(31);
    app.text(
        "SMhang0001",
        &customer,
        TRAILHEAD_NUMBER,
        "can I speak to a human please",
    )
    .await;
    app.settle().await;
    let agent = app
        .token("trailhead", "alice", parley_server::store::UserRole::Agent)
        .await;
    let escalation = app.first_open_escalation("trailhead").await;
    // Now Twilio hangs: it answers only after 4 s, longer than the agent's request waits.
    server.reset().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(twilio_created(2).set_delay(Duration::from_secs(4)))
        .mount(server)
        .await;
    let started = std::time::Instant::now();
    let reply = app
        .post_json(
            &format!("/v1/merchants/trailhead/escalations/{escalation}/reply"),
            &agent,
            serde_json::json!({"body": "Hi, Alice here. Looking into it now."}),
        )
        .await;
    assert_eq!(
        reply.status(),
        200,
        "the request returns once the reply is queued"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let reply: serde_json::Value = reply.json().await.unwrap();
    let status = reply["message"]["status"].as_str().unwrap().to_owned();
    assert!(status == "pending" || status == "sending", "{status}");
    // The send finishes in the background, once, and its outcome is recorded.
    app.settle().await;
    let id = reply["message"]["id"].as_i64().unwrap();
    let message = app.message(id).await;
    assert_eq!(message.status, MessageStatus::Queued);
    assert_eq!(app.twilio_sends().await.len(), 1, "sent exactly once");
}

/// Logs into the inbox as a browser would (same-origin POST); returns the session cookie
/// header value `parley_session=…` and the whole Set-Cookie line.
async fn inbox_login(app: &TestApp, token: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/inbox/login"))
        .header("origin", &app.addr)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    (pair, set_cookie)
}

async fn inbox_get(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.client
        .get(app.url("/inbox"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn inbox_sessions_are_server_side_expire_end_at_logout_and_forms_must_be_same_origin() {
    let app = spawn_app(Channel::TwilioRest).await;
    let token = app
        .token("trailhead", "dana", parley_server::store::UserRole::Agent)
        .await;
    let (cookie, set_cookie) = inbox_login(&app, &token).await;
    // A random session id, not the long-lived token; Secure because the public URL is https.
    assert!(!set_cookie.contains(&token), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Secure"] {
        assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
    }
    let page = inbox_get(&app, &cookie).await;
    assert_eq!(page.status(), 200);
    let headers = page.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    // The raw token in a cookie is not a session, and the API takes no cookie at all.
    let forged = inbox_get(&app, &format!("parley_session={token}")).await;
    assert_eq!(forged.status(), 303);
    let api_by_cookie = app
        .client
        .get(app.url("/v1/merchants/trailhead/escalations"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api_by_cookie.status(), 401);

    // A form posted from another site, or with no origin at all, changes nothing.
    for origin in [Some("https://evil.example"), None] {
        let mut request = app
            .client
            .post(app.url("/inbox/logout"))
            .header("cookie", &cookie);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        assert_eq!(request.send().await.unwrap().status(), 403, "{origin:?}");
    }
    assert_eq!(inbox_get(&app, &cookie).await.status(), 200, "still logged in");

    // Logout ends the session on the server: the old cookie no longer works.
    let logout = app
        .client
        .post(app.url("/inbox/logout"))
        .header("cookie", &cookie)
        .header("origin", &app.addr)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    assert_eq!(inbox_get(&app, &cookie).await.status(), 303);

    // Sessions expire.
    let (cookie, _) = inbox_login(&app, &token).await;
    app.clock.advance(Duration::from_secs(13 * 3600));
    assert_eq!(inbox_get(&app, &cookie).await.status(), 303);

    // Revoking the token ends its sessions and its API access; the name can get a new one.
    let (cookie, _) = inbox_login(&app, &token).await;
    let store = &app.state.service.store;
    assert!(store.revoke_user("trailhead", "dana", T0).await.unwrap());
    assert_eq!(inbox_get(&app, &cookie).await.status(), 303);
    let api = app.get("/v1/merchants/trailhead/escalations", &token).await;
    assert_eq!(api.status(), 401);
    assert!(!store.revoke_user("trailhead", "dana", T0).await.unwrap());
    let renewed = app
        .token("trailhead", "dana", parley_server::store::UserRole::Agent)
        .await;
    assert_eq!(
        app.get("/v1/merchants/trailhead/escalations", &renewed)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_hanging_or_failing_llm_loses_no_message_answers_each_once_and_stop_still_works() {
    for (behaviour, response) in [
        (
            "hanging",
            wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(5)),
        ),
        (
            "failing",
            wiremock::ResponseTemplate::new(500).set_body_string("model crashed"),
        ),
    ] {
        let llm = parley_testkit::fakes::llm(response).await;
        let app = spawn_app_tweaked(Channel::TwilioRest, |settings| {
            settings.llm = Some(parley_agent::llm::LlmConfig {
                max_retries: 1,
                initial_backoff: Duration::from_millis(10),
                ..llm_at(&llm, Duration::from_millis(300))
            });
        })
        .await;
        accept_all_messages(app.twilio.as_ref().unwrap()).await;
        let questions = [
            "How long does standard shipping take?",
            "What is your return policy?",
            "Do you ship to Canada?",
        ];
        for (n, question) in questions.iter().enumerate() {
            let sid = format!("SMllm{behaviour}{n}");
            let response = app.text(&sid, &phone(40 + n), TRAILHEAD_NUMBER, question).await;
            assert_eq!(response.status(), 200, "{behaviour}");
        }
        let stopper = phone(49);
        app.text_ok(
            &format!("SMllm{behaviour}stop"),
            &stopper,
            TRAILHEAD_NUMBER,
            "STOP",
        )
        .await;
        let ledger = app.state.service.store.consent_ledger("trailhead").await.unwrap();
        assert_eq!(ledger.len(), 1, "{behaviour}: the STOP is in the ledger at once");
        app.settle().await;

        assert!(
            !llm.received_requests().await.unwrap().is_empty(),
            "{behaviour}: the LLM was asked"
        );
        assert_eq!(app.count(CountOf::Inbound).await, 4, "{behaviour}");
        assert_eq!(
            app.count(CountOf::Unprocessed).await,
            0,
            "{behaviour}: every text decided"
        );
        for n in 0..questions.len() {
            let sent = app.sent_to("trailhead", &phone(40 + n)).await;
            assert_eq!(sent.len(), 1, "{behaviour}: question {n} answered exactly once");
        }
        let confirmation = app.sent_to("trailhead", &stopper).await;
        assert_eq!(confirmation.len(), 1, "{behaviour}");
        assert!(
            confirmation[0].body.contains("unsubscribed"),
            "{}",
            confirmation[0].body
        );
    }
}

#[tokio::test]
async fn a_locked_database_refuses_webhooks_cleanly_and_their_retries_are_taken() {
    use sqlx::{Connection as _, Executor as _};
    let data_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(Channel::TwilioRest, knowledge().await, data_dir.path(), |_| {}).await;
    accept_all_messages(app.twilio.as_ref().unwrap()).await;
    // Another process holds the write lock longer than the store's 5 s busy timeout.
    let db = data_dir.path().join("parley.db");
    let mut locker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    locker.execute("BEGIN EXCLUSIVE").await.unwrap();
    let (stopper, asker) = (phone(51), phone(52));
    let (stop, question, ready) = tokio::join!(
        app.text("SMlock0001", &stopper, TRAILHEAD_NUMBER, "STOP"),
        app.text(
            "SMlock0002",
            &asker,
            TRAILHEAD_NUMBER,
            "What is your return policy?"
        ),
        readyz(&app),
    );
    assert_eq!(
        stop.status(),
        500,
        "a STOP that could not be stored is not acknowledged"
    );
    assert_eq!(question.status(), 500);
    assert_eq!(ready.0, 503, "{}", ready.1);
    locker.execute("ROLLBACK").await.unwrap();
    locker.close().await.unwrap();

    // Twilio retries: now stored, the STOP durably in the ledger before its 200.
    app.text_ok("SMlock0001", &stopper, TRAILHEAD_NUMBER, "STOP")
        .await;
    let ledger = app.state.service.store.consent_ledger("trailhead").await.unwrap();
    assert_eq!(ledger.len(), 1);
    app.text_ok(
        "SMlock0002",
        &asker,
        TRAILHEAD_NUMBER,
        "What is your return policy?",
    )
    .await;
    app.settle().await;
    assert_eq!(app.count(CountOf::Inbound).await, 2);
    assert_eq!(app.count(CountOf::Unprocessed).await, 0);
    assert_eq!(app.sent_to("trailhead", &stopper).await.len(), 1);
    assert_eq!(app.sent_to("trailhead", &asker).await.len(), 1);
    assert_eq!(readyz(&app).await.0, 200);
}

#[tokio::test]
async fn the_api_describes_itself_and_answers_every_error_as_json() {
    let app = spawn_app(Channel::Simulator).await;
    let doc = app.get_public("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/merchants/{merchant_id}/search",
        "/v1/merchants/{merchant_id}/escalations",
        "/v1/merchants/{merchant_id}/escalations/{id}",
        "/v1/merchants/{merchant_id}/escalations/{id}/claim",
        "/v1/merchants/{merchant_id}/escalations/{id}/reply",
        "/v1/merchants/{merchant_id}/escalations/{id}/resolve",
        "/v1/merchants/{merchant_id}/escalations/{id}/reassign",
        "/v1/merchants/{merchant_id}/conversations",
        "/v1/merchants/{merchant_id}/conversations/{id}",
        "/v1/merchants/{merchant_id}/consent/export",
        "/v1/merchants/{merchant_id}/knowledge",
        "/v1/merchants/{merchant_id}/knowledge/reingest",
        "/v1/simulator/messages",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The common errors are declared on every operation that can answer them.
    let claim = &paths["/v1/merchants/{merchant_id}/escalations/{id}/claim"]["post"]["responses"];
    for status in ["400", "401", "403", "404", "409"] {
        let schema = &claim[status]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(
            schema, "#/components/schemas/ErrorBody",
            "claim {status}: {claim}"
        );
    }
    let simulator = &paths["/v1/simulator/messages"]["post"]["responses"];
    assert!(
        simulator["400"].is_object() && simulator["401"].is_null(),
        "{simulator}"
    );
    // Extractor rejections (a malformed id, a body that is not JSON) come back as
    // {"error": ...} like every other error.
    let token = app
        .token("trailhead", "erin", parley_server::store::UserRole::Agent)
        .await;
    let bad_id = app
        .get("/v1/merchants/trailhead/escalations/not-a-number", &token)
        .await;
    assert_eq!(bad_id.status(), 400);
    let body: serde_json::Value = bad_id.json().await.unwrap();
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    let not_json = app.post_malformed_json("/v1/simulator/messages").await;
    assert_eq!(not_json.status(), 400);
    let body: serde_json::Value = not_json.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn a_failing_provider_loses_no_message_sends_nothing_twice_and_stop_still_works() {
    let app = spawn_app(Channel::TwilioRest).await;
    // Twilio's API is down: every send attempt gets a 503.
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .mount(app.twilio.as_ref().unwrap())
        .await;
    let (asker, stopper) = (phone(61), phone(62));
    app.text_ok(
        "SMdown0001",
        &asker,
        TRAILHEAD_NUMBER,
        "What is your return policy?",
    )
    .await;
    app.text_ok("SMdown0002", &stopper, TRAILHEAD_NUMBER, "STOP")
        .await;
    let ledger = app.state.service.store.consent_ledger("trailhead").await.unwrap();
    assert_eq!(
        ledger.len(),
        1,
        "the STOP is in the ledger although nothing can be sent"
    );
    app.settle().await;
    assert_eq!(app.count(CountOf::Inbound).await, 2);
    assert_eq!(app.count(CountOf::Unprocessed).await, 0, "both decided");
    for customer in [&asker, &stopper] {
        let sent = app.sent_to("trailhead", customer).await;
        assert_eq!(sent.len(), 1, "one reply committed for {customer}");
        assert_eq!(
            (sent[0].status, sent[0].error_code.as_deref()),
            (MessageStatus::Failed, Some("unavailable"))
        );
    }
    // The sweeper does not resend a failed message: nobody gets it twice when Twilio is back.
    app.clock.advance(Duration::from_secs(120));
    app.state.service.resume_stale().await.unwrap();
    app.settle().await;
    let attempts = app.twilio_sends().await.len();
    assert_eq!(
        attempts,
        2 * 4,
        "each send tried once plus 3 retries, then left failed"
    );
}

#[tokio::test]
async fn the_sweeper_does_not_queue_again_what_is_still_waiting_for_a_worker() {
    // One worker and a slow model: a backlog. Every waiting message is older than the
    // sweeper's stale cut-off, yet queued; a sweep that queued them again made memory grow by
    // gigabytes in the 20-minute soak.
    let llm = parley_testkit::fakes::llm(completion("ESCALATE").set_delay(Duration::from_millis(300))).await;
    let app = spawn_app_tweaked(Channel::TwilioRest, |settings| {
        settings.server.workers = 1;
        settings.llm = Some(parley_agent::llm::LlmConfig {
            max_retries: 0,
            ..llm_at(&llm, Duration::from_secs(5))
        });
    })
    .await;
    accept_all_messages(app.twilio.as_ref().unwrap()).await;
    let backlog = 6;
    for n in 0..backlog {
        app.text_ok(
            &format!("SMbacklog{n}"),
            &phone(60 + n),
            TRAILHEAD_NUMBER,
            "How long does standard shipping take?",
        )
        .await;
    }
    app.clock.advance(Duration::from_secs(120));
    let (inbound, outbound) = app.state.service.resume_stale().await.unwrap();
    assert_eq!(
        (inbound, outbound),
        (0, 0),
        "everything waiting is already queued"
    );
    app.settle().await;
    assert_eq!(app.count(CountOf::Unprocessed).await, 0, "every text decided");
    assert_eq!(
        llm.received_requests().await.unwrap().len(),
        backlog,
        "each message went to the model once"
    );
}

/// An LLM configuration pointing at a fake model server, with the given timeout.
fn llm_at(llm: &wiremock::MockServer, timeout: Duration) -> parley_agent::llm::LlmConfig {
    parley_agent::llm::LlmConfig {
        base_url: format!("{}/v1", llm.uri()),
        model: "test-model".into(),
        timeout,
        ..Default::default()
    }
}

/// The composition root names the part it could not build, and opens no store for an
/// application that cannot run.
#[tokio::test]
async fn startup_names_the_part_it_cannot_build() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    settings.data_dir = dir.path().to_owned();
    settings.embedding.model_dir = dir.path().join("no-such-model");
    let err = match startup::build(&settings, startup::Parts::default()).await {
        Ok(_) => panic!("built an application without an embedding model"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.starts_with("loading the embedding model") && err.contains("no-such-model"),
        "{err}"
    );
    assert!(
        !settings.store_path().exists(),
        "a store was created for an application that cannot start"
    );
}
