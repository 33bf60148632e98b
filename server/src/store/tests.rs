//! The store's own rules, against a real SQLite file: unknown values are errors, the ledger is append-only, a decision commits once.

use super::*;

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
    };
    store.upsert_merchant(&merchant, 1).await.unwrap();
    let inbound = NewInbound {
        merchant_id: "shop",
        phone: "+15551112222",
        body: "STOP",
        channel: "test",
        provider_sid: Some("SM1"),
        num_media: 0,
    };
    let Received::New { message_id, .. } = store.receive(&inbound, 2).await.unwrap() else {
        panic!("first receipt is new");
    };
    (dir, store, message_id)
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
    let pending = store.pending_inbound(message_id).await.unwrap().unwrap();
    let record = DecisionRecord {
        message_id,
        conversation_id: pending.conversation_id,
        state: pending.state,
        consent: Some((ConsentAction::OptOut, "STOP".into())),
        reply: None,
        escalation: None,
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
    let again = NewInbound {
        merchant_id: "shop",
        phone: "+15551112222",
        body: "STOP",
        channel: "test",
        provider_sid: Some("SM1"),
        num_media: 0,
    };
    assert_eq!(store.receive(&again, 5).await.unwrap(), Received::Duplicate);
    let pending = store.pending_inbound(message_id).await.unwrap().unwrap();
    let record = DecisionRecord {
        message_id,
        conversation_id: pending.conversation_id,
        state: pending.state,
        consent: None,
        reply: Some((Author::Ai, "hello".into())),
        escalation: None,
    };
    assert!(store.record_decision(&record, 6).await.unwrap().is_some());
    assert!(matches!(
        store.record_decision(&record, 7).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count(CountOf::Outbound).await.unwrap(), 1);
    assert!(store.pending_inbound(message_id).await.unwrap().is_none());
}
