//! Request routing and the answers of each endpoint.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::{DemoConfig, DemoError};

/// Longest `/work` or `/sleep` a request may ask for, so one request cannot pin an instance (or
/// outlast any sensible stop timeout) forever.
pub(crate) const MAX_MS: u64 = 60_000;

const X_INSTANCE_ID: HeaderName = HeaderName::from_static("x-instance-id");
const X_ZONE: HeaderName = HeaderName::from_static("x-zone");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// State shared by all connections of one instance.
pub(crate) struct App {
    config: DemoConfig,
    instance_header: HeaderValue,
    zone_header: HeaderValue,
    /// Cleared by `POST /health/fail` so health-check failover can be demonstrated.
    healthy: AtomicBool,
    /// Requests being answered now (`GET /stats`), so a drain can be watched from outside.
    in_flight: AtomicUsize,
}

/// Counts a request as in flight until it is answered (or its connection is dropped).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer body type: small, fully buffered bodies.
pub(crate) type Body = Full<Bytes>;

impl App {
    /// Validates that the identity can travel in headers, once, at startup.
    pub(crate) fn new(config: DemoConfig) -> Result<Self, DemoError> {
        let header = |name, value: &str| {
            HeaderValue::from_str(value).map_err(|_| DemoError::InvalidIdentity {
                name,
                value: value.to_owned(),
            })
        };
        Ok(Self {
            instance_header: header("FLOTILLA_INSTANCE_ID", &config.instance_id)?,
            zone_header: header("FLOTILLA_ZONE", &config.zone)?,
            config,
            healthy: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Answers one request, always with the identity headers.
    pub(crate) async fn handle<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Body>, Infallible> {
        let _counted = InFlight::enter(&self.in_flight);
        let mut response = self.route(&request).await;
        let headers = response.headers_mut();
        headers.insert(X_INSTANCE_ID, self.instance_header.clone());
        headers.insert(X_ZONE, self.zone_header.clone());
        Ok(response)
    }

    async fn route<B>(&self, request: &Request<B>) -> Response<Body> {
        let method = request.method();
        match request.uri().path() {
            "/" if method == Method::GET => self.time(wants_json(request)),
            "/health" if method == Method::GET => {
                if self.healthy.load(Ordering::Relaxed) {
                    text(StatusCode::OK, "ok")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
                }
            }
            "/health/fail" if method == Method::POST => {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::info!("health checks will now fail");
                text(StatusCode::OK, "health checks will now fail")
            }
            "/health/pass" if method == Method::POST => {
                self.healthy.store(true, Ordering::Relaxed);
                tracing::info!("health checks pass again");
                text(StatusCode::OK, "health checks pass again")
            }
            "/work" if method == Method::GET => match millis(request.uri().query()) {
                Ok(ms) => {
                    burn_cpu(Duration::from_millis(ms)).await;
                    text(StatusCode::OK, &format!("worked {ms} ms"))
                }
                Err(reason) => text(StatusCode::BAD_REQUEST, reason),
            },
            "/sleep" if method == Method::GET => match millis(request.uri().query()) {
                Ok(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    text(StatusCode::OK, &format!("slept {ms} ms"))
                }
                Err(reason) => text(StatusCode::BAD_REQUEST, reason),
            },
            "/stats" if method == Method::GET => {
                // This request is one of them.
                let others = self.in_flight.load(Ordering::Relaxed).saturating_sub(1);
                let body = serde_json::json!({ "in_flight": others });
                response(StatusCode::OK, JSON, body.to_string())
            }
            "/" | "/health" | "/work" | "/sleep" | "/stats" => not_allowed("GET"),
            "/health/fail" | "/health/pass" => not_allowed("POST"),
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// `GET /`: the time, and who is telling it.
    fn time(&self, json: bool) -> Response<Body> {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let DemoConfig {
            instance_id, zone, ..
        } = &self.config;
        if json {
            let body = serde_json::json!({ "time": now, "instance_id": instance_id, "zone": zone });
            response(StatusCode::OK, JSON, body.to_string())
        } else {
            text(
                StatusCode::OK,
                &format!("It is {now}. Served by {instance_id} in {zone}."),
            )
        }
    }
}

/// Whether any `Accept` header asks for JSON.
fn wants_json<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .any(|value| value.to_str().is_ok_and(|v| v.contains("application/json")))
}

/// Parses the `ms` query parameter, capped at [`MAX_MS`].
fn millis(query: Option<&str>) -> Result<u64, &'static str> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .ok_or("missing ms: use ?ms=<milliseconds>")?;
    let ms: u64 = value
        .parse()
        .map_err(|_| "ms must be a whole number of milliseconds")?;
    Ok(ms.min(MAX_MS))
}

/// Keeps one CPU busy for `duration` on a blocking thread, so the server itself stays
/// responsive (health checks keep passing while the instance is "loaded").
async fn burn_cpu(duration: Duration) {
    let burn = tokio::task::spawn_blocking(move || {
        let end = Instant::now() + duration;
        let mut x: u64 = 0;
        while Instant::now() < end {
            for _ in 0..1_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        x
    });
    // A panic in a busy loop is impossible; a cancelled task (runtime shutdown) needs no answer.
    let _ = burn.await;
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    response(status, TEXT, body.to_owned())
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn response(status: StatusCode, content_type: HeaderValue, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_caps_ms() {
        assert_eq!(millis(Some("ms=250")), Ok(250));
        assert_eq!(millis(Some("x=1&ms=7")), Ok(7));
        assert_eq!(millis(Some("ms=999999")), Ok(MAX_MS));
        assert!(millis(None).is_err());
        assert!(millis(Some("ms=")).is_err());
        assert!(millis(Some("ms=-5")).is_err());
        assert!(millis(Some("ms=1.5")).is_err());
    }

    #[test]
    fn rejects_identity_that_cannot_be_a_header() {
        let config = DemoConfig {
            host: std::net::IpAddr::from([127, 0, 0, 1]),
            port: 1,
            instance_id: "bad\nid".into(),
            zone: "az-a".into(),
        };
        assert!(matches!(
            App::new(config),
            Err(DemoError::InvalidIdentity { .. })
        ));
    }
}
