//! Cart recovery end to end on the real server and the injected clock: a signed Shopify
//! checkout webhook enrolls the customer, the first message goes at +2 h (not before, and
//! held by quiet hours), a reply hands the conversation to the agent and ends the flow, and
//! an order or a STOP at any point means nothing more is sent.

use std::time::Duration;

use parley_core::clock::rfc3339;
use parley_server::store::{Author, MessageStatus};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::shopify::{sample, shopify_app, ticked_checkout};

const MERCHANT: &str = "trailhead";
const H: i64 = 3_600_000;

/// A ticked checkout for the Stormline jacket, shipping to New York, last updated at `at`.
fn cart(token: &str, phone: &str, at: i64) -> Value {
    let mut checkout = ticked_checkout(token, phone, &rfc3339(at));
    checkout["line_items"] = json!([{
        "title": "Stormline 2.5L Rain Jacket", "variant_title": "M / Black", "quantity": 1,
        "price": "169.00", "product_id": 7001000009_u64, "variant_id": 7001000009001_u64, "sku": null,
    }]);
    checkout["shipping_address"]["province_code"] = json!("NY");
    checkout["shipping_address"]["country_code"] = json!("US");
    checkout["billing_address"] = Value::Null;
    checkout
}

/// Moves the clock to `at` and runs what is due until nothing more is (a flow decision
/// schedules its message; the message goes on the next run).
async fn run_at(app: &TestApp, at: i64) {
    let now = app.clock_now();
    assert!(at >= now, "the clock only moves forward");
    app.clock
        .advance(Duration::from_millis(u64::try_from(at - now).unwrap()));
    for _ in 0..5 {
        let started = app.state.service.run_due_jobs().await.unwrap();
        app.settle().await;
        if started == 0 {
            break;
        }
    }
    // Held messages whose time has come.
    app.state.service.resume_stale().await.unwrap();
    app.settle().await;
}

/// The flow messages sent (or held) to `phone`, oldest first.
async fn flow_texts(app: &TestApp, phone: &str) -> Vec<parley_server::store::MessageRow> {
    app.sent_to(MERCHANT, phone)
        .await
        .into_iter()
        .filter(|m| m.author == Author::Ai && m.body.contains("Reply STOP to opt out"))
        .collect()
}

async fn exit_reason(app: &TestApp, phone: &str) -> Option<String> {
    let store = &app.state.service.store;
    let enrollments = store.enrollments_of(MERCHANT, phone).await.unwrap();
    assert_eq!(enrollments.len(), 1, "one enrollment per cart");
    enrollments[0].exit_reason.clone()
}

fn order_for(token: &str, phone: &str, id: u64) -> Value {
    let mut order = sample("orders_create");
    order["id"] = json!(id);
    order["checkout_token"] = json!(token);
    order["phone"] = json!(phone);
    order["customer"] = Value::Null;
    order
}

#[tokio::test]
async fn a_cart_reminder_goes_at_two_hours_and_a_reply_hands_over_to_the_agent() {
    let app = shopify_app().await;
    let phone = "+12125550171";
    let t0 = app.clock_now();
    app.deliver_ok("checkouts/update", "ev-cart-1", &cart("tok-r1", phone, t0))
        .await;

    // The admin's job list shows the decision due at +2 h.
    let admin = app
        .token(MERCHANT, "ana", parley_server::store::UserRole::Admin)
        .await;
    let jobs: Value = app
        .get("/v1/merchants/trailhead/jobs?status=pending", &admin)
        .await
        .json()
        .await
        .unwrap();
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["kind"], "flow");
    assert_eq!(jobs[0]["due_at"], rfc3339(t0 + 2 * H));
    assert!(jobs[0]["enrollment"].is_i64() && jobs[0]["to"].is_null());

    run_at(&app, t0 + 2 * H - 60_000).await;
    assert!(flow_texts(&app, phone).await.is_empty(), "not before two hours");
    run_at(&app, t0 + 2 * H).await;
    let texts = flow_texts(&app, phone).await;
    assert_eq!(texts.len(), 1);
    let first = &texts[0].body;
    assert!(first.contains("Stormline 2.5L Rain Jacket"), "{first}");
    assert!(first.contains("https://checkout.local/"), "{first}");
    assert!(first.contains('?'), "it asks a question: {first}");
    assert_eq!(texts[0].status, MessageStatus::Delivered);
    // Running again sends nothing twice.
    run_at(&app, t0 + 2 * H + 60_000).await;
    assert_eq!(flow_texts(&app, phone).await.len(), 1);

    // The customer answers without naming the product: the agent replies about the cart's
    // jacket, which the reminder was about.
    app.simulate(MERCHANT, phone, "is it available in XL?").await;
    app.settle().await;
    let reply = app.sent_to(MERCHANT, phone).await.last().unwrap().body.clone();
    assert!(reply.contains("XL") && reply.contains("Stormline"), "{reply}");
    assert!(
        !reply.contains("Reply STOP"),
        "a reply is not a marketing text: {reply}"
    );

    // The conversation is the agent's: the 24-hour reminder does not go, and the flow ends.
    run_at(&app, t0 + 27 * H).await;
    assert_eq!(flow_texts(&app, phone).await.len(), 1);
    assert_eq!(exit_reason(&app, phone).await.as_deref(), Some("replied"));
    // An order later changes nothing: no further text, ever.
    app.deliver_ok(
        "orders/create",
        "ev-cart-1-order",
        &order_for("tok-r1", phone, 88001),
    )
    .await;
    run_at(&app, t0 + 80 * H).await;
    assert_eq!(flow_texts(&app, phone).await.len(), 1);
}

#[tokio::test]
async fn an_order_or_a_stop_at_any_point_ends_the_flow() {
    let app = shopify_app().await;
    let t0 = app.clock_now();
    // (phone, what happens, hours after the checkout, reminders sent by then)
    let cases = [
        ("+12125550181", "order", 1, 0),
        ("+12125550182", "order", 3, 1),
        ("+12125550183", "stop", 1, 0),
        ("+12125550184", "stop", 3, 1),
        ("+12125550185", "nothing", 0, 0),
    ];
    for (i, (phone, _, _, _)) in cases.iter().enumerate() {
        app.deliver_ok(
            "checkouts/update",
            Box::leak(format!("ev-x{i}").into_boxed_str()),
            &cart(&format!("tok-x{i}"), phone, t0),
        )
        .await;
    }
    for hours in 1..=3 {
        run_at(&app, t0 + hours * H).await;
        for (i, (phone, event, at, _)) in cases.iter().enumerate() {
            if *at != hours {
                continue;
            }
            match *event {
                "order" => {
                    let order = order_for(&format!("tok-x{i}"), phone, 88100 + i as u64);
                    app.deliver_ok(
                        "orders/create",
                        Box::leak(format!("ev-xo{i}").into_boxed_str()),
                        &order,
                    )
                    .await;
                }
                "stop" => {
                    app.simulate(MERCHANT, phone, "STOP").await;
                    app.settle().await;
                }
                _ => {}
            }
        }
    }
    // Through the last reminder's time and beyond.
    for at in [27, 76, 120] {
        run_at(&app, t0 + at * H).await;
    }
    for (phone, event, _, reminders) in cases {
        let sent = flow_texts(&app, phone).await.len();
        let reason = exit_reason(&app, phone).await;
        match event {
            "order" => assert_eq!((sent, reason.as_deref()), (reminders, Some("ordered")), "{phone}"),
            "stop" => {
                assert_eq!(
                    (sent, reason.as_deref()),
                    (reminders, Some("opted_out")),
                    "{phone}"
                );
                let last = app.sent_to(MERCHANT, phone).await.last().unwrap().body.clone();
                assert!(
                    last.contains("unsubscribed"),
                    "the STOP confirmation is the last text: {last}"
                );
            }
            _ => assert_eq!((sent, reason.as_deref()), (3, Some("completed")), "{phone}"),
        }
    }
}

#[tokio::test]
async fn a_reminder_due_in_quiet_hours_waits_for_the_morning() {
    let app = shopify_app().await;
    let phone = "+12125550191";
    // 19:00 in New York: the first reminder falls due at 21:00, when marketing must stop.
    let checkout_at = app.clock_now() + 12 * H;
    run_at(&app, checkout_at).await;
    app.deliver_ok("checkouts/update", "ev-q1", &cart("tok-q1", phone, checkout_at))
        .await;
    run_at(&app, checkout_at + 2 * H).await;
    let held = flow_texts(&app, phone).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].status, MessageStatus::Deferred);
    // 07:59 the next morning: still held. 08:00: sent.
    run_at(&app, checkout_at + 13 * H - 60_000).await;
    assert_eq!(flow_texts(&app, phone).await[0].status, MessageStatus::Deferred);
    run_at(&app, checkout_at + 13 * H).await;
    assert_eq!(flow_texts(&app, phone).await[0].status, MessageStatus::Delivered);
}

#[tokio::test]
async fn an_old_or_unticked_cart_starts_nothing() {
    let app = shopify_app().await;
    let t0 = app.clock_now();
    let old = "+12125550195";
    app.deliver_ok("checkouts/update", "ev-old", &cart("tok-old", old, t0 - 30 * H))
        .await;
    let unticked = "+12125550196";
    let mut checkout = cart("tok-unticked", unticked, t0);
    checkout["buyer_accepts_sms_marketing"] = json!(false);
    app.deliver_ok("checkouts/update", "ev-unticked", &checkout).await;
    run_at(&app, t0 + 80 * H).await;
    let store = &app.state.service.store;
    for phone in [old, unticked] {
        assert!(
            store.enrollments_of(MERCHANT, phone).await.unwrap().is_empty(),
            "{phone}"
        );
        assert!(flow_texts(&app, phone).await.is_empty(), "{phone}");
    }
}

#[tokio::test]
async fn a_keyword_sign_up_gets_the_welcome_after_its_confirmation() {
    let app = shopify_app().await;
    let phone = "+12125550161";
    let t0 = app.clock_now();
    // 07:00 in New York: the confirmation is a compliance text and goes at once; the welcome,
    // due half an hour later, is marketing and waits for 8:00.
    app.simulate(MERCHANT, phone, "JOIN").await;
    app.settle().await;
    let sent = app.sent_to(MERCHANT, phone).await;
    assert!(sent[0].body.contains("Reply HELP"), "{}", sent[0].body);
    run_at(&app, t0 + 30 * 60_000 - 1000).await;
    assert!(
        flow_texts(&app, phone).await.is_empty(),
        "not within 30 minutes of the JOIN"
    );
    run_at(&app, t0 + 30 * 60_000).await;
    let welcome = flow_texts(&app, phone).await;
    assert_eq!(welcome.len(), 1);
    assert_eq!(welcome[0].status, MessageStatus::Deferred, "quiet hours");
    run_at(&app, t0 + H).await;
    let welcome = flow_texts(&app, phone).await;
    assert_eq!(welcome[0].status, MessageStatus::Delivered);
    assert!(
        welcome[0].body.contains("Trailhead Outfitters")
            && welcome[0].body.contains("what are you shopping for?"),
        "{}",
        welcome[0].body
    );
    assert_eq!(exit_reason(&app, phone).await.as_deref(), Some("completed"));
}

#[tokio::test]
async fn a_delivered_order_gets_a_feedback_request_three_days_later() {
    let app = shopify_app().await;
    let phone = "+12125550162";
    let t0 = app.clock_now();
    // A customer who agreed to marketing texts at checkout, then ordered.
    let mut checkout = cart("tok-fb", phone, t0);
    checkout["completed_at"] = json!(rfc3339(t0));
    app.deliver_ok("checkouts/update", "ev-fb-c", &checkout).await;
    let mut order = order_for("tok-fb", phone, 88200);
    order["line_items"][0]["title"] = json!("Stormline 2.5L Rain Jacket");
    order["line_items"].as_array_mut().unwrap().truncate(1);
    app.deliver_ok("orders/create", "ev-fb-o", &order).await;
    // Shipped: nothing yet. Delivered: the request is due three days on.
    let mut shipment = sample("fulfillments_create");
    shipment["order_id"] = json!(88200);
    shipment["shipment_status"] = json!("in_transit");
    shipment["updated_at"] = json!(rfc3339(t0 + H));
    run_at(&app, t0 + H).await;
    app.deliver_ok("fulfillments/update", "ev-fb-f1", &shipment).await;
    shipment["shipment_status"] = json!("delivered");
    shipment["updated_at"] = json!(rfc3339(t0 + 2 * H));
    run_at(&app, t0 + 2 * H).await;
    app.deliver_ok("fulfillments/update", "ev-fb-f2", &shipment).await;
    run_at(&app, t0 + 2 * H + 72 * H - 60_000).await;
    assert!(flow_texts(&app, phone).await.is_empty(), "not before three days");
    run_at(&app, t0 + 2 * H + 72 * H).await;
    let texts = flow_texts(&app, phone).await;
    assert_eq!(texts.len(), 1);
    assert!(
        texts[0].body.contains("Stormline 2.5L Rain Jacket") && texts[0].body.contains("How is it"),
        "{}",
        texts[0].body
    );
    let store = &app.state.service.store;
    let flows: Vec<String> = store
        .enrollments_of(MERCHANT, phone)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.flow_id, e.exit_reason.unwrap_or_default()))
        .collect();
    assert_eq!(
        flows,
        ["feedback:completed"],
        "the completed cart started nothing"
    );
}

#[tokio::test]
async fn the_api_lists_flows_previews_a_step_and_shows_a_customers_enrollments() {
    use parley_server::store::UserRole;
    let app = shopify_app().await;
    let phone = "+12125550175";
    let t0 = app.clock_now();
    app.deliver_ok("checkouts/update", "ev-api-1", &cart("tok-api", phone, t0))
        .await;
    let admin = app.token(MERCHANT, "ana", UserRole::Admin).await;
    let agent = app.token(MERCHANT, "sam", UserRole::Agent).await;

    let listed: Value = app
        .get("/v1/merchants/trailhead/flows", &admin)
        .await
        .json()
        .await
        .unwrap();
    let cart_flow = listed["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "cart_recovery")
        .unwrap()
        .clone();
    assert_eq!(cart_flow["trigger"], "checkout_abandoned");
    let delays: Vec<i64> = cart_flow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["delay_seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(delays, [7200, 86_400, 172_800]);

    let preview = |body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.post_json(
                "/v1/merchants/trailhead/flows/cart_recovery/preview",
                &admin,
                body,
            )
            .await
        }
    };
    let shown = preview(json!({ "step": 1, "phone": phone })).await;
    assert_eq!(shown.status(), 200);
    let shown: Value = shown.json().await.unwrap();
    let body = shown["body"].as_str().unwrap();
    assert!(
        body.contains("Stormline 2.5L Rain Jacket") && body.ends_with("Reply STOP to opt out"),
        "{body}"
    );
    assert_eq!(shown["encoding"], "gsm7");
    assert_eq!(
        shown["characters"].as_u64().unwrap() as usize,
        body.chars().count()
    );
    assert!(shown["segments"].as_u64().unwrap() >= 1);
    // Without a customer: the fallbacks.
    let generic: Value = preview(json!({ "step": 1 })).await.json().await.unwrap();
    assert!(
        generic["body"].as_str().unwrap().contains("Hi there"),
        "{generic}"
    );
    // Bad input: a clear error, nothing changed.
    let missing = preview(json!({ "step": 4 })).await;
    assert_eq!(missing.status(), 400);
    assert!(missing.text().await.unwrap().contains("steps 1 to 3"));
    assert_eq!(preview(json!({ "step": 1, "phone": "12" })).await.status(), 400);
    let unknown = app
        .post_json(
            "/v1/merchants/trailhead/flows/nope/preview",
            &admin,
            json!({ "step": 1 }),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    let as_agent = app
        .post_json(
            "/v1/merchants/trailhead/flows/cart_recovery/preview",
            &agent,
            json!({ "step": 1 }),
        )
        .await;
    assert_eq!(as_agent.status(), 403);

    let enrollments: Value = app
        .get(
            &format!(
                "/v1/merchants/trailhead/flows/enrollments?phone=%2B{}",
                &phone[1..]
            ),
            &agent,
        )
        .await
        .json()
        .await
        .unwrap();
    let enrollments = enrollments["enrollments"].as_array().unwrap();
    assert_eq!(enrollments.len(), 1);
    assert_eq!(enrollments[0]["flow"], "cart_recovery");
    assert_eq!(enrollments[0]["status"], "active");
    assert_eq!(enrollments[0]["subject"], "checkout:tok-api");
}

#[tokio::test]
async fn the_tours_cart_stamped_now_starts_cart_recovery() {
    let app = shopify_app().await;
    let file = parley_testkit::workspace_root().join("fixtures/shopify/tour/checkouts_update.json");
    let body = parley_server::shopify::stamp_now(&std::fs::read(&file).unwrap(), app.clock_now()).unwrap();
    let triggered_at = rfc3339(app.clock_now());
    let replay = parley_server::shopify::Replay {
        base_url: &app.addr,
        secret: "shpss_test_app_secret",
        shop: "trailhead-demo.myshopify.com",
        topic: "checkouts/update",
        event_id: "tour-1",
        triggered_at: &triggered_at,
    };
    assert_eq!(replay.send(&app.client, body).await.unwrap().status(), 200);
    app.settle().await;
    let phone = "+12025550123";
    let store = &app.state.service.store;
    let enrollments = store.enrollments_of(MERCHANT, phone).await.unwrap();
    assert_eq!(enrollments.len(), 1);
    assert_eq!(enrollments[0].subject, "checkout:tour-cart-1");
    // 12:00 UTC is 07:00 in Washington: the reminder is made at +2 h, 09:00 there, and goes.
    run_at(&app, app.clock_now() + 2 * H).await;
    let texts = flow_texts(&app, phone).await;
    assert_eq!(texts.len(), 1);
    assert!(
        texts[0].body.starts_with("Hi John, it's Trailhead Outfitters."),
        "{}",
        texts[0].body
    );
}

#[tokio::test]
async fn segments_count_and_list_their_members_live() {
    use parley_server::store::UserRole;
    let app = shopify_app().await;
    let phone = "+12125550177";
    let t0 = app.clock_now();
    app.deliver_ok("checkouts/update", "ev-seg-1", &cart("tok-seg", phone, t0))
        .await;
    let admin = app.token(MERCHANT, "ana", UserRole::Admin).await;
    let count_of = |listed: &Value, id: &str| {
        listed["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["count"]
            .as_i64()
            .unwrap()
    };
    // Thirty minutes in, the cart is not yet abandoned (1-2 h old); at 90 minutes it is.
    app.clock.advance(Duration::from_secs(30 * 60));
    let listed: Value = app
        .get("/v1/merchants/trailhead/segments", &admin)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "new_customers",
            "repeat_buyers",
            "cart_abandoners",
            "inactive",
            "vip"
        ]
    );
    assert_eq!(count_of(&listed, "cart_abandoners"), 0);
    app.clock.advance(Duration::from_secs(60 * 60));
    let listed: Value = app
        .get("/v1/merchants/trailhead/segments", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count_of(&listed, "cart_abandoners"), 1);
    let members: Value = app
        .get("/v1/merchants/trailhead/segments/cart_abandoners/members", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["count"], 1);
    assert_eq!(members["members"][0]["phone"], phone);
    let bad = app
        .get(
            "/v1/merchants/trailhead/segments/cart_abandoners/members?limit=0",
            &admin,
        )
        .await;
    assert_eq!(bad.status(), 400);
    let unknown = app
        .get("/v1/merchants/trailhead/segments/nope/members", &admin)
        .await;
    assert_eq!(unknown.status(), 404);
}
