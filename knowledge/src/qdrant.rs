//! The Qdrant knowledge index, for deployments with more merchants or chunks than one
//! process should hold: every merchant's chunks in one Qdrant collection, reached over gRPC
//! with qdrant-client, and searched exactly like the embedded index.
//!
//! Layout. One collection (multitenancy as Qdrant recommends), a keyword payload index on
//! `merchant_id` with `is_tenant`, and every read, count and delete filtered by it. A point
//! is one chunk: its id a UUID derived from merchant and chunk id (so re-ingests upsert in
//! place), a named dense vector `dense` (cosine), a named sparse vector `lexical` (IDF
//! modifier), and as payload the whole [`Chunk`] plus `model_id`, the chunk's SKUs (`skus`,
//! keyword-indexed) and the average length its lexical weights were computed with.
//!
//! Search is one round trip: a batch of a dense query, a sparse query and, when the question
//! contains codes, an exact SKU lookup, fused here with the crate's own
//! [`reciprocal_rank_fusion`] and [`promote_exact`]. Server-side RRF would return only fused
//! scores, and the agent needs each hit's cosine and BM25 score. The lexical side is BM25 as
//! the embedded index computes it: the same analyzer ([`crate::lexical`]), documents weighted
//! `tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))`, queries weight 1 per term, and Qdrant's
//! IDF modifier multiplies in `ln(1 + (N − n + 0.5)/(n + 0.5))` at query time. Lexical-only
//! and SKU-only hits come back with their dense vector, so they still get their true cosine.
//!
//! Where it cannot match the embedded index exactly, and why:
//! - Qdrant counts IDF over the whole collection, not per merchant: words common across
//!   stores weigh as they do within one, words peculiar to one store weigh somewhat more.
//! - The average chunk length is the merchant's at the time a chunk was written. A re-ingest
//!   rewrites only new and changed chunks unless the average moved by more than
//!   [`AVG_LEN_TOLERANCE`] (5%), when it rewrites all of them; within that tolerance an
//!   unchanged chunk's lexical weights are at most about 3% off the exact ones.
//! - A replace is an upsert then a delete, not one atomic swap: Qdrant has no multi-operation
//!   transactions. Readers in between see the new chunks plus the ones about to go, never an
//!   empty merchant; a failed replace leaves a mix that the next ingest repairs.
//! - A merchant is known while it has points, so ingesting zero chunks forgets it.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use backon::Retryable as _;
use qdrant_client::qdrant::{
    self as pb, Condition, CountPoints, CreateCollection, CreateFieldIndexCollection, DeletePoints,
    FacetCounts, FieldType, Filter, KeywordIndexParams, NamedVectors, PointId, PointStruct, PointsSelector,
    Query, QueryBatchPoints, QueryPoints, ScrollPoints, SparseVectorConfig, SparseVectorParams, UpsertPoints,
    Vector, VectorInput, VectorParams, VectorParamsMap, VectorsConfig, WithPayloadSelector,
    WithVectorsSelector,
};
use qdrant_client::{Qdrant, QdrantError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::chunk::Chunk;
use crate::error::{KnowledgeError, Result};
use crate::index::{
    Export, IndexedChunk, KnowledgeIndex, SearchHit, SearchQuery, check_replacement, promote_exact,
    reciprocal_rank_fusion,
};
use crate::lexical::{self, SparseTerms};
use crate::merchant::MerchantId;
use parley_core::{RetryPolicy, deserialize_duration};

/// The collection Parley uses unless told otherwise.
pub const DEFAULT_COLLECTION: &str = "parley_knowledge";

/// How far the merchant's average chunk length may drift from the one a chunk's lexical
/// weights were computed with before a re-ingest rewrites every chunk.
pub const AVG_LEN_TOLERANCE: f32 = 0.05;

const DENSE: &str = "dense";
const LEXICAL: &str = "lexical";
const MERCHANT_KEY: &str = "merchant_id";
const SKUS_KEY: &str = "skus";
const MODEL_KEY: &str = "model_id";
const HASH_KEY: &str = "content_hash";
const AVG_LEN_KEY: &str = "lexical_avg_len";

/// Candidates each side contributes to fusion: the same depth as the embedded index.
const CANDIDATES_PER_SIDE: usize = 50;
/// Points per upsert request: about 2 KB each, far below gRPC message limits.
const UPSERT_BATCH: usize = 256;
const SCROLL_PAGE: u32 = 1024;
/// Merchants listed at most; a facet needs a limit.
const MAX_MERCHANTS: u64 = 1_000_000;
/// Transient failures are retried this many times, waiting 100 ms, 200 ms, 400 ms.
const RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(100),
    max_delay: Duration::from_secs(2),
    max_retries: 3,
};

/// Where and how to reach Qdrant. Durations read as milliseconds or with a unit (`"5s"`).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantConfig {
    /// The gRPC endpoint, e.g. `http://127.0.0.1:6334` (https for Qdrant Cloud).
    pub url: String,
    /// Sent as the `api-key` header; a local Qdrant usually needs none.
    pub api_key: Option<String>,
    pub collection: String,
    /// For one request, connecting included.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    pub connect_timeout: Duration,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:6334".to_owned(),
            api_key: None,
            collection: DEFAULT_COLLECTION.to_owned(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl QdrantConfig {
    /// The defaults, at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

// Written by hand so that the API key never reaches a log line.
impl std::fmt::Debug for QdrantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("collection", &self.collection)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Merchants' chunks in one Qdrant collection. Cheap to share; the client pools connections.
pub struct QdrantIndex {
    client: Qdrant,
    config: QdrantConfig,
}

impl std::fmt::Debug for QdrantIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantIndex")
            .field("config", &self.config)
            .finish()
    }
}

/// Why one call to Qdrant failed: worth retrying, or not.
enum Failure {
    /// Qdrant could not be reached or did not answer in time.
    Transient(QdrantError),
    /// The collection does not exist.
    NoCollection,
    Other(QdrantError),
}

impl Failure {
    fn classify(err: QdrantError) -> Self {
        if is_transient(&err) {
            Self::Transient(err)
        } else if is_missing_collection(&err) {
            Self::NoCollection
        } else {
            Self::Other(err)
        }
    }
}

/// Qdrant could not be reached or did not answer in time: worth another try.
fn is_transient(err: &QdrantError) -> bool {
    match err {
        QdrantError::ResponseError { status } => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => true,
            // qdrant-client reports a failed connection attempt as Internal.
            Code::Internal => status.message().starts_with("Failed to connect"),
            Code::Unknown => status.message().contains("transport error"),
            _ => false,
        },
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => true,
        _ => false,
    }
}

fn is_missing_collection(err: &QdrantError) -> bool {
    match err {
        QdrantError::ResponseError { status } => {
            status.code() == Code::NotFound && status.message().contains("Collection")
        }
        _ => false,
    }
}

/// The message of a client error without its gRPC metadata.
fn describe(err: &QdrantError) -> String {
    match err {
        QdrantError::ResponseError { status } | QdrantError::ResourceExhaustedError { status, .. } => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

/// The merchant's points and nothing else.
fn merchant_condition(merchant: &MerchantId) -> Condition {
    Condition::matches(MERCHANT_KEY, merchant.as_str().to_owned())
}

fn merchant_filter(merchant: &MerchantId) -> Filter {
    Filter::must([merchant_condition(merchant)])
}

/// A chunk's point id: a UUID from the merchant and chunk ids, so the same chunk always
/// lands on the same point and two merchants' chunks never share one.
pub fn point_id(merchant: &MerchantId, chunk_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(merchant.as_str())
        .chain_update([0])
        .chain_update(chunk_id)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Version 8 (custom) and the RFC 4122 variant, so it is a well-formed UUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn point_key(id: Option<&PointId>) -> Option<String> {
    use pb::point_id::PointIdOptions;
    match id?.point_id_options.as_ref()? {
        PointIdOptions::Uuid(uuid) => Some(uuid.clone()),
        PointIdOptions::Num(num) => Some(num.to_string()),
    }
}

fn payload_fields(fields: &[&str]) -> Option<WithPayloadSelector> {
    Some(fields.to_vec().into())
}

fn dense_vectors() -> Option<WithVectorsSelector> {
    Some(vec![DENSE].into())
}

fn string_field(payload: &HashMap<String, pb::Value>, key: &str) -> Option<String> {
    match payload.get(key)?.kind.as_ref()? {
        pb::value::Kind::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

fn number_field(payload: &HashMap<String, pb::Value>, key: &str) -> Option<f64> {
    match payload.get(key)?.kind.as_ref()? {
        pb::value::Kind::DoubleValue(value) => Some(*value),
        pb::value::Kind::IntegerValue(value) => Some(*value as f64),
        _ => None,
    }
}

fn dense_vector(vectors: Option<pb::VectorsOutput>) -> Option<Vec<f32>> {
    match vectors?.get_vector_by_name(DENSE)? {
        pb::vector_output::Vector::Dense(dense) => Some(dense.data),
        _ => None,
    }
}

fn chunk_from_payload(payload: HashMap<String, pb::Value>) -> Result<Chunk> {
    let json = serde_json::Value::from(qdrant_client::Payload::from(payload));
    serde_json::from_value(json)
        .map_err(|err| KnowledgeError::Index(format!("Qdrant point is not a Parley chunk: {err}")))
}

fn cosine(a: &[f32], b: &[f32]) -> Option<f32> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    (denominator > 0.0).then(|| dot / denominator)
}

fn sparse_vector(terms: SparseTerms) -> Vector {
    Vector::new_sparse(terms.indices, terms.values)
}

impl QdrantIndex {
    /// A client for `config`; nothing is sent until the first call, so a Qdrant that is down
    /// at start-up shows in [`KnowledgeIndex::ready`], not here.
    pub fn new(config: QdrantConfig) -> Result<Self> {
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key.clone())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|err| KnowledgeError::Index(format!("Qdrant URL {:?}: {err}", config.url)))?;
        Ok(Self { client, config })
    }

    pub fn config(&self) -> &QdrantConfig {
        &self.config
    }

    fn collection(&self) -> String {
        self.config.collection.clone()
    }

    /// One call to Qdrant, retried with exponential backoff while Qdrant is unreachable.
    async fn call<T, F, Fut>(&self, what: &str, operation: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        let url = &self.config.url;
        operation
            .retry(RETRY.backoff())
            .sleep(tokio::time::sleep)
            .when(is_transient)
            .notify(|err, backoff| {
                tracing::warn!(
                    url = %url,
                    operation = what,
                    error = %describe(err),
                    backoff_ms = backoff.as_millis() as u64,
                    "Qdrant call failed; retrying"
                );
            })
            .await
            .map_err(Failure::classify)
    }

    /// The error a caller sees for a failure other than a missing collection.
    fn error(&self, what: &str, failure: Failure) -> KnowledgeError {
        match failure {
            Failure::Transient(err) => KnowledgeError::Unavailable(format!(
                "Qdrant at {} is unreachable ({what}, after {} retries): {}",
                self.config.url,
                RETRY.max_retries,
                describe(&err)
            )),
            Failure::NoCollection => KnowledgeError::Index(format!(
                "Qdrant collection {:?} does not exist ({what})",
                self.config.collection
            )),
            Failure::Other(err) => KnowledgeError::Index(format!(
                "Qdrant at {} ({what}): {}",
                self.config.url,
                describe(&err)
            )),
        }
    }

    /// Makes sure the collection exists with a `dimension`-sized dense vector, creating it and
    /// its payload indexes on first use.
    async fn ensure_collection(&self, dimension: usize) -> Result<()> {
        let collection = self.collection();
        let exists = self
            .call("collection exists", || {
                self.client.collection_exists(collection.clone())
            })
            .await
            .map_err(|f| self.error("collection exists", f))?;
        if !exists {
            match self.create_collection(dimension).await {
                Ok(()) => return Ok(()),
                // Another process created it meanwhile: check it like any existing one.
                Err(Failure::Other(err)) if is_already_exists(&err) => {}
                Err(failure) => return Err(self.error("create collection", failure)),
            }
        }
        let existing = self.dense_dimension().await?;
        match existing {
            Some(size) if size == dimension => Ok(()),
            Some(size) => Err(KnowledgeError::Index(format!(
                "Qdrant collection {collection:?} holds {size}-dimensional vectors but the embedding model makes \
                 {dimension}-dimensional ones; use another collection or delete this one and re-ingest every merchant"
            ))),
            None => Err(KnowledgeError::Index(format!(
                "Qdrant collection {collection:?} has no dense vector named {DENSE:?}: it was not created by Parley"
            ))),
        }
    }

    async fn create_collection(&self, dimension: usize) -> Result<(), Failure> {
        let collection = self.collection();
        let vectors = VectorParamsMap {
            map: HashMap::from([(
                DENSE.to_owned(),
                VectorParams {
                    size: dimension as u64,
                    distance: pb::Distance::Cosine.into(),
                    ..Default::default()
                },
            )]),
        };
        let sparse = SparseVectorConfig {
            map: HashMap::from([(
                LEXICAL.to_owned(),
                SparseVectorParams {
                    modifier: Some(pb::Modifier::Idf.into()),
                    ..Default::default()
                },
            )]),
        };
        let request = CreateCollection {
            collection_name: collection.clone(),
            vectors_config: Some(VectorsConfig {
                config: Some(pb::vectors_config::Config::ParamsMap(vectors)),
            }),
            sparse_vectors_config: Some(sparse),
            ..Default::default()
        };
        self.call("create collection", || {
            self.client.create_collection(request.clone())
        })
        .await?;
        for (field, is_tenant) in [(MERCHANT_KEY, true), (SKUS_KEY, false)] {
            let request = CreateFieldIndexCollection {
                collection_name: collection.clone(),
                wait: Some(true),
                field_name: field.to_owned(),
                field_type: Some(FieldType::Keyword.into()),
                field_index_params: Some(pb::PayloadIndexParams {
                    index_params: Some(pb::payload_index_params::IndexParams::KeywordIndexParams(
                        KeywordIndexParams {
                            is_tenant: Some(is_tenant),
                            ..Default::default()
                        },
                    )),
                }),
                ..Default::default()
            };
            self.call("create payload index", || {
                self.client.create_field_index(request.clone())
            })
            .await?;
        }
        tracing::info!(collection = %collection, dimension, "created Qdrant collection");
        Ok(())
    }

    async fn dense_dimension(&self) -> Result<Option<usize>> {
        use pb::vectors_config::Config;
        let collection = self.collection();
        let info = self
            .call("collection info", || {
                self.client.collection_info(collection.clone())
            })
            .await
            .map_err(|f| self.error("collection info", f))?;
        let config = info
            .result
            .and_then(|info| info.config)
            .and_then(|config| config.params)
            .and_then(|params| params.vectors_config)
            .and_then(|vectors| vectors.config);
        Ok(match config {
            Some(Config::ParamsMap(map)) => map.map.get(DENSE).map(|params| params.size as usize),
            _ => None,
        })
    }

    /// Every point of the merchant matching `extra`, with the given payload fields and
    /// optionally the dense vector, page by page.
    async fn scroll_all(
        &self,
        what: &str,
        filter: Filter,
        payload: Option<WithPayloadSelector>,
        with_vector: bool,
    ) -> Result<Option<Vec<pb::RetrievedPoint>>> {
        let mut points = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let request = ScrollPoints {
                collection_name: self.collection(),
                filter: Some(filter.clone()),
                offset: offset.clone(),
                limit: Some(SCROLL_PAGE),
                with_payload: payload.clone(),
                with_vectors: if with_vector {
                    dense_vectors()
                } else {
                    Some(false.into())
                },
                ..Default::default()
            };
            let page = match self.call(what, || self.client.scroll(request.clone())).await {
                Ok(page) => page,
                Err(Failure::NoCollection) => return Ok(None),
                Err(failure) => return Err(self.error(what, failure)),
            };
            points.extend(page.result);
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(Some(points)),
            }
        }
    }

    async fn count(&self, merchant: &MerchantId) -> Result<Option<usize>> {
        let request = CountPoints {
            collection_name: self.collection(),
            filter: Some(merchant_filter(merchant)),
            exact: Some(true),
            ..Default::default()
        };
        match self.call("count", || self.client.count(request.clone())).await {
            Ok(response) => Ok(Some(response.result.map_or(0, |r| r.count as usize))),
            Err(Failure::NoCollection) => Ok(None),
            Err(failure) => Err(self.error("count", failure)),
        }
    }

    fn point(
        &self,
        indexed: IndexedChunk,
        model_id: &str,
        terms: &[String],
        avg_len: f32,
    ) -> Result<PointStruct> {
        let IndexedChunk { chunk, vector } = indexed;
        let id = point_id(&chunk.merchant_id, &chunk.id);
        let skus: Vec<String> = {
            let mut skus: Vec<String> = lexical::chunk_skus(&chunk.text).collect();
            skus.sort();
            skus.dedup();
            skus
        };
        let mut json = serde_json::to_value(&chunk).map_err(|err| KnowledgeError::Index(err.to_string()))?;
        if let Some(object) = json.as_object_mut() {
            object.insert(MODEL_KEY.to_owned(), model_id.into());
            object.insert(SKUS_KEY.to_owned(), skus.into());
            object.insert(AVG_LEN_KEY.to_owned(), f64::from(avg_len).into());
        }
        let payload = qdrant_client::Payload::try_from(json)
            .map_err(|err| KnowledgeError::Index(format!("chunk {} as a Qdrant payload: {err}", chunk.id)))?;
        let mut vectors = NamedVectors::default().add_vector(DENSE, Vector::new_dense(vector));
        let lexical = lexical::bm25_document(terms, avg_len);
        // Qdrant refuses empty sparse vectors; a chunk without terms simply has none.
        if !lexical.is_empty() {
            vectors = vectors.add_vector(LEXICAL, sparse_vector(lexical));
        }
        Ok(PointStruct::new(id, vectors, payload))
    }
}

fn is_already_exists(err: &QdrantError) -> bool {
    match err {
        QdrantError::ResponseError { status } => {
            status.code() == Code::AlreadyExists || status.message().contains("already exists")
        }
        _ => false,
    }
}

#[async_trait]
impl KnowledgeIndex for QdrantIndex {
    fn backend_name(&self) -> &'static str {
        "qdrant"
    }

    async fn stored_vectors(
        &self,
        merchant: &MerchantId,
        model_id: &str,
    ) -> Result<HashMap<String, Vec<f32>>> {
        let filter = Filter::must([
            merchant_condition(merchant),
            Condition::matches(MODEL_KEY, model_id.to_owned()),
        ]);
        let Some(points) = self
            .scroll_all("stored vectors", filter, payload_fields(&[HASH_KEY]), true)
            .await?
        else {
            return Ok(HashMap::new());
        };
        Ok(points
            .into_iter()
            .filter_map(|point| {
                Some((
                    string_field(&point.payload, HASH_KEY)?,
                    dense_vector(point.vectors)?,
                ))
            })
            .collect())
    }

    async fn replace(&self, merchant: &MerchantId, model_id: &str, chunks: Vec<IndexedChunk>) -> Result<()> {
        let dimension = check_replacement(merchant, &chunks)?;
        if !chunks.is_empty() {
            if dimension == 0 {
                return Err(KnowledgeError::Index("chunks have empty vectors".into()));
            }
            self.ensure_collection(dimension).await?;
        }

        // What is stored now, to write only what changed.
        let stored = self
            .scroll_all(
                "existing points",
                merchant_filter(merchant),
                payload_fields(&[HASH_KEY, MODEL_KEY, AVG_LEN_KEY]),
                false,
            )
            .await?;
        let Some(stored) = stored else {
            // No collection and nothing to write: nothing to do.
            return Ok(());
        };
        let stored: HashMap<String, HashMap<String, pb::Value>> = stored
            .into_iter()
            .filter_map(|point| Some((point_key(point.id.as_ref())?, point.payload)))
            .collect();

        let mut analyzer = lexical::analyzer();
        let terms: Vec<Vec<String>> = chunks
            .iter()
            .map(|c| lexical::terms(&mut analyzer, &c.chunk.embedding_text()))
            .collect();
        let avg_len = lexical::average_len(terms.iter().map(Vec::len));
        let mut kept: Vec<PointId> = Vec::with_capacity(chunks.len());
        let mut points = Vec::new();
        for (indexed, terms) in chunks.into_iter().zip(&terms) {
            let id = point_id(merchant, &indexed.chunk.id);
            let up_to_date = stored.get(&id).is_some_and(|payload| {
                let same_avg = number_field(payload, AVG_LEN_KEY)
                    .is_some_and(|stored| (stored as f32 - avg_len).abs() <= AVG_LEN_TOLERANCE * avg_len);
                string_field(payload, HASH_KEY).as_deref() == Some(&indexed.chunk.content_hash)
                    && string_field(payload, MODEL_KEY).as_deref() == Some(model_id)
                    && same_avg
            });
            kept.push(id.into());
            if !up_to_date {
                points.push(self.point(indexed, model_id, terms, avg_len)?);
            }
        }

        // New points first, then the stale ones go: readers never see the merchant empty.
        for batch in points.chunks(UPSERT_BATCH) {
            let request = UpsertPoints {
                collection_name: self.collection(),
                wait: Some(true),
                points: batch.to_vec(),
                ..Default::default()
            };
            self.call("upsert", || self.client.upsert_points(request.clone()))
                .await
                .map_err(|f| self.error("upsert", f))?;
        }
        let stale = Filter {
            must: vec![merchant_condition(merchant)],
            must_not: vec![Condition::has_id(kept)],
            ..Default::default()
        };
        let request = DeletePoints {
            collection_name: self.collection(),
            wait: Some(true),
            points: Some(PointsSelector {
                points_selector_one_of: Some(pb::points_selector::PointsSelectorOneOf::Filter(stale)),
            }),
            ..Default::default()
        };
        self.call("delete stale points", || {
            self.client.delete_points(request.clone())
        })
        .await
        .map_err(|f| self.error("delete stale points", f))?;
        tracing::debug!(%merchant, written = points.len(), "replaced merchant's points in Qdrant");
        Ok(())
    }

    async fn search(&self, merchant: &MerchantId, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        let depth = CANDIDATES_PER_SIDE.max(query.limit);
        let filter = merchant_filter(merchant);
        let base = QueryPoints {
            collection_name: self.collection(),
            filter: Some(filter.clone()),
            limit: Some(depth as u64),
            with_payload: Some(true.into()),
            ..Default::default()
        };
        let mut queries = vec![QueryPoints {
            query: Some(Query::new_nearest(VectorInput::new_dense(query.vector.clone()))),
            using: Some(DENSE.to_owned()),
            ..base.clone()
        }];
        let terms = lexical::query_terms(&mut lexical::analyzer(), &query.text);
        let lexical_idx = (!terms.is_empty()).then(|| {
            let sparse = lexical::bm25_query(&terms);
            queries.push(QueryPoints {
                query: Some(Query::new_nearest(VectorInput::new_sparse(
                    sparse.indices,
                    sparse.values,
                ))),
                using: Some(LEXICAL.to_owned()),
                with_vectors: dense_vectors(),
                ..base.clone()
            });
            queries.len() - 1
        });
        let codes = lexical::query_codes(&query.text);
        let sku_idx = (!codes.is_empty()).then(|| {
            // No query vector: the points matching the filter, in id order.
            queries.push(QueryPoints {
                filter: Some(Filter::must([
                    merchant_condition(merchant),
                    Condition::matches(SKUS_KEY, codes.clone()),
                ])),
                with_vectors: dense_vectors(),
                ..base.clone()
            });
            queries.len() - 1
        });
        let request = QueryBatchPoints {
            collection_name: self.collection(),
            query_points: queries,
            ..Default::default()
        };
        let mut results = match self
            .call("search", || self.client.query_batch(request.clone()))
            .await
        {
            Ok(response) => response.result,
            Err(Failure::NoCollection) => return Err(KnowledgeError::UnknownMerchant(merchant.to_string())),
            Err(failure) => return Err(self.error("search", failure)),
        };
        let mut take = |idx: Option<usize>| -> Vec<pb::ScoredPoint> {
            idx.and_then(|i| results.get_mut(i))
                .map(|r| std::mem::take(&mut r.result))
                .unwrap_or_default()
        };
        let dense_points = take(Some(0));
        let lexical_points = take(lexical_idx);
        let sku_points = take(sku_idx);
        if dense_points.is_empty()
            && lexical_points.is_empty()
            && self.count(merchant).await?.unwrap_or(0) == 0
        {
            return Err(KnowledgeError::UnknownMerchant(merchant.to_string()));
        }

        // Each point's chunk and (when fetched) dense vector, once.
        let mut chunks: HashMap<String, Chunk> = HashMap::new();
        let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
        let mut ranked = |points: Vec<pb::ScoredPoint>| -> Result<Vec<(String, f32)>> {
            let mut list = Vec::with_capacity(points.len());
            for point in points {
                let Some(key) = point_key(point.id.as_ref()) else {
                    continue;
                };
                if let Some(vector) = dense_vector(point.vectors) {
                    vectors.insert(key.clone(), vector);
                }
                if !chunks.contains_key(&key) {
                    chunks.insert(key.clone(), chunk_from_payload(point.payload)?);
                }
                list.push((key, point.score));
            }
            Ok(list)
        };
        let dense = ranked(dense_points)?;
        let lexical = ranked(lexical_points)?;
        let exact: Vec<String> = ranked(sku_points)?.into_iter().map(|(key, _)| key).collect();

        let dense_scores: HashMap<String, f32> = dense.iter().cloned().collect();
        let lexical_scores: HashMap<String, f32> = lexical.iter().cloned().collect();
        let mut fused = reciprocal_rank_fusion(&[dense, lexical], depth * 2);
        promote_exact(&mut fused, &exact);
        fused.truncate(query.limit);
        Ok(fused
            .into_iter()
            .filter_map(|(key, score)| {
                let chunk = chunks.remove(&key)?;
                let dense_score = dense_scores
                    .get(&key)
                    .copied()
                    .or_else(|| cosine(&query.vector, vectors.get(&key)?));
                Some(SearchHit {
                    chunk,
                    score,
                    dense_score,
                    lexical_score: lexical_scores.get(&key).copied(),
                })
            })
            .collect())
    }

    async fn merchants(&self) -> Result<Vec<MerchantId>> {
        let request = FacetCounts {
            collection_name: self.collection(),
            key: MERCHANT_KEY.to_owned(),
            limit: Some(MAX_MERCHANTS),
            exact: Some(true),
            ..Default::default()
        };
        let hits = match self
            .call("list merchants", || self.client.facet(request.clone()))
            .await
        {
            Ok(response) => response.hits,
            Err(Failure::NoCollection) => return Ok(Vec::new()),
            Err(failure) => return Err(self.error("list merchants", failure)),
        };
        let mut merchants: Vec<MerchantId> = hits
            .into_iter()
            .filter_map(|hit| match hit.value?.variant? {
                pb::facet_value::Variant::StringValue(id) => MerchantId::parse(&id).ok(),
                _ => None,
            })
            .collect();
        merchants.sort();
        Ok(merchants)
    }

    async fn chunk_count(&self, merchant: &MerchantId) -> Result<usize> {
        match self.count(merchant).await? {
            Some(count) if count > 0 => Ok(count),
            _ => Err(KnowledgeError::UnknownMerchant(merchant.to_string())),
        }
    }

    async fn export(&self, merchant: &MerchantId) -> Result<Export> {
        let points = self
            .scroll_all("export", merchant_filter(merchant), Some(true.into()), true)
            .await?
            .unwrap_or_default();
        let mut model_id = None;
        let mut chunks = Vec::with_capacity(points.len());
        for point in points {
            let point_model = string_field(&point.payload, MODEL_KEY);
            if model_id.is_none() {
                model_id = point_model.clone();
            } else if point_model != model_id {
                return Err(KnowledgeError::Index(format!(
                    "merchant {merchant} has vectors from more than one model; re-ingest it before moving it"
                )));
            }
            let vector = dense_vector(point.vectors)
                .ok_or_else(|| KnowledgeError::Index("a Qdrant point has no dense vector".into()))?;
            chunks.push(IndexedChunk {
                chunk: chunk_from_payload(point.payload)?,
                vector,
            });
        }
        let model_id = model_id.ok_or_else(|| KnowledgeError::UnknownMerchant(merchant.to_string()))?;
        Ok(Export { model_id, chunks })
    }

    /// Qdrant answers its health check and the collections API; the collection itself may
    /// not exist yet (it is created by the first ingest).
    async fn ready(&self) -> Result<()> {
        self.call("health check", || self.client.health_check())
            .await
            .map_err(|f| self.error("health check", f))?;
        let collection = self.collection();
        self.call("collection exists", || {
            self.client.collection_exists(collection.clone())
        })
        .await
        .map_err(|f| self.error("collection exists", f))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_stable_uuids_scoped_by_merchant() {
        let a = MerchantId::parse("a").unwrap();
        let b = MerchantId::parse("b").unwrap();
        let id = point_id(&a, "chunk-1");
        assert_eq!(id, point_id(&a, "chunk-1"));
        assert_ne!(id, point_id(&b, "chunk-1"));
        assert_ne!(id, point_id(&a, "chunk-2"));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version 8: {id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }

    #[test]
    fn config_reads_durations_and_redacts_the_key() {
        let config: QdrantConfig = serde_json::from_str(
            r#"{"url": "http://qdrant:6334", "api_key": "secret", "timeout": "3s", "connect_timeout": 500}"#,
        )
        .unwrap();
        assert_eq!(config.collection, DEFAULT_COLLECTION);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.connect_timeout, Duration::from_millis(500));
        assert!(!format!("{config:?}").contains("secret"));
        assert!(serde_json::from_str::<QdrantConfig>(r#"{"colection": "x"}"#).is_err());
    }

    #[test]
    fn cosine_is_scale_free() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]).unwrap() - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).unwrap().abs() < 1e-6);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), None);
    }
}
