//! Translation between Qdrant's gRPC messages (qdrant-client's protobuf types) and the
//! engine's own types (qdrant-edge), for the subset the test server serves. Anything outside
//! it is refused with `unimplemented` rather than approximated, so a test never passes
//! against behaviour the real server would not have.

use std::collections::HashMap;

use qdrant_client::qdrant as pb;
use qdrant_edge::external::{ordered_float::OrderedFloat, serde_json, uuid::Uuid};
use qdrant_edge::{
    Condition, FieldCondition, Filter, JsonPath, Match, MatchPhrase, MatchText, MatchTextAny, MatchValue,
    MinShould, NamedQuery, OperationError, Payload, PayloadSelector, PayloadSelectorExclude,
    PayloadSelectorInclude, PointId, QueryEnum, QueryRequest, Record, ScoredPoint, ScoringQuery,
    SparseVector, ValueVariants, VectorInternal, VectorPersisted, VectorStructInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use tonic::Status;

pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented by the test server"))
}

pub fn operation_error(err: OperationError) -> Status {
    match err {
        OperationError::WrongVectorDimension { .. }
        | OperationError::VectorNameNotExists { .. }
        | OperationError::ValidationError { .. }
        | OperationError::WrongSparse
        | OperationError::WrongMulti
        | OperationError::TypeError { .. }
        | OperationError::TypeInferenceError { .. } => Status::invalid_argument(err.to_string()),
        OperationError::PointIdError { .. } => Status::not_found(err.to_string()),
        OperationError::Timeout { .. } => Status::deadline_exceeded(err.to_string()),
        OperationError::Cancelled { .. } => Status::cancelled(err.to_string()),
        _ => Status::internal(err.to_string()),
    }
}

pub fn json_path(key: &str) -> Result<JsonPath, Status> {
    key.parse()
        .map_err(|()| Status::invalid_argument(format!("invalid payload key {key:?}")))
}

pub fn point_id(id: Option<pb::PointId>) -> Result<PointId, Status> {
    use pb::point_id::PointIdOptions;
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(num)) => Ok(PointId::NumId(num)),
        Some(PointIdOptions::Uuid(text)) => Uuid::parse_str(&text)
            .map(PointId::Uuid)
            .map_err(|err| Status::invalid_argument(format!("point id {text:?} is not a UUID: {err}"))),
        None => Err(Status::invalid_argument("point id is missing")),
    }
}

pub fn point_id_out(id: PointId) -> pb::PointId {
    match id {
        PointId::NumId(num) => pb::PointId::from(num),
        PointId::Uuid(uuid) => pb::PointId::from(uuid.to_string()),
    }
}

pub fn point_ids(ids: Vec<pb::PointId>) -> Result<Vec<PointId>, Status> {
    ids.into_iter().map(|id| point_id(Some(id))).collect()
}

/// gRPC payload values become JSON the way the real server does it (qdrant-client's own
/// conversion), and back.
pub fn payload_in(payload: HashMap<String, pb::Value>) -> Payload {
    let map: serde_json::Map<String, serde_json::Value> = qdrant_client::Payload::from(payload).into();
    Payload(map)
}

pub fn payload_out(payload: Option<Payload>) -> HashMap<String, pb::Value> {
    payload
        .map(|payload| qdrant_client::Payload::from(payload.0).into())
        .unwrap_or_default()
}

pub fn filter(filter: Option<pb::Filter>) -> Result<Option<Filter>, Status> {
    filter.map(filter_in).transpose()
}

fn conditions(conditions: Vec<pb::Condition>) -> Result<Option<Vec<Condition>>, Status> {
    if conditions.is_empty() {
        return Ok(None);
    }
    conditions
        .into_iter()
        .map(condition)
        .collect::<Result<_, _>>()
        .map(Some)
}

fn filter_in(filter: pb::Filter) -> Result<Filter, Status> {
    let pb::Filter {
        should,
        must,
        must_not,
        min_should,
    } = filter;
    let min_should = min_should
        .map(|min_should| -> Result<MinShould, Status> {
            Ok(MinShould {
                conditions: conditions(min_should.conditions)?.unwrap_or_default(),
                min_count: min_should.min_count as usize,
            })
        })
        .transpose()?;
    Ok(Filter {
        should: conditions(should)?,
        min_should,
        must: conditions(must)?,
        must_not: conditions(must_not)?,
    })
}

fn condition(condition: pb::Condition) -> Result<Condition, Status> {
    use pb::condition::ConditionOneOf;
    match condition.condition_one_of {
        Some(ConditionOneOf::Field(field)) => field_condition(field).map(Condition::Field),
        Some(ConditionOneOf::HasId(has_id)) => {
            Ok(Condition::HasId(point_ids(has_id.has_id)?.into_iter().collect()))
        }
        Some(ConditionOneOf::Filter(filter)) => filter_in(filter).map(Condition::Filter),
        Some(other) => Err(unimplemented(&format!("filter condition {other:?}"))),
        None => Err(Status::invalid_argument("empty filter condition")),
    }
}

fn field_condition(field: pb::FieldCondition) -> Result<FieldCondition, Status> {
    let pb::FieldCondition {
        key,
        r#match,
        range,
        geo_bounding_box,
        geo_radius,
        values_count,
        geo_polygon,
        datetime_range,
        is_empty,
        is_null,
    } = field;
    let unsupported = range.is_some()
        || geo_bounding_box.is_some()
        || geo_radius.is_some()
        || values_count.is_some()
        || geo_polygon.is_some()
        || datetime_range.is_some()
        || is_empty.is_some()
        || is_null.is_some();
    match r#match.and_then(|m| m.match_value) {
        Some(value) if !unsupported => Ok(FieldCondition::new_match(json_path(&key)?, match_in(value)?)),
        _ => Err(unimplemented(&format!(
            "field condition on {key:?} other than a single match"
        ))),
    }
}

fn match_in(value: pb::r#match::MatchValue) -> Result<Match, Status> {
    use pb::r#match::MatchValue as M;
    let exact = |value| Ok(Match::Value(MatchValue { value }));
    // `any` and `except` sets are built by the engine's own deserialiser, as for a REST request.
    let from_json = |json: serde_json::Value| {
        serde_json::from_value::<Match>(json).map_err(|err| Status::invalid_argument(err.to_string()))
    };
    match value {
        M::Keyword(keyword) => exact(ValueVariants::String(keyword)),
        M::Integer(integer) => exact(ValueVariants::Integer(integer)),
        M::Boolean(boolean) => exact(ValueVariants::Bool(boolean)),
        M::Keywords(keywords) => from_json(serde_json::json!({ "any": keywords.strings })),
        M::Integers(integers) => from_json(serde_json::json!({ "any": integers.integers })),
        M::ExceptKeywords(keywords) => from_json(serde_json::json!({ "except": keywords.strings })),
        M::ExceptIntegers(integers) => from_json(serde_json::json!({ "except": integers.integers })),
        M::Text(text) => Ok(Match::Text(MatchText { text })),
        M::Phrase(phrase) => Ok(Match::Phrase(MatchPhrase { phrase })),
        M::TextAny(text_any) => Ok(Match::TextAny(MatchTextAny { text_any })),
        other => Err(unimplemented(&format!("match {other:?}"))),
    }
}

/// One input vector. Accepts both the current `vector` oneof and the fields deprecated in
/// Qdrant 1.16 that older clients still send.
#[allow(deprecated)]
fn vector_in(vector: pb::Vector) -> Result<VectorPersisted, Status> {
    use pb::vector::Vector as V;
    match vector.vector {
        Some(V::Dense(dense)) => Ok(VectorPersisted::Dense(dense.data)),
        Some(V::Sparse(sparse)) => sparse_in(sparse.indices, sparse.values).map(VectorPersisted::Sparse),
        Some(other) => Err(unimplemented(&format!("vector {other:?}"))),
        None => match vector.indices {
            Some(indices) => sparse_in(indices.data, vector.data).map(VectorPersisted::Sparse),
            None if vector.vectors_count.is_none() => Ok(VectorPersisted::Dense(vector.data)),
            None => Err(unimplemented("multi-dense vectors")),
        },
    }
}

fn sparse_in(indices: Vec<u32>, values: Vec<f32>) -> Result<SparseVector, Status> {
    SparseVector::new(indices, values)
        .map_err(|err| Status::invalid_argument(format!("sparse vector: {err}")))
}

pub fn vectors_in(vectors: Option<pb::Vectors>) -> Result<VectorStructPersisted, Status> {
    use pb::vectors::VectorsOptions;
    match vectors.and_then(|v| v.vectors_options) {
        Some(VectorsOptions::Vector(vector)) => match vector_in(vector)? {
            VectorPersisted::Dense(dense) => Ok(VectorStructPersisted::Single(dense)),
            _ => Err(Status::invalid_argument("an unnamed vector must be dense")),
        },
        Some(VectorsOptions::Vectors(named)) => named
            .vectors
            .into_iter()
            .map(|(name, vector)| Ok((name, vector_in(vector)?)))
            .collect::<Result<_, Status>>()
            .map(VectorStructPersisted::Named),
        None => Ok(VectorStructPersisted::Named(HashMap::new())),
    }
}

fn vector_out(vector: VectorInternal) -> pb::VectorOutput {
    use pb::vector_output::Vector as V;
    let vector = match vector {
        VectorInternal::Dense(data) => V::Dense(pb::DenseVector { data }),
        VectorInternal::Sparse(sparse) => V::Sparse(pb::SparseVector {
            indices: sparse.indices,
            values: sparse.values,
        }),
        VectorInternal::MultiDense(multi) => V::MultiDense(pb::MultiDenseVector {
            vectors: multi
                .multi_vectors()
                .map(|data| pb::DenseVector { data: data.to_vec() })
                .collect(),
        }),
    };
    #[allow(deprecated)]
    pb::VectorOutput {
        data: Vec::new(),
        indices: None,
        vectors_count: None,
        vector: Some(vector),
    }
}

pub fn vectors_out(vectors: Option<VectorStructInternal>) -> Option<pb::VectorsOutput> {
    use pb::vectors_output::VectorsOptions;
    let options = match vectors? {
        VectorStructInternal::Single(data) => VectorsOptions::Vector(vector_out(VectorInternal::Dense(data))),
        VectorStructInternal::MultiDense(multi) => {
            VectorsOptions::Vector(vector_out(VectorInternal::MultiDense(multi)))
        }
        VectorStructInternal::Named(named) => VectorsOptions::Vectors(pb::NamedVectorsOutput {
            vectors: named
                .into_iter()
                .map(|(name, vector)| (name, vector_out(vector)))
                .collect(),
        }),
    };
    Some(pb::VectorsOutput {
        vectors_options: Some(options),
    })
}

/// Payload selection; `None` means the endpoint's default, which differs between endpoints
/// (scroll returns payload by default, query does not).
pub fn with_payload(
    selector: Option<pb::WithPayloadSelector>,
    default: bool,
) -> Result<WithPayloadInterface, Status> {
    use pb::with_payload_selector::SelectorOptions;
    let keys = |fields: Vec<String>| fields.iter().map(|f| json_path(f)).collect::<Result<Vec<_>, _>>();
    Ok(match selector.and_then(|s| s.selector_options) {
        None => WithPayloadInterface::Bool(default),
        Some(SelectorOptions::Enable(enable)) => WithPayloadInterface::Bool(enable),
        Some(SelectorOptions::Include(include)) => {
            WithPayloadInterface::Selector(PayloadSelector::Include(PayloadSelectorInclude {
                include: keys(include.fields)?,
            }))
        }
        Some(SelectorOptions::Exclude(exclude)) => {
            WithPayloadInterface::Selector(PayloadSelector::Exclude(PayloadSelectorExclude {
                exclude: keys(exclude.fields)?,
            }))
        }
    })
}

pub fn with_vectors(selector: Option<pb::WithVectorsSelector>) -> WithVector {
    use pb::with_vectors_selector::SelectorOptions;
    match selector.and_then(|s| s.selector_options) {
        None => WithVector::Bool(false),
        Some(SelectorOptions::Enable(enable)) => WithVector::Bool(enable),
        Some(SelectorOptions::Include(include)) => WithVector::Selector(include.names),
    }
}

/// A universal query: nearest-neighbour by a dense or sparse vector, or (no query) points in
/// id order, with filter, limit, offset, threshold and payload/vector selection.
pub fn query(request: pb::QueryPoints) -> Result<QueryRequest, Status> {
    let pb::QueryPoints {
        collection_name: _,
        prefetch,
        query,
        using,
        filter: request_filter,
        params,
        score_threshold,
        limit,
        offset,
        with_vectors: request_with_vectors,
        with_payload: request_with_payload,
        read_consistency: _,
        shard_key_selector,
        lookup_from,
        timeout: _,
    } = request;
    if !prefetch.is_empty() {
        return Err(unimplemented("prefetch"));
    }
    if params.is_some() || shard_key_selector.is_some() || lookup_from.is_some() {
        return Err(unimplemented("search params, shard keys and lookup_from"));
    }
    let query = match query.and_then(|q| q.variant) {
        None => None,
        Some(pb::query::Variant::Nearest(input)) => {
            use pb::vector_input::Variant;
            let vector = match input.variant {
                Some(Variant::Dense(dense)) => VectorInternal::Dense(dense.data),
                Some(Variant::Sparse(sparse)) => {
                    VectorInternal::Sparse(sparse_in(sparse.indices, sparse.values)?)
                }
                other => return Err(unimplemented(&format!("nearest query by {other:?}"))),
            };
            Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: vector,
                using,
            })))
        }
        Some(other) => return Err(unimplemented(&format!("query {other:?}"))),
    };
    Ok(QueryRequest {
        prefetches: Vec::new(),
        query,
        filter: filter(request_filter)?,
        score_threshold: score_threshold.map(OrderedFloat),
        limit: limit.unwrap_or(10) as usize,
        offset: offset.unwrap_or(0) as usize,
        params: None,
        with_vector: with_vectors(request_with_vectors),
        with_payload: with_payload(request_with_payload, false)?,
    })
}

pub fn scored_point(point: ScoredPoint) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(point_id_out(point.id)),
        payload: payload_out(point.payload),
        score: point.score,
        version: point.version,
        vectors: vectors_out(point.vector),
        shard_key: None,
        order_value: None,
    }
}

pub fn retrieved_point(record: Record) -> pb::RetrievedPoint {
    pb::RetrievedPoint {
        id: Some(point_id_out(record.id)),
        payload: payload_out(record.payload),
        vectors: vectors_out(record.vector),
        shard_key: None,
        order_value: None,
    }
}
