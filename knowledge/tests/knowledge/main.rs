//! Integration tests of the knowledge crate against the real embedding model and the
//! fixture merchants.

mod bad_input;
mod chunking;
mod embedding;
mod helpers;
mod ingest;
mod retrieval;
