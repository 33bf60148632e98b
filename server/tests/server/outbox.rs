//! The outbox on the real server: every send asks the policy, the answer is recorded, and a
//! deferred send goes at its minute (the sweeper, the injected clock).

use parley_server::store::MessageStatus;

use crate::helpers::*;

/// A Florida number; the test clock's T0 (12:00 UTC) is 07:00 in Miami, before 8:00.
const FLORIDA: &str = "+13055550177";

#[tokio::test]
async fn a_reply_held_to_quiet_hours_waits_for_eight_and_then_goes() {
    let app = spawn_app_tweaked(Channel::Simulator, |settings| {
        settings.outbox.conversational_quiet_hours = true;
    })
    .await;
    app.simulate("trailhead", FLORIDA, "how long does standard shipping take?")
        .await;
    app.settle().await;
    let sent = app.sent_to("trailhead", FLORIDA).await;
    let reply = sent.last().expect("a reply was written");
    assert_eq!(reply.status, MessageStatus::Deferred, "{reply:?}");
    let store = &app.state.service.store;
    let decisions = store.send_decisions(reply.id).await.unwrap();
    assert_eq!(decisions.len(), 1);
    let decision = &decisions[0];
    assert_eq!(
        (decision.verdict.as_str(), decision.reason.as_deref()),
        ("defer", Some("quiet_hours"))
    );
    // 08:00 in Miami (EST, UTC-5) is 13:00 UTC, an hour after T0.
    assert_eq!(decision.until, Some(T0 + 3_600_000));

    // A sweep before its minute sends nothing...
    app.clock.advance(std::time::Duration::from_secs(59 * 60));
    app.state.service.resume_stale().await.unwrap();
    app.settle().await;
    assert_eq!(app.message(reply.id).await.status, MessageStatus::Deferred);
    // ...one at 8:00 does, once.
    app.clock.advance(std::time::Duration::from_secs(60));
    app.state.service.resume_stale().await.unwrap();
    app.settle().await;
    app.state.service.resume_stale().await.unwrap();
    app.settle().await;
    let delivered = app.message(reply.id).await;
    assert_ne!(delivered.status, MessageStatus::Deferred);
    assert_ne!(delivered.status, MessageStatus::Suppressed);
    let decisions = store.send_decisions(reply.id).await.unwrap();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert_eq!(decisions[1].verdict, "allow");
}

#[tokio::test]
async fn by_default_replies_are_not_held_and_every_send_is_recorded() {
    let app = spawn_app(Channel::Simulator).await;
    app.simulate("trailhead", FLORIDA, "how long does standard shipping take?")
        .await;
    app.settle().await;
    let sent = app.sent_to("trailhead", FLORIDA).await;
    let reply = sent.last().expect("a reply");
    assert_ne!(reply.status, MessageStatus::Deferred);
    let decisions = app.state.service.store.send_decisions(reply.id).await.unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].verdict, "allow");
}

#[tokio::test]
async fn a_stop_confirmation_is_always_allowed_and_recorded() {
    let app = spawn_app(Channel::Simulator).await;
    app.simulate("trailhead", FLORIDA, "STOP").await;
    app.settle().await;
    let store = &app.state.service.store;
    let confirmation = app.sent_to("trailhead", FLORIDA).await.last().unwrap().clone();
    assert_eq!(
        store.send_decisions(confirmation.id).await.unwrap()[0].verdict,
        "allow"
    );
    assert!(
        store
            .customer_by_phone("trailhead", FLORIDA)
            .await
            .unwrap()
            .unwrap()
            .opted_out
    );
}
