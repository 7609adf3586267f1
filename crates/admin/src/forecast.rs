//! `GET /v1/groups/{name}/forecast`: predictive scaling's forecast.

use axum::extract::{Path, State};
use axum::Json;

use crate::api::{ErrorBody, ForecastInfo};
use crate::server::Backend;
use crate::AdminError;

/// The forecasts of the group's predictive scaling policies: the next 48 hours of load and
/// the capacity each hour needs, beside the last 48 hours measured. A policy forecasts once
/// it has 24 hours of history; the history survives restarts.
#[utoipa::path(get, path = "/v1/groups/{name}/forecast", tag = "groups",
    params(("name" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "The forecasts", body = ForecastInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ))]
pub(crate) async fn get_forecast(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<ForecastInfo>, AdminError> {
    b.forecast(&name).map(Json)
}
