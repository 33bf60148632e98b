//! A Qdrant server for tests: Qdrant's real gRPC API (the service traits qdrant-client
//! ships) over Qdrant's real engine (qdrant-edge: segments, payload indexes, filters, sparse
//! IDF scoring), one engine shard per collection in a temporary directory. It exists because
//! Parley's Qdrant backend must be tested against the wire protocol it speaks in production,
//! on machines with neither a Qdrant binary nor Docker.
//!
//! It serves only what `parley_knowledge::qdrant` uses — health check; collection exists,
//! create, info, list, delete; keyword payload indexes; upsert, delete by ids or filter,
//! count, scroll, facet; query and query batch by a dense or sparse vector (or none) with
//! filter, limit and payload/vector selection — and answers `unimplemented` to the rest.
//! [`TestServer::stop`] and [`TestServer::restart`] take it down and bring it back on the same
//! port with the same data, to test how a client copes with an outage.

mod convert;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use qdrant_client::qdrant as pb;
use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::qdrant_server::{Qdrant, QdrantServer};
use qdrant_edge::{
    CountRequest, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams,
    FacetRequest, FacetValue, FieldIndexOperations, KeywordIndexParams, Modifier, PayloadFieldSchema,
    PayloadSchemaParams, PayloadSchemaType, PointInsertOperations, PointOperations, PointStructPersisted,
    ScrollRequest, UpdateOperation,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::convert::{operation_error, unimplemented};

/// The real server accepts requests of up to 32 MiB; tonic's default is 4 MiB.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// A running test server. Dropping it shuts the server down and deletes its data.
pub struct TestServer {
    addr: SocketAddr,
    engine: Arc<Engine>,
    running: Option<Running>,
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("running", &self.running.is_some())
            .finish()
    }
}

/// Starts a server on `127.0.0.1` on a free port, with no collections.
pub async fn spawn() -> TestServer {
    TestServer::spawn().await
}

impl TestServer {
    pub async fn spawn() -> Self {
        let engine = Arc::new(Engine::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test server to a free local port");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let running = serve(listener, engine.clone());
        Self {
            addr,
            engine,
            running: Some(running),
        }
    }

    /// The gRPC endpoint, as qdrant-client expects it: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: the port is closed and open connections are shut down, so clients see
    /// the same refused connections as with a crashed Qdrant. The data is kept.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            let _ = running.task.await;
        }
    }

    /// Serves again on the same port with the data as it was when stopped.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the test server to its port");
        self.running = Some(serve(listener, self.engine.clone()));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
        }
    }
}

fn serve(listener: tokio::net::TcpListener, engine: Arc<Engine>) -> Running {
    let (shutdown, signal) = oneshot::channel::<()>();
    let service = Service { engine };
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let router = tonic::transport::Server::builder()
        .add_service(QdrantServer::new(service.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(CollectionsServer::new(service.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(PointsServer::new(service).max_decoding_message_size(MAX_MESSAGE_BYTES));
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = signal.await;
    }));
    Running { shutdown, task }
}

/// The collections: one qdrant-edge shard each, in a directory of the server's own.
struct Engine {
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    /// Gives every created collection a fresh directory, so deleting and re-creating one
    /// never reuses files a lingering reader still holds.
    generation: AtomicU64,
    /// Declared last so it is deleted last: the shards flush to it when dropped.
    dir: tempfile::TempDir,
}

struct Collection {
    shard: EdgeShard,
    /// The creation request's vector settings, reported back by collection info.
    vectors_config: Option<pb::VectorsConfig>,
    sparse_vectors_config: Option<pb::SparseVectorConfig>,
    dir: PathBuf,
}

impl Engine {
    fn new() -> Self {
        Self {
            collections: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            dir: tempfile::tempdir().expect("create the test server's data directory"),
        }
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>, Status> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("Not found: Collection `{name}` doesn't exist!")))
    }
}

#[derive(Clone)]
struct Service {
    engine: Arc<Engine>,
}

/// Runs engine work (synchronous, disk-backed) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Status::internal(format!("engine task failed: {err}")))?
}

fn seconds_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

fn completed(started: Instant) -> pb::PointsOperationResponse {
    pb::PointsOperationResponse {
        result: Some(pb::UpdateResult {
            operation_id: None,
            status: pb::UpdateStatus::Completed as i32,
        }),
        time: seconds_since(started),
        usage: None,
    }
}

fn distance(value: i32) -> Result<Distance, Status> {
    match pb::Distance::try_from(value) {
        Ok(pb::Distance::Cosine) => Ok(Distance::Cosine),
        Ok(pb::Distance::Euclid) => Ok(Distance::Euclid),
        Ok(pb::Distance::Dot) => Ok(Distance::Dot),
        Ok(pb::Distance::Manhattan) => Ok(Distance::Manhattan),
        _ => Err(Status::invalid_argument(format!("unknown distance {value}"))),
    }
}

fn dense_params(params: &pb::VectorParams) -> Result<EdgeVectorParams, Status> {
    if params.multivector_config.is_some() || params.quantization_config.is_some() {
        return Err(unimplemented("multivectors and quantization"));
    }
    Ok(EdgeVectorParams::builder(params.size as usize, distance(params.distance)?).build())
}

fn edge_config(request: &pb::CreateCollection) -> Result<EdgeConfig, Status> {
    use pb::vectors_config::Config;
    let mut builder = EdgeConfig::builder();
    match request.vectors_config.as_ref().and_then(|c| c.config.as_ref()) {
        Some(Config::Params(params)) => builder = builder.vector("", dense_params(params)?),
        Some(Config::ParamsMap(map)) => {
            for (name, params) in &map.map {
                builder = builder.vector(name.as_str(), dense_params(params)?);
            }
        }
        None => {}
    }
    for (name, params) in request.sparse_vectors_config.iter().flat_map(|c| &c.map) {
        let mut sparse = EdgeSparseVectorParams::builder();
        match params.modifier.map(pb::Modifier::try_from) {
            None | Some(Ok(pb::Modifier::None)) => {}
            Some(Ok(pb::Modifier::Idf)) => sparse = sparse.modifier(Modifier::Idf),
            Some(Err(_)) => return Err(Status::invalid_argument("unknown sparse vector modifier")),
        }
        builder = builder.sparse_vector(name.as_str(), sparse.build());
    }
    Ok(builder.build())
}

fn field_schema(request: &pb::CreateFieldIndexCollection) -> Result<PayloadFieldSchema, Status> {
    use pb::payload_index_params::IndexParams;
    let params = request
        .field_index_params
        .as_ref()
        .and_then(|p| p.index_params.as_ref());
    match (request.field_type.map(pb::FieldType::try_from), params) {
        (Some(Ok(pb::FieldType::Keyword)), Some(IndexParams::KeywordIndexParams(keyword))) => Ok(
            PayloadFieldSchema::FieldParams(PayloadSchemaParams::Keyword(KeywordIndexParams {
                is_tenant: keyword.is_tenant,
                enable_hnsw: keyword.enable_hnsw,
                ..KeywordIndexParams::default()
            })),
        ),
        (Some(Ok(field_type)), None) => Ok(PayloadFieldSchema::FieldType(match field_type {
            pb::FieldType::Keyword => PayloadSchemaType::Keyword,
            pb::FieldType::Integer => PayloadSchemaType::Integer,
            pb::FieldType::Float => PayloadSchemaType::Float,
            pb::FieldType::Bool => PayloadSchemaType::Bool,
            pb::FieldType::Uuid => PayloadSchemaType::Uuid,
            other => return Err(unimplemented(&format!("{other:?} payload indexes"))),
        })),
        _ => Err(unimplemented(
            "payload indexes other than keyword with parameters or plain types",
        )),
    }
}

fn schema_type(kind: PayloadSchemaType) -> pb::PayloadSchemaType {
    match kind {
        PayloadSchemaType::Keyword => pb::PayloadSchemaType::Keyword,
        PayloadSchemaType::Integer => pb::PayloadSchemaType::Integer,
        PayloadSchemaType::Float => pb::PayloadSchemaType::Float,
        PayloadSchemaType::Geo => pb::PayloadSchemaType::Geo,
        PayloadSchemaType::Text => pb::PayloadSchemaType::Text,
        PayloadSchemaType::Bool => pb::PayloadSchemaType::Bool,
        PayloadSchemaType::Datetime => pb::PayloadSchemaType::Datetime,
        PayloadSchemaType::Uuid => pb::PayloadSchemaType::Uuid,
    }
}

impl Service {
    async fn health(&self) -> Result<pb::HealthCheckReply, Status> {
        Ok(pb::HealthCheckReply {
            title: "qdrant-testserver (qdrant-edge 0.7.2)".to_owned(),
            version: "0.7.2".to_owned(),
            commit: None,
        })
    }

    async fn has_collection(
        &self,
        request: pb::CollectionExistsRequest,
    ) -> Result<pb::CollectionExistsResponse, Status> {
        let started = Instant::now();
        let exists = self.engine.collection(&request.collection_name).is_ok();
        Ok(pb::CollectionExistsResponse {
            result: Some(pb::CollectionExists { exists }),
            time: seconds_since(started),
        })
    }

    async fn list_collections(
        &self,
        _request: pb::ListCollectionsRequest,
    ) -> Result<pb::ListCollectionsResponse, Status> {
        let started = Instant::now();
        let mut names: Vec<String> = self
            .engine
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        Ok(pb::ListCollectionsResponse {
            collections: names
                .into_iter()
                .map(|name| pb::CollectionDescription { name })
                .collect(),
            time: seconds_since(started),
        })
    }

    async fn create_collection(
        &self,
        request: pb::CreateCollection,
    ) -> Result<pb::CollectionOperationResponse, Status> {
        let started = Instant::now();
        let config = edge_config(&request)?;
        let name = request.collection_name.clone();
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
            return Err(Status::invalid_argument(format!(
                "invalid collection name {name:?}"
            )));
        }
        if self.engine.collection(&name).is_ok() {
            return Err(Status::already_exists(format!(
                "Wrong input: Collection `{name}` already exists!"
            )));
        }
        let generation = self.engine.generation.fetch_add(1, Ordering::Relaxed);
        let dir = self.engine.dir.path().join(format!("{name}.{generation}"));
        let shard = blocking({
            let dir = dir.clone();
            move || {
                std::fs::create_dir_all(&dir).map_err(|err| Status::internal(err.to_string()))?;
                EdgeShard::new(&dir, config).map_err(operation_error)
            }
        })
        .await?;
        let collection = Arc::new(Collection {
            shard,
            vectors_config: request.vectors_config,
            sparse_vectors_config: request.sparse_vectors_config,
            dir,
        });
        let mut collections = self.engine.collections.write().unwrap_or_else(|p| p.into_inner());
        if collections.contains_key(&name) {
            return Err(Status::already_exists(format!(
                "Wrong input: Collection `{name}` already exists!"
            )));
        }
        collections.insert(name, collection);
        Ok(pb::CollectionOperationResponse {
            result: true,
            time: seconds_since(started),
        })
    }

    async fn collection_info(
        &self,
        request: pb::GetCollectionInfoRequest,
    ) -> Result<pb::GetCollectionInfoResponse, Status> {
        let started = Instant::now();
        let collection = self.engine.collection(&request.collection_name)?;
        let info = {
            let collection = collection.clone();
            blocking(move || Ok(collection.shard.info())).await?
        };
        let payload_schema = info
            .payload_schema
            .iter()
            .map(|(key, index)| {
                let info = pb::PayloadSchemaInfo {
                    data_type: schema_type(index.data_type) as i32,
                    params: None,
                    points: Some(index.points as u64),
                };
                (key.to_string(), info)
            })
            .collect();
        Ok(pb::GetCollectionInfoResponse {
            result: Some(pb::CollectionInfo {
                status: pb::CollectionStatus::Green as i32,
                optimizer_status: Some(pb::OptimizerStatus {
                    ok: true,
                    error: String::new(),
                }),
                segments_count: info.segments_count as u64,
                config: Some(pb::CollectionConfig {
                    params: Some(pb::CollectionParams {
                        shard_number: 1,
                        vectors_config: collection.vectors_config.clone(),
                        sparse_vectors_config: collection.sparse_vectors_config.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                payload_schema,
                points_count: Some(info.points_count as u64),
                indexed_vectors_count: Some(info.indexed_vectors_count as u64),
                ..Default::default()
            }),
            time: seconds_since(started),
        })
    }

    async fn delete_collection(
        &self,
        request: pb::DeleteCollection,
    ) -> Result<pb::CollectionOperationResponse, Status> {
        let started = Instant::now();
        let removed = self
            .engine
            .collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request.collection_name);
        if let Some(collection) = removed {
            blocking(move || {
                // The files go once no request holds the shard any more; a later one re-creating
                // the collection gets a fresh directory either way.
                if let Ok(collection) = Arc::try_unwrap(collection) {
                    let dir = collection.dir.clone();
                    drop(collection);
                    let _ = std::fs::remove_dir_all(dir);
                }
                Ok(())
            })
            .await?;
        }
        Ok(pb::CollectionOperationResponse {
            result: true,
            time: seconds_since(started),
        })
    }

    async fn apply(&self, collection_name: &str, operation: UpdateOperation) -> Result<(), Status> {
        let collection = self.engine.collection(collection_name)?;
        blocking(move || collection.shard.update(operation).map_err(operation_error)).await
    }

    async fn create_payload_index(
        &self,
        request: pb::CreateFieldIndexCollection,
    ) -> Result<pb::PointsOperationResponse, Status> {
        let started = Instant::now();
        let operation =
            UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: convert::json_path(&request.field_name)?,
                field_schema: Some(field_schema(&request)?),
            }));
        self.apply(&request.collection_name, operation).await?;
        Ok(completed(started))
    }

    async fn upsert_points(&self, request: pb::UpsertPoints) -> Result<pb::PointsOperationResponse, Status> {
        let started = Instant::now();
        if request.update_filter.is_some()
            || request.shard_key_selector.is_some()
            || request.update_mode.is_some()
        {
            return Err(unimplemented("conditional upserts and shard keys"));
        }
        let points = request
            .points
            .into_iter()
            .map(|point| {
                Ok(PointStructPersisted {
                    id: convert::point_id(point.id)?,
                    vector: convert::vectors_in(point.vectors)?,
                    payload: Some(convert::payload_in(point.payload)),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        self.apply(&request.collection_name, operation).await?;
        Ok(completed(started))
    }

    async fn delete_points(&self, request: pb::DeletePoints) -> Result<pb::PointsOperationResponse, Status> {
        use pb::points_selector::PointsSelectorOneOf;
        let started = Instant::now();
        let operation = match request.points.and_then(|p| p.points_selector_one_of) {
            Some(PointsSelectorOneOf::Points(list)) => PointOperations::DeletePoints {
                ids: convert::point_ids(list.ids)?,
            },
            Some(PointsSelectorOneOf::Filter(filter)) => {
                PointOperations::DeletePointsByFilter(convert::filter(Some(filter))?.unwrap_or_default())
            }
            None => return Err(Status::invalid_argument("no points selected")),
        };
        self.apply(
            &request.collection_name,
            UpdateOperation::PointOperation(operation),
        )
        .await?;
        Ok(completed(started))
    }

    async fn count_points(&self, request: pb::CountPoints) -> Result<pb::CountResponse, Status> {
        let started = Instant::now();
        let collection = self.engine.collection(&request.collection_name)?;
        let count_request = CountRequest {
            filter: convert::filter(request.filter)?,
            exact: request.exact.unwrap_or(true),
        };
        let count = blocking(move || collection.shard.count(count_request).map_err(operation_error)).await?;
        Ok(pb::CountResponse {
            result: Some(pb::CountResult { count: count as u64 }),
            time: seconds_since(started),
            usage: None,
        })
    }

    async fn scroll_points(&self, request: pb::ScrollPoints) -> Result<pb::ScrollResponse, Status> {
        let started = Instant::now();
        if request.order_by.is_some() {
            return Err(unimplemented("scroll order_by"));
        }
        let collection = self.engine.collection(&request.collection_name)?;
        let scroll_request = ScrollRequest {
            offset: request.offset.map(|id| convert::point_id(Some(id))).transpose()?,
            limit: Some(request.limit.unwrap_or(10) as usize),
            filter: convert::filter(request.filter)?,
            with_payload: Some(convert::with_payload(request.with_payload, true)?),
            with_vector: convert::with_vectors(request.with_vectors),
            order_by: None,
        };
        let (records, next) =
            blocking(move || collection.shard.scroll(scroll_request).map_err(operation_error)).await?;
        Ok(pb::ScrollResponse {
            next_page_offset: next.map(convert::point_id_out),
            result: records.into_iter().map(convert::retrieved_point).collect(),
            time: seconds_since(started),
            usage: None,
        })
    }

    async fn run_queries(
        &self,
        collection_name: &str,
        queries: Vec<pb::QueryPoints>,
    ) -> Result<Vec<Vec<pb::ScoredPoint>>, Status> {
        let collection = self.engine.collection(collection_name)?;
        let requests = queries
            .into_iter()
            .map(convert::query)
            .collect::<Result<Vec<_>, Status>>()?;
        let results = blocking(move || {
            requests
                .into_iter()
                .map(|request| collection.shard.query(request).map_err(operation_error))
                .collect::<Result<Vec<_>, Status>>()
        })
        .await?;
        Ok(results
            .into_iter()
            .map(|points| points.into_iter().map(convert::scored_point).collect())
            .collect())
    }

    async fn query_points(&self, request: pb::QueryPoints) -> Result<pb::QueryResponse, Status> {
        let started = Instant::now();
        let collection_name = request.collection_name.clone();
        let mut results = self.run_queries(&collection_name, vec![request]).await?;
        Ok(pb::QueryResponse {
            result: results.pop().unwrap_or_default(),
            time: seconds_since(started),
            usage: None,
        })
    }

    async fn query_points_batch(
        &self,
        request: pb::QueryBatchPoints,
    ) -> Result<pb::QueryBatchResponse, Status> {
        let started = Instant::now();
        let results = self
            .run_queries(&request.collection_name, request.query_points)
            .await?;
        Ok(pb::QueryBatchResponse {
            result: results
                .into_iter()
                .map(|result| pb::BatchResult { result })
                .collect(),
            time: seconds_since(started),
            usage: None,
        })
    }

    async fn facet_counts(&self, request: pb::FacetCounts) -> Result<pb::FacetResponse, Status> {
        use pb::facet_value::Variant;
        let started = Instant::now();
        let collection = self.engine.collection(&request.collection_name)?;
        let facet_request = FacetRequest {
            key: convert::json_path(&request.key)?,
            limit: request.limit.unwrap_or(10) as usize,
            filter: convert::filter(request.filter)?,
            exact: request.exact.unwrap_or(false),
        };
        let response =
            blocking(move || collection.shard.facet(facet_request).map_err(operation_error)).await?;
        let hits = response
            .hits
            .into_iter()
            .map(|hit| pb::FacetHit {
                value: Some(pb::FacetValue {
                    variant: Some(match hit.value {
                        FacetValue::Keyword(keyword) => Variant::StringValue(keyword),
                        FacetValue::Int(integer) => Variant::IntegerValue(integer),
                        FacetValue::Bool(boolean) => Variant::BoolValue(boolean),
                        FacetValue::Uuid(uuid) => Variant::StringValue(
                            qdrant_edge::external::uuid::Uuid::from_u128(uuid).to_string(),
                        ),
                    }),
                }),
                count: hit.count as u64,
            })
            .collect();
        Ok(pb::FacetResponse {
            hits,
            time: seconds_since(started),
            usage: None,
        })
    }
}

/// Implements a generated service trait: the listed methods delegate to `Service` methods
/// taking the request message, every other method answers `unimplemented`.
macro_rules! service {
    (
        impl $trait:ident {
            $($method:ident($request:ident) -> $response:ident => $handler:ident;)*
        }
        unimplemented {
            $($stub:ident($stub_request:ident) -> $stub_response:ident;)*
        }
    ) => {
        #[tonic::async_trait]
        impl $trait for Service {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    self.$handler(request.into_inner()).await.map(Response::new)
                }
            )*
            $(
                async fn $stub(&self, _request: Request<pb::$stub_request>) -> Result<Response<pb::$stub_response>, Status> {
                    Err(unimplemented(stringify!($stub)))
                }
            )*
        }
    };
}

#[tonic::async_trait]
impl Qdrant for Service {
    async fn health_check(
        &self,
        _request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckReply>, Status> {
        self.health().await.map(Response::new)
    }
}

service! {
    impl Collections {
        get(GetCollectionInfoRequest) -> GetCollectionInfoResponse => collection_info;
        list(ListCollectionsRequest) -> ListCollectionsResponse => list_collections;
        create(CreateCollection) -> CollectionOperationResponse => create_collection;
        delete(DeleteCollection) -> CollectionOperationResponse => delete_collection;
        collection_exists(CollectionExistsRequest) -> CollectionExistsResponse => has_collection;
    }
    unimplemented {
        update(UpdateCollection) -> CollectionOperationResponse;
        update_aliases(ChangeAliases) -> CollectionOperationResponse;
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        list_aliases(ListAliasesRequest) -> ListAliasesResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

service! {
    impl Points {
        upsert(UpsertPoints) -> PointsOperationResponse => upsert_points;
        delete(DeletePoints) -> PointsOperationResponse => delete_points;
        create_field_index(CreateFieldIndexCollection) -> PointsOperationResponse => create_payload_index;
        scroll(ScrollPoints) -> ScrollResponse => scroll_points;
        count(CountPoints) -> CountResponse => count_points;
        query(QueryPoints) -> QueryResponse => query_points;
        query_batch(QueryBatchPoints) -> QueryBatchResponse => query_points_batch;
        facet(FacetCounts) -> FacetResponse => facet_counts;
    }
    unimplemented {
        get(GetPoints) -> GetResponse;
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        set_payload(SetPayloadPoints) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search(SearchPoints) -> SearchResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}
