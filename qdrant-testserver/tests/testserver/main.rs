//! The test server through qdrant-client, as the knowledge backend uses it: filters are the
//! engine's (a filtered search never sees other points), sparse scores carry the engine's
//! IDF, pages and facets add up, and what is not served says so.

use std::collections::HashMap;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FacetCountsBuilder, FieldType, Filter, KeywordIndexParamsBuilder,
    Modifier, NamedVectors, PointStruct, Query, QueryBatchPointsBuilder, QueryPointsBuilder,
    ScrollPointsBuilder, SearchPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, Vector, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
};
use tonic::Code;

const COLLECTION: &str = "things";

fn client(server: &parley_qdrant_testserver::TestServer) -> Qdrant {
    Qdrant::from_url(&server.url())
        .skip_compatibility_check()
        .build()
        .unwrap()
}

/// Six points, three per tenant: dense vectors along the axes, sparse terms 1 (everywhere),
/// 2 (tenant a only) and 3 (one point).
async fn seeded(client: &Qdrant) {
    let mut dense = VectorsConfigBuilder::default();
    dense.add_named_vector_params("dense", VectorParamsBuilder::new(3, Distance::Cosine));
    let mut sparse = SparseVectorsConfigBuilder::default();
    sparse.add_named_vector_params(
        "lexical",
        SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
    );
    client
        .create_collection(
            CreateCollectionBuilder::new(COLLECTION)
                .vectors_config(dense)
                .sparse_vectors_config(sparse),
        )
        .await
        .unwrap();
    client
        .create_field_index(
            CreateFieldIndexCollectionBuilder::new(COLLECTION, "tenant", FieldType::Keyword)
                .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true))
                .wait(true),
        )
        .await
        .unwrap();
    let points: Vec<PointStruct> = (0..6u64)
        .map(|i| {
            let tenant = if i < 3 { "a" } else { "b" };
            let mut axis = vec![0.0; 3];
            axis[(i % 3) as usize] = 1.0;
            let (indices, values) = match (tenant, i) {
                (_, 0) => (vec![1, 2, 3], vec![1.0, 1.0, 1.0]),
                ("a", _) => (vec![1, 2], vec![1.0, 1.0]),
                _ => (vec![1], vec![1.0]),
            };
            let vectors = NamedVectors::default()
                .add_vector("dense", Vector::new_dense(axis))
                .add_vector("lexical", Vector::new_sparse(indices, values));
            let payload = serde_json::json!({ "tenant": tenant, "n": i, "tags": [format!("t{i}"), "all"] });
            PointStruct::new(i, vectors, qdrant_client::Payload::try_from(payload).unwrap())
        })
        .collect();
    client
        .upsert_points(UpsertPointsBuilder::new(COLLECTION, points).wait(true))
        .await
        .unwrap();
}

fn tenant(name: &str) -> Filter {
    Filter::must([Condition::matches("tenant", name.to_owned())])
}

fn ids(points: &[qdrant_client::qdrant::ScoredPoint]) -> Vec<String> {
    points
        .iter()
        .map(|p| format!("{:?}", p.id.as_ref().unwrap().point_id_options.as_ref().unwrap()))
        .collect()
}

#[tokio::test]
async fn filters_scores_pages_and_facets_come_from_the_engine() {
    let server = parley_qdrant_testserver::spawn().await;
    let client = client(&server);
    client.health_check().await.unwrap();
    assert!(!client.collection_exists(COLLECTION).await.unwrap());
    seeded(&client).await;
    assert!(client.collection_exists(COLLECTION).await.unwrap());

    // Dense search within tenant b: the nearest point overall (0, tenant a) is not there.
    let dense = client
        .query(
            QueryPointsBuilder::new(COLLECTION)
                .query(Query::new_nearest(VectorInput::new_dense(vec![1.0, 0.1, 0.0])))
                .using("dense")
                .filter(tenant("b"))
                .limit(10)
                .with_payload(true),
        )
        .await
        .unwrap()
        .result;
    assert_eq!(ids(&dense), vec!["Num(3)", "Num(4)", "Num(5)"]);
    assert!(
        (dense[0].score - 1.0 / 1.01f32.sqrt()).abs() < 1e-4,
        "cosine {}",
        dense[0].score
    );
    assert_eq!(dense[0].payload["tenant"].as_str().map(String::as_str), Some("b"));

    // Sparse search: the rarer term 3 outweighs the common term 1 (IDF), and only matching
    // points come back.
    let batch = client
        .query_batch(QueryBatchPointsBuilder::new(
            COLLECTION,
            vec![
                QueryPointsBuilder::new(COLLECTION)
                    .query(Query::new_nearest(VectorInput::new_sparse(
                        vec![1, 3],
                        vec![1.0, 1.0],
                    )))
                    .using("lexical")
                    .limit(2)
                    .with_vectors(qdrant_client::qdrant::VectorsSelector {
                        names: vec!["dense".to_owned()],
                    })
                    .build(),
                QueryPointsBuilder::new(COLLECTION)
                    .filter(Filter::must([Condition::matches(
                        "tags",
                        vec!["t4".to_owned(), "t5".to_owned()],
                    )]))
                    .limit(10)
                    .build(),
            ],
        ))
        .await
        .unwrap()
        .result;
    let (lexical, tagged) = (&batch[0].result, &batch[1].result);
    assert_eq!(ids(lexical)[0], "Num(0)");
    assert!(lexical[0].score > 2.0 * lexical[1].score, "{lexical:?}");
    assert!(
        lexical[0]
            .vectors
            .as_ref()
            .unwrap()
            .get_vector_by_name("dense")
            .is_some()
    );
    assert_eq!(ids(tagged), vec!["Num(4)", "Num(5)"]);

    // Counts, pages and facets.
    let count = |filter: Filter| {
        let client = &client;
        async move {
            client
                .count(CountPointsBuilder::new(COLLECTION).filter(filter).exact(true))
                .await
                .unwrap()
                .result
                .unwrap()
                .count
        }
    };
    assert_eq!(count(tenant("a")).await, 3);
    let first = client
        .scroll(ScrollPointsBuilder::new(COLLECTION).limit(4).with_payload(false))
        .await
        .unwrap();
    let next = first.next_page_offset.clone().expect("a second page");
    let second = client
        .scroll(ScrollPointsBuilder::new(COLLECTION).limit(4).offset(next))
        .await
        .unwrap();
    assert_eq!((first.result.len(), second.result.len()), (4, 2));
    assert!(first.result[0].payload.is_empty() && !second.result[0].payload.is_empty());
    let facets = client
        .facet(FacetCountsBuilder::new(COLLECTION, "tenant").exact(true))
        .await
        .unwrap();
    let facets: HashMap<String, u64> = facets
        .hits
        .into_iter()
        .map(|hit| (format!("{:?}", hit.value.unwrap().variant.unwrap()), hit.count))
        .collect();
    assert_eq!(facets[r#"StringValue("a")"#], 3);
    assert_eq!(facets[r#"StringValue("b")"#], 3);

    // Deletes by filter (tenant a except point 1) and by id.
    let stale = Filter {
        must: vec![Condition::matches("tenant", "a".to_owned())],
        must_not: vec![Condition::has_id([1u64])],
        ..Default::default()
    };
    client
        .delete_points(DeletePointsBuilder::new(COLLECTION).points(stale).wait(true))
        .await
        .unwrap();
    assert_eq!(count(tenant("a")).await, 1);
    client
        .delete_points(
            DeletePointsBuilder::new(COLLECTION)
                .points(qdrant_client::qdrant::PointsIdsList {
                    ids: vec![3u64.into()],
                })
                .wait(true),
        )
        .await
        .unwrap();
    assert_eq!(count(tenant("b")).await, 2);

    client.delete_collection(COLLECTION).await.unwrap();
    assert!(!client.collection_exists(COLLECTION).await.unwrap());
}

#[tokio::test]
async fn what_is_not_served_says_so() {
    let server = parley_qdrant_testserver::spawn().await;
    let client = client(&server);
    let status = |err: qdrant_client::QdrantError| match err {
        qdrant_client::QdrantError::ResponseError { status } => status,
        other => panic!("expected a gRPC status, got {other}"),
    };
    let missing = client.collection_info(COLLECTION).await.unwrap_err();
    assert_eq!(status(missing).code(), Code::NotFound);
    seeded(&client).await;
    let again = client
        .create_collection(CreateCollectionBuilder::new(COLLECTION))
        .await
        .unwrap_err();
    assert_eq!(status(again).code(), Code::AlreadyExists);
    let old_api = client
        .search_points(SearchPointsBuilder::new(COLLECTION, vec![1.0, 0.0, 0.0], 3))
        .await
        .unwrap_err();
    assert_eq!(status(old_api).code(), Code::Unimplemented);
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_restarts_with_its_data() {
    let mut server = parley_qdrant_testserver::spawn().await;
    let client = client(&server);
    seeded(&client).await;
    server.stop().await;
    assert!(client.health_check().await.is_err());
    server.restart().await;
    let count = client
        .count(CountPointsBuilder::new(COLLECTION).exact(true))
        .await
        .unwrap();
    assert_eq!(count.result.unwrap().count, 6);
}
