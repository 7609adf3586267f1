//! The dashboard at `GET /`: one static page and its script, compiled into the binary so it
//! needs nothing from outside (no CDN, no files beside the binary).
//!
//! The page holds no data: its script reads everything from the admin API, sending the bearer
//! token when the API needs one. So the two static files are served without the token (a
//! browser cannot add a header to a navigation) and reveal nothing about the cluster; every
//! `/v1/…` answer stays behind the token.

use axum::http::header;
use axum::response::IntoResponse;

/// The page: markup and styles.
const INDEX_HTML: &str = include_str!("../dashboard/index.html");
/// The page's script: polling, rendering, charts.
const DASHBOARD_JS: &str = include_str!("../dashboard/dashboard.js");

/// Only the page's own script, no inline script, requests to this origin only, no framing:
/// even a bug in the script's escaping could not run injected code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Headers of both files: the policy above, no MIME sniffing, no referrer (the URL fragment may
/// carry a token), and revalidation so an upgraded binary's page is picked up.
fn headers(content_type: &'static str) -> [(header::HeaderName, &'static str); 5] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ]
}

/// The dashboard: zones and instances, traffic and capacity charts, activities. Static (it
/// holds no data), so served without the bearer token; it asks for the token when the API
/// answers 401.
#[utoipa::path(get, path = "/", tag = "dashboard", security(()),
    responses(
        (status = 200, description = "The dashboard page", body = String, content_type = "text/html; charset=utf-8"),
    ))]
pub(crate) async fn index() -> impl IntoResponse {
    (headers("text/html; charset=utf-8"), INDEX_HTML)
}

/// The dashboard's script (served from the same origin so the policy can forbid inline code).
pub(crate) async fn script() -> impl IntoResponse {
    (headers("text/javascript; charset=utf-8"), DASHBOARD_JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cluster mode's hosts come from `GET /v1/nodes` into a panel that starts hidden, so a
    /// `flotilla up` page (the endpoint answers 404: no nodes) shows no host boxes.
    #[test]
    fn hosts_panel_reads_the_nodes_and_starts_hidden() {
        assert!(INDEX_HTML.contains(r#"<section class="panel" id="hosts" hidden>"#));
        assert!(DASHBOARD_JS.contains("api('/v1/nodes')"));
        assert!(DASHBOARD_JS.contains("e.status === 404 ? []"));
        assert!(DASHBOARD_JS.contains("panel.hidden = !nodes || !nodes.length"));
    }
}
