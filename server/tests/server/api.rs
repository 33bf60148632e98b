//! The JSON APIs: the escalation round trip, SLA clock, merchant isolation and roles, consent
//! export, knowledge upload, readiness and metrics.

use std::time::Duration;

use parley_server::store::{MessageStatus, UserRole};
use serde_json::{Value, json};

use crate::helpers::*;

const CUSTOMER: &str = "+15550002001";

async fn open_escalations(app: &TestApp, token: &str, merchant: &str) -> Vec<Value> {
    let response = app
        .get(&format!("/v1/merchants/{merchant}/escalations"), token)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["escalations"].as_array().unwrap().clone()
}

#[tokio::test]
async fn escalation_round_trip_through_the_api() {
    let app = spawn_app(Channel::Simulator).await;
    let alice = app.token("trailhead", "alice", UserRole::Agent).await;
    let bob = app.token("trailhead", "bob", UserRole::Agent).await;

    let first = app
        .simulate("trailhead", CUSTOMER, "I want to talk to a real person please")
        .await;
    assert_eq!(first["escalated"], true, "{first}");
    app.clock.advance(Duration::from_secs(60));
    app.simulate(
        "trailhead",
        "+15550002002",
        "My package arrived damaged and the jacket is torn",
    )
    .await;

    let queue = open_escalations(&app, &alice, "trailhead").await;
    assert_eq!(queue.len(), 2);
    // Oldest first, with what an agent needs to pick it up.
    assert_eq!(queue[0]["customer_phone"], CUSTOMER);
    assert_eq!(queue[0]["status"], "open");
    assert_eq!(queue[0]["reason"], "human_requested");
    assert!(!queue[0]["summary"].as_str().unwrap().is_empty());
    assert_eq!(
        queue[0]["transcript"][0]["body"],
        "I want to talk to a real person please"
    );
    assert_eq!(queue[0]["overdue"], false);
    let id = queue[0]["id"].as_i64().unwrap();
    let base = format!("/v1/merchants/trailhead/escalations/{id}");

    // While a person owns it, the AI says nothing.
    let silent = app.simulate("trailhead", CUSTOMER, "hello? anyone there?").await;
    assert_eq!(silent["replies"], json!([]), "{silent}");

    let claimed = app.post_json(&format!("{base}/claim"), &alice, json!({})).await;
    assert_eq!(claimed.status(), 200);
    let claimed: Value = claimed.json().await.unwrap();
    assert_eq!(claimed["status"], "claimed");
    assert_eq!(claimed["assignee"], "alice");
    // Someone else cannot take it or answer in it.
    assert_eq!(
        app.post_json(&format!("{base}/claim"), &bob, json!({}))
            .await
            .status(),
        409
    );
    let bobs_reply = app
        .post_json(&format!("{base}/reply"), &bob, json!({"body": "hi"}))
        .await;
    assert_eq!(bobs_reply.status(), 409);

    let reply = app
        .post_json(
            &format!("{base}/reply"),
            &alice,
            json!({"body": "Hi, this is Alice from Trailhead. How can I help?"}),
        )
        .await;
    assert_eq!(reply.status(), 200);
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(reply["message"]["author"], "human");
    assert_eq!(reply["message"]["status"], "delivered");
    // The customer's phone got it.
    let inbox = app
        .get_public("/v1/simulator/messages?merchant_id=trailhead&phone=%2B15550002001")
        .await;
    let bodies: Vec<&str> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies.last(),
        Some(&"Hi, this is Alice from Trailhead. How can I help?")
    );

    // Reassign to bob (the assignee may), then resolve: the AI answers again.
    let reassigned = app
        .post_json(&format!("{base}/reassign"), &alice, json!({"assignee": "bob"}))
        .await;
    assert_eq!(reassigned.status(), 200);
    assert_eq!(reassigned.json::<Value>().await.unwrap()["assignee"], "bob");
    let resolved = app.post_json(&format!("{base}/resolve"), &bob, json!({})).await;
    assert_eq!(resolved.status(), 200);
    assert_eq!(resolved.json::<Value>().await.unwrap()["status"], "resolved");
    assert_eq!(open_escalations(&app, &alice, "trailhead").await.len(), 1);
    let answered = app
        .simulate("trailhead", CUSTOMER, "How long does standard shipping take?")
        .await;
    assert_eq!(answered["route"], "reply", "{answered}");
    assert_eq!(answered["replies"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn escalations_past_their_sla_are_flagged_overdue() {
    let app = spawn_app(Channel::Simulator).await;
    let token = app.token("glowleaf", "carol", UserRole::Agent).await;
    app.simulate("glowleaf", CUSTOMER, "can I speak to a human").await;
    let queue = open_escalations(&app, &token, "glowleaf").await;
    assert_eq!(queue[0]["overdue"], false);
    // The default SLA is 15 minutes.
    app.clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(
        open_escalations(&app, &token, "glowleaf").await[0]["overdue"],
        false
    );
    app.clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(
        open_escalations(&app, &token, "glowleaf").await[0]["overdue"],
        true
    );
}

#[tokio::test]
async fn one_merchant_never_sees_another_merchants_data() {
    let app = spawn_app(Channel::Simulator).await;
    let trail_admin = app.token("trailhead", "admin", UserRole::Admin).await;
    let glow_admin = app.token("glowleaf", "admin", UserRole::Admin).await;
    app.simulate("glowleaf", CUSTOMER, "I need to talk to a person")
        .await;
    app.simulate("glowleaf", CUSTOMER, "STOP").await;
    let glow_queue = open_escalations(&app, &glow_admin, "glowleaf").await;
    let id = glow_queue[0]["id"].as_i64().unwrap();
    let conversation = glow_queue[0]["conversation_id"].as_i64().unwrap();

    let denied = [
        "/v1/merchants/glowleaf/escalations".to_owned(),
        format!("/v1/merchants/glowleaf/escalations/{id}"),
        "/v1/merchants/glowleaf/conversations".to_owned(),
        format!("/v1/merchants/glowleaf/conversations/{conversation}"),
        "/v1/merchants/glowleaf/consent/export".to_owned(),
        "/v1/merchants/glowleaf/search?q=retinol".to_owned(),
    ];
    for path in &denied {
        let response = app.get(path, &trail_admin).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    for action in ["claim", "resolve"] {
        let path = format!("/v1/merchants/glowleaf/escalations/{id}/{action}");
        assert_eq!(
            app.post_json(&path, &trail_admin, json!({})).await.status(),
            404,
            "{path}"
        );
    }
    // Nor through its own merchant's path with the other's ids.
    let cross = app
        .get(&format!("/v1/merchants/trailhead/escalations/{id}"), &trail_admin)
        .await;
    assert_eq!(cross.status(), 404);
    let cross = app
        .get(
            &format!("/v1/merchants/trailhead/conversations/{conversation}"),
            &trail_admin,
        )
        .await;
    assert_eq!(cross.status(), 404);
    // No token, or a made-up one: 401.
    let anonymous = app
        .client
        .get(app.url("/v1/merchants/glowleaf/escalations"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        app.get("/v1/merchants/glowleaf/escalations", "pk_nope")
            .await
            .status(),
        401
    );
    // The glowleaf admin still sees everything of its own.
    assert_eq!(app.get(&denied[0], &glow_admin).await.status(), 200);
    assert_eq!(app.get(&denied[4], &glow_admin).await.status(), 200);
}

#[tokio::test]
async fn agents_cannot_use_admin_endpoints() {
    let app = spawn_app(Channel::Simulator).await;
    let agent = app.token("trailhead", "dave", UserRole::Agent).await;
    for path in [
        "/v1/merchants/trailhead/conversations",
        "/v1/merchants/trailhead/consent/export",
    ] {
        assert_eq!(app.get(path, &agent).await.status(), 403, "{path}");
    }
    let reingest = app
        .post_json("/v1/merchants/trailhead/knowledge/reingest", &agent, json!({}))
        .await;
    assert_eq!(reingest.status(), 403);
}

#[tokio::test]
async fn consent_ledger_exports_as_csv() {
    let app = spawn_app(Channel::Simulator).await;
    let admin = app.token("trailhead", "admin", UserRole::Admin).await;
    app.simulate("trailhead", CUSTOMER, "STOP").await;
    app.simulate("trailhead", CUSTOMER, "please stop texting me, I revoke consent")
        .await;
    app.simulate("trailhead", CUSTOMER, "START").await;
    let response = app.get("/v1/merchants/trailhead/consent/export", &admin).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,timestamp,merchant_id,phone,action,keyword,source,provider_message_id,purpose,proof"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[1].contains(",trailhead,+15550002001,opt_out,STOP,sms,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("2026-11-28T12:00:00"), "{}", lines[1]);
    assert!(lines[3].contains(",opt_in,START,"), "{}", lines[3]);
    // STOP and START act on every purpose.
    assert!(lines[1].ends_with(",all,"), "{}", lines[1]);

    // A customer's words become a ledger keyword; a spreadsheet must not run them (OWASP).
    let hostile = "=HYPERLINK(\"https://evil.example\",\"x\") stop texting me";
    app.simulate("trailhead", "+15550002002", hostile).await;
    let csv = app
        .get("/v1/merchants/trailhead/consent/export", &admin)
        .await
        .text()
        .await
        .unwrap();
    let last = csv.lines().last().unwrap();
    assert!(last.contains(",opt_out,\"'=HYPERLINK("), "{last}");
    for cell in ["=", "+", "-", "@", "\t", "\r"] {
        assert!(parley_server::api::spreadsheet_safe(&format!("{cell}1")).starts_with('\''));
    }
    assert_eq!(parley_server::api::spreadsheet_safe("STOP"), "STOP");
}

fn tar_of_merchant(source: &std::path::Path, id: &str, number: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in walk(source) {
        let relative = entry.strip_prefix(source).unwrap();
        let mut bytes = std::fs::read(&entry).unwrap();
        if relative == std::path::Path::new("merchant.toml") {
            let text = String::from_utf8(bytes).unwrap();
            let text = text
                .lines()
                .map(|line| {
                    if line.starts_with("id = ") {
                        format!("id = \"{id}\"")
                    } else if line.starts_with("shop_domain = ") {
                        // Shop domains are assigned by the operator, like numbers.
                        String::new()
                    } else if line.starts_with("sms_number = ") {
                        // An empty number leaves the line out.
                        if number.is_empty() {
                            String::new()
                        } else {
                            format!("sms_number = \"{number}\"")
                        }
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            bytes = text.into_bytes();
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("{id}/{}", relative.display()),
                bytes.as_slice(),
            )
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn merchants_upload_and_reingest_their_knowledge() {
    let app = spawn_app(Channel::Simulator).await;
    let merchant = parley_server::store::Merchant {
        id: "uploadco".into(),
        name: "Upload Co".into(),
        sms_number: None,
        knowledge_dir: None,
        support_email: None,
        support_hours: None,
        shop_domain: None,
        timezone: None,
    };
    app.state
        .service
        .store
        .upsert_merchant(&merchant, T0)
        .await
        .unwrap();
    let admin = app.token("uploadco", "owner", UserRole::Admin).await;
    let source = workspace_root().join("fixtures/merchants/glowleaf");

    let upload = |body: Vec<u8>| {
        app.client
            .put(app.url("/v1/merchants/uploadco/knowledge"))
            .bearer_auth(&admin)
            .body(body)
            .send()
    };

    // Refused before anything is written: another merchant's id inside, or not a tar at all.
    let response = upload(tar_of_merchant(&source, "someoneelse", "+18005550177"))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("someoneelse"));
    let response = upload("definitely not a tar archive".repeat(40).into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Another merchant's number, or any number the operator has not assigned to this
    // merchant: refused before the ingest replaces anything (a tenant cannot claim numbers).
    for number in [TRAILHEAD_NUMBER, "+18005550177"] {
        let response = upload(tar_of_merchant(&source, "uploadco", number))
            .await
            .unwrap();
        assert_eq!(response.status(), 409);
        let text = response.text().await.unwrap();
        assert!(text.contains(number) && text.contains("assigned"), "{text}");
    }
    assert!(
        app.state
            .service
            .store
            .merchant_by_number("+18005550177")
            .await
            .unwrap()
            .is_none()
    );
    // Nor can it claim a shop domain, whose Shopify webhooks (customers, orders) would then
    // arrive here.
    let mut claim = tar::Builder::new(Vec::new());
    for entry in walk(&source) {
        let relative = entry.strip_prefix(&source).unwrap();
        let mut bytes = std::fs::read(&entry).unwrap();
        if relative == std::path::Path::new("merchant.toml") {
            let text = String::from_utf8(bytes).unwrap();
            bytes = text
                .lines()
                .filter(|line| !line.starts_with("sms_number = "))
                .map(|line| {
                    if line.starts_with("id = ") {
                        "id = \"uploadco\""
                    } else {
                        line
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes();
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        claim
            .append_data(
                &mut header,
                format!("uploadco/{}", relative.display()),
                bytes.as_slice(),
            )
            .unwrap();
    }
    let response = upload(claim.into_inner().unwrap()).await.unwrap();
    assert_eq!(response.status(), 409);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("shop_domain") && text.contains("assigned"),
        "{text}"
    );
    // Nothing half-written: no directory kept.
    assert!(!app.state.merchants_dir.join("uploadco").exists());
    // A broken file is named as it is in the archive, never by the server's own paths.
    let mut broken = tar::Builder::new(Vec::new());
    for (name, body) in [
        (
            "shop/merchant.toml",
            "id = \"uploadco\"\nname = \"Upload Co\"\ntimezone = \"UTC\"\nsupport_email = \"a@b.example\"\nsupport_hours = \"9-5\"\n",
        ),
        ("shop/products.json", "{\"products\": [{"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        broken.append_data(&mut header, name, body.as_bytes()).unwrap();
    }
    let response = upload(broken.into_inner().unwrap()).await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    let server_dir = app.state.merchants_dir.display().to_string();
    assert!(
        text.contains("shop/products.json") && !text.contains(&server_dir),
        "{text}"
    );

    // The operator assigns the number; an upload may then name it (or leave it out).
    let assigned = parley_server::store::Merchant {
        sms_number: Some("+18005550177".into()),
        ..merchant.clone()
    };
    app.state
        .service
        .store
        .upsert_merchant(&assigned, T0)
        .await
        .unwrap();
    let response = upload(tar_of_merchant(&source, "uploadco", "+18005550177"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["merchant_id"], "uploadco");
    assert!(report["n_chunks"].as_u64().unwrap() > 10);
    let response = upload(tar_of_merchant(&source, "uploadco", "")).await.unwrap();
    assert_eq!(response.status(), 200);
    // The assigned number routes to it.
    let stored = app
        .state
        .service
        .store
        .merchant_by_number("+18005550177")
        .await
        .unwrap();
    assert_eq!(stored.unwrap().id, "uploadco");
    let answer = app
        .simulate("uploadco", CUSTOMER, "do you test on animals?")
        .await;
    assert!(answer["route"].is_string(), "{answer}");

    let reingest = app
        .post_json("/v1/merchants/uploadco/knowledge/reingest", &admin, json!({}))
        .await;
    assert_eq!(reingest.status(), 200);
    let report: Value = reingest.json().await.unwrap();
    assert_eq!(
        report["n_embedded"], 0,
        "unchanged content is not re-embedded: {report}"
    );
}

#[tokio::test]
async fn readiness_and_metrics_report_the_service() {
    let app = spawn_app(Channel::Simulator).await;
    let ready = app.get_public("/readyz").await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["store"], true);
    assert_eq!(ready["channel"], "simulator");
    app.simulate("trailhead", CUSTOMER, "STOP").await;
    app.simulate("trailhead", "+15550002003", "What is your return policy?")
        .await;
    let metrics = app.metrics_text().await;
    for expected in [
        "parley_opt_outs_total 1",
        "parley_decisions_total{name=\"opt_out\"} 1",
        "parley_pipeline_stage_seconds_count{stage=\"total\"} 2",
        "parley_http_requests_total{method=\"POST\",path=\"/v1/simulator/messages\",status=\"200\"} 2",
    ] {
        assert!(metrics.contains(expected), "{expected:?} missing:\n{metrics}");
    }
    // No phone numbers leak into metric labels.
    assert!(!metrics.contains("+1555"));
}

#[tokio::test]
async fn simulator_rejects_bad_input_clearly() {
    let app = spawn_app(Channel::Simulator).await;
    let post = |body: Value| {
        app.client
            .post(app.url("/v1/simulator/messages"))
            .json(&body)
            .send()
    };
    let response = post(json!({"merchant_id": "trailhead", "from": "555", "body": "hi"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("E.164"));
    let response = post(json!({"merchant_id": "nobody", "from": CUSTOMER, "body": "hi"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = app.post_malformed_json("/v1/simulator/messages").await;
    assert!(response.status().is_client_error());
    assert_eq!(app.count(parley_server::store::CountOf::Inbound).await, 0);
}

#[tokio::test]
async fn stalled_messages_are_picked_up_again() {
    let app = spawn_app(Channel::Simulator).await;
    // Stored, but its decision never ran (as if the database had failed at that moment).
    let inbound = parley_server::store::NewInbound {
        merchant_id: "trailhead",
        phone: CUSTOMER,
        body: "How long does standard shipping take?",
        channel: "simulator",
        provider_sid: None,
        num_media: 0,
    };
    app.state.service.store.receive(&inbound, T0).await.unwrap();
    let service = &app.state.service;
    // Younger than a minute: it may still be in progress, so it is left alone.
    assert_eq!(service.resume_stale().await.unwrap(), (0, 0));
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(service.resume_stale().await.unwrap(), (1, 0));
    app.settle().await;
    assert_eq!(app.count(parley_server::store::CountOf::Unprocessed).await, 0);
    let sent = app.sent_to("trailhead", CUSTOMER).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, MessageStatus::Delivered);
}
