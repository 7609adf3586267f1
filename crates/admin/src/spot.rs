//! `POST /v1/instances/{id}/spot-interruption`: the Spot interruption drill.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;

use crate::api::{ErrorBody, SpotInterruptionRequest, SpotInterruptionResponse};
use crate::server::{json_object, parse_duration, Backend};
use crate::AdminError;

/// Sends a Spot instance its interruption notice, as EC2 does two minutes before it takes the
/// capacity back: with the group's `capacity_rebalance` its replacement launches at once and
/// it is drained when the replacement is healthy; without, it is drained before the deadline
/// and replaced as it leaves. At the deadline it is killed.
#[utoipa::path(post, path = "/v1/instances/{id}/spot-interruption", tag = "instances",
    params(("id" = String, Path, description = "Instance id, e.g. i-0a1b2c3d4e5f")),
    request_body = SpotInterruptionRequest,
    responses(
        (status = 200, description = "Notice given; when it is reclaimed", body = SpotInterruptionResponse),
        (status = 400, description = "Bad body or notice (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "Not a Spot instance, not in service, or already noticed", body = ErrorBody),
    ))]
pub(crate) async fn spot_interruption(
    State(b): State<Backend>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<SpotInterruptionResponse>, AdminError> {
    let request: SpotInterruptionRequest = json_object(body)?;
    let notice = match request.notice.as_deref() {
        Some(n) => {
            let d = parse_duration("notice", n)?;
            if d.is_zero() || d > std::time::Duration::from_secs(3600) {
                return Err(AdminError::BadRequest(format!(
                    "notice: `{n}` must be between 1s and 1h"
                )));
            }
            Some(d)
        }
        None => None,
    };
    b.interrupt_spot(&id, notice).map(Json)
}
