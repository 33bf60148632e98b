//! Integration tests of the knowledge crate against the real embedding model and the
//! fixture merchants, on both index backends (Qdrant through its test server).

mod bad_input;
mod chunking;
mod embedding;
mod helpers;
mod ingest;
mod qdrant;
mod retrieval;
