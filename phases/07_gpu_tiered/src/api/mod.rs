//! The HTTP API ([`server`], described by `openapi.json`) and a small
//! blocking client of it ([`client`]) used by the load generator and the
//! tests.

pub mod client;
pub mod coalesce;
pub mod server;
