//! The "What is the time?" demo service that Flotilla runs as instances (`flotilla demo-app`).
//!
//! It exists so that load balancing, health checks, draining and auto scaling can be watched
//! end to end without writing an application: every answer says which instance and zone served
//! it, `/health` can be failed on purpose, `/work` burns CPU to trigger CPU-based scaling, and
//! `/sleep` holds requests in flight to show draining. Endpoints (contract §5, plus two
//! extensions):
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | `200`, `It is <RFC 3339 time>. Served by <instance id> in <zone>.`; JSON when `Accept` contains `application/json` |
//! | `GET /health` | `200 ok`, or `503` after `POST /health/fail` |
//! | `POST /health/fail` | health checks fail from now on |
//! | `POST /health/pass` | *extension*: health checks pass again (undoes `/health/fail`) |
//! | `GET /work?ms=N` | burns N ms of CPU (N ≤ 60000), then `200` |
//! | `GET /sleep?ms=N` | waits N ms (N ≤ 60000), then `200` |
//! | `GET /stats` | *extension*: `{"in_flight": N}`, the other requests being answered now |
//!
//! Every answer carries `X-Instance-Id` and `X-Zone`. Unknown paths get `404`, a bad `ms` gets
//! `400`, a wrong method `405`.
//!
//! With `DEMO_LAUNCH_HOOK=NAME` (and optionally `DEMO_WARMUP=2s`) in its environment, the app
//! completes launch lifecycle hook NAME itself once it listens and has "warmed up", at the
//! admin API named by `FLOTILLA_ADMIN` (see `lifecycle.rs`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod lifecycle;
mod routes;
mod server;

pub use config::{DemoConfig, DemoError};
pub use server::{run, serve};

/// Runs the service on a fresh single-threaded runtime until SIGTERM/SIGINT.
///
/// Many instances run on one machine at once, so each stays light: one thread for the server
/// (plus Tokio's on-demand blocking threads that `/work` burns CPU on). Configuration comes from
/// the environment Flotilla sets (see [`DemoConfig::from_env`]).
pub fn main_blocking() -> Result<(), DemoError> {
    let config = DemoConfig::from_env()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    runtime.block_on(run(config))
}
