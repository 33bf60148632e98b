//! The store's own rules, against a real SQLite file: unknown values are errors, the ledger is append-only, a decision commits once.

use super::*;

/// The customer's first text (its provider id makes a second receipt a duplicate).
const STOP: NewInbound<'static> = NewInbound {
    merchant_id: "shop",
    phone: "+15551112222",
    body: "STOP",
    channel: "test",
    provider_sid: Some("SM1"),
    num_media: 0,
};

async fn store_with_a_customer() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("parley.db")).await.unwrap();
    let merchant = Merchant {
        id: "shop".into(),
        name: "Shop".into(),
        sms_number: Some("+15550000000".into()),
        knowledge_dir: None,
        support_email: None,
        support_hours: None,
        shop_domain: None,
        timezone: None,
    };
    store.upsert_merchant(&merchant, 1).await.unwrap();
    let Received::New { message_id, .. } = store.receive(&STOP, 2).await.unwrap() else {
        panic!("first receipt is new");
    };
    (dir, store, message_id)
}

/// A decision for the stored message that changes nothing yet; tests add what they decide.
async fn decision_for(store: &Store, message_id: i64) -> DecisionRecord {
    let pending = store.pending_inbound(message_id).await.unwrap().unwrap();
    DecisionRecord {
        message_id,
        conversation_id: pending.conversation_id,
        state: pending.state,
        consent: None,
        marketing_signup: false,
        reply: None,
        escalation: None,
    }
}

#[tokio::test]
async fn an_unknown_value_in_the_database_is_an_error_not_a_default() {
    let (_dir, store, message_id) = store_with_a_customer().await;
    let pending = store.pending_inbound(message_id).await.unwrap().unwrap();
    let transcript = store.transcript("shop", pending.conversation_id).await.unwrap();
    assert_eq!(transcript[0].author, Author::Customer);
    // The schema's CHECK refuses the value; a database written by a newer Parley (with an
    // author this one does not know) is what the pragma stands in for.
    let mut writer = store.writer.acquire().await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *writer)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET author = 'robot' WHERE id = ?")
        .bind(message_id)
        .execute(&mut *writer)
        .await
        .unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = OFF")
        .execute(&mut *writer)
        .await
        .unwrap();
    drop(writer);
    // Once an unknown author read as the customer; now the row is refused, naming the column.
    let err = store
        .transcript("shop", pending.conversation_id)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("author"), "{err}");
}

#[tokio::test]
async fn the_consent_ledger_refuses_updates_and_deletes() {
    let (_dir, store, message_id) = store_with_a_customer().await;
    let record = DecisionRecord {
        consent: Some((ConsentAction::OptOut, "STOP".into())),
        marketing_signup: false,
        ..decision_for(&store, message_id).await
    };
    store.record_decision(&record, 3).await.unwrap();
    assert_eq!(store.consent_ledger("shop").await.unwrap().len(), 1);
    for sql in [
        "UPDATE consent_events SET action = 'opt_in'",
        "DELETE FROM consent_events",
    ] {
        let err = sqlx::query(sql).execute(&store.writer).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(
        store.consent_ledger("shop").await.unwrap()[0].action,
        ConsentAction::OptOut
    );
}

#[tokio::test]
async fn a_message_is_decided_once_and_a_sid_stored_once() {
    let (_dir, store, message_id) = store_with_a_customer().await;
    assert_eq!(store.receive(&STOP, 5).await.unwrap(), Received::Duplicate);
    let record = DecisionRecord {
        reply: Some((Author::Ai, "hello".into())),
        ..decision_for(&store, message_id).await
    };
    assert!(store.record_decision(&record, 6).await.unwrap().is_some());
    assert!(matches!(
        store.record_decision(&record, 7).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count(CountOf::Outbound).await.unwrap(), 1);
    assert!(store.pending_inbound(message_id).await.unwrap().is_none());
}

#[test]
fn delivery_statuses_only_move_forward() {
    use MessageStatus::*;
    // The provider's words, and the one that collides with Parley's own `sending`.
    assert_eq!(MessageStatus::from_provider("delivered"), Some(Delivered));
    assert_eq!(MessageStatus::from_provider("sending"), Some(SendingProvider));
    assert_eq!(MessageStatus::from_provider("partially_delivered"), None);
    assert_eq!(SendingProvider.as_str(), "sending_provider");

    assert!(Queued.may_move_to(Sent));
    assert!(Sent.may_move_to(Delivered));
    assert!(Queued.may_move_to(Failed));
    assert!(Delivered.may_move_to(Read), "read receipts follow delivery");
    // A late or replayed callback never moves a message back or off a final status.
    assert!(!Sent.may_move_to(Queued));
    assert!(!Delivered.may_move_to(Undelivered));
    assert!(!Failed.may_move_to(Delivered));
    assert!(!Suppressed.may_move_to(Sent), "a suppressed text was never sent");
    assert!(!Unknown.may_move_to(Delivered));
}

#[tokio::test]
async fn escalation_writes_are_conditional_on_the_rows_state() {
    let (_dir, store, message_id) = store_with_a_customer().await;
    let record = DecisionRecord {
        escalation: Some(NewEscalation {
            reason: "human_request".into(),
            reason_detail: "asked for a person".into(),
            summary: String::new(),
            suggested_reply: None,
            due_at: 10,
        }),
        ..decision_for(&store, message_id).await
    };
    store.record_decision(&record, 3).await.unwrap();
    let id = store.escalations("shop", EscalationStatus::ACTIVE).await.unwrap()[0].id;
    let ana = store
        .create_user("shop", "ana", UserRole::Agent, "h1", 4)
        .await
        .unwrap();
    let ben = store
        .create_user("shop", "ben", UserRole::Agent, "h2", 4)
        .await
        .unwrap();

    assert!(store.claim("shop", id, ana.id, 5).await.unwrap());
    assert!(
        store.claim("shop", id, ana.id, 6).await.unwrap(),
        "re-claim by the holder"
    );
    assert!(
        !store.claim("shop", id, ben.id, 7).await.unwrap(),
        "held by someone else"
    );
    assert!(
        !store.claim("other", id, ana.id, 7).await.unwrap(),
        "another merchant's"
    );
    let held = store.escalation("shop", id).await.unwrap();
    assert_eq!((held.assignee_id, held.claimed_at), (Some(ana.id), Some(5)));

    assert!(store.reassign("shop", id, ben.id, 8).await.unwrap());
    assert!(store.resolve("shop", id, 9).await.unwrap());
    assert!(!store.resolve("shop", id, 10).await.unwrap(), "resolved once");
    assert!(!store.reassign("shop", id, ana.id, 11).await.unwrap());
    assert!(!store.claim("shop", id, ben.id, 12).await.unwrap());
    let done = store.escalation("shop", id).await.unwrap();
    assert_eq!(
        (done.status, done.resolved_at),
        (EscalationStatus::Resolved, Some(9))
    );
}
