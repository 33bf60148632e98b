//! Integration tests of the agent crate: the whole pipeline over the fixture merchants with
//! the real embedding model, and generators against fake servers that speak the real wire
//! protocols.

mod compliance_table;
mod helpers;
mod llm;
mod pipeline;
