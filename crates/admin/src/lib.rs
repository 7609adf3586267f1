//! The operator surface over HTTP: the admin API that `flotilla status`, `flotilla scale`
//! and scripts talk to, and the client the CLI uses to reach it.
//!
//! The API never owns state: it asks an [`AdminBackend`] (implemented by the runtime), so the
//! same handlers serve a real cluster and a test double.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
mod auth;
pub mod client;
mod dashboard;
pub mod edge_api;
mod error;
mod forecast;
pub mod relay;
pub mod server;
mod spot;

pub use client::{AdminClient, ClientError};
pub use error::AdminError;
pub use server::{openapi, router, serve, AdminBackend};
