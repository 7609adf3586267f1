//! The endpoint: every request is `POST /` (or `GET /?…`) with Query parameters; the service
//! is chosen by `Version` (unique per API: 2015-12-01 ELBv2, 2011-01-01 Auto Scaling,
//! 2016-11-15 EC2), else by the SigV4 scope; then `Action`. Every answer carries a request id
//! in the body (where botocore reads it) and in `x-amzn-RequestId`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::backend::AwsBackend;
use crate::call::{Answer, Call, Service};
use crate::model::{Ids, Registry};
use crate::protocol::sigv4::{self, Authorization, SignedRequest};
use crate::protocol::{xml, AwsError, Params};

/// Largest request body accepted (a launch template's user data is at most 16 KiB base64).
const MAX_BODY: usize = 1 << 20;

/// How the endpoint is configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Region in ARNs and zone names.
    pub region: String,
    /// Account in ARNs.
    pub account_id: String,
    /// Access key id → secret; empty = signatures are not checked.
    pub keys: BTreeMap<String, String>,
    /// The IP listeners created through the API bind.
    pub listen_ip: IpAddr,
}

/// The endpoint's state.
pub(crate) struct Api {
    pub(crate) settings: Settings,
    pub(crate) ids: Ids,
    pub(crate) backend: Arc<dyn AwsBackend>,
    /// What the API created; changes are applied through the backend before they count.
    pub(crate) registry: Mutex<Registry>,
}

/// Serves the AWS API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    registry: Registry,
    backend: Arc<dyn AwsBackend>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let api = Arc::new(Api {
        ids: Ids::new(&settings.region, &settings.account_id),
        settings,
        backend,
        registry: Mutex::new(registry),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(api);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
}

async fn handle(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = api.ids.request_id();
    let (status, text) = match accept(&api, &method, &uri, &headers, &body) {
        Err((service, e)) => failure(service, &e, &request_id),
        // A describe holds the cluster's lock for microseconds: answered on this thread, it
        // saves two thread hand-offs, which were most of its tail latency on a busy machine.
        Ok(call) if call.reads_only() => call.answer(&api, &request_id),
        // A change may apply a reconfiguration (bind listeners, store state): off the I/O
        // threads.
        Ok(call) => {
            let api2 = Arc::clone(&api);
            let rid = request_id.clone();
            tokio::task::spawn_blocking(move || call.answer(&api2, &rid))
                .await
                .unwrap_or_else(|_| {
                    let e = AwsError::internal("the request handler failed");
                    (500, xml::query_error("", &e, &request_id))
                })
        }
    };
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    r
}

/// A request that parsed, named a service and an action, and passed the signature check.
struct Accepted {
    params: Params,
    service: Service,
    action: String,
}

impl Accepted {
    /// Whether the action only reads (AWS names every such action `Describe…`).
    fn reads_only(&self) -> bool {
        self.action.starts_with("Describe")
    }

    /// Runs the action: (status, XML).
    fn answer(&self, api: &Api, request_id: &str) -> (u16, String) {
        let span = tracing::debug_span!(
            "aws_api",
            service = self.service.name(),
            action = self.action.as_str()
        );
        let _entered = span.enter();
        match Call::run(api, &self.params, self.service, &self.action) {
            Ok(Answer::Query(r)) => (
                200,
                xml::query_response(
                    &self.action,
                    self.service.namespace(),
                    r.as_deref(),
                    request_id,
                ),
            ),
            Ok(Answer::Ec2(body)) => (200, xml::ec2_response(&self.action, &body, request_id)),
            Err(e) => failure(Some(self.service), &e, request_id),
        }
    }
}

/// The error answer in the service's dialect (EC2's differs), or the Query one when the
/// service is unknown.
fn failure(service: Option<Service>, e: &AwsError, request_id: &str) -> (u16, String) {
    tracing::debug!(
        code = e.code.as_str(),
        message = e.message.as_str(),
        "aws api error"
    );
    let text = match service {
        Some(Service::Ec2) => xml::ec2_error(e, request_id),
        Some(s) => xml::query_error(s.namespace(), e, request_id),
        None => xml::query_error("", e, request_id),
    };
    (e.status, text)
}

/// Parses the request and checks its signature; an error comes with the service when known,
/// so it is answered in that service's dialect.
fn accept(
    api: &Api,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, (Option<Service>, AwsError)> {
    let query = uri.query().unwrap_or("");
    let input: &[u8] = if method == Method::GET {
        query.as_bytes()
    } else {
        body
    };
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let scope = auth
        .and_then(|a| Authorization::parse(a).ok())
        .map(|a| a.service);
    let params = Params::parse(input).map_err(|e| (None, e))?;
    let service = Service::of(params.get("Version"), scope.as_deref());
    let known = service.as_ref().ok().copied();
    if method != Method::POST && method != Method::GET {
        let e = AwsError::new(
            "InvalidAction",
            format!("{method} is not supported; send POST / with form parameters"),
        );
        return Err((known, e));
    }
    let service = service.map_err(|e| (None, e))?;
    check_signature(api, method, query, headers, body, auth, service).map_err(|e| (known, e))?;
    let action = params.get("Action").ok_or_else(|| {
        let e = AwsError::new(
            "MissingAction",
            "The request must contain the parameter Action",
        );
        (known, e)
    })?;
    let action = action.to_string();
    Ok(Accepted {
        params,
        service,
        action,
    })
}

fn check_signature(
    api: &Api,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    auth: Option<&str>,
    service: Service,
) -> Result<(), AwsError> {
    let keys = &api.settings.keys;
    let Some(auth) = auth else {
        if keys.is_empty() {
            return Ok(());
        }
        return Err(AwsError::forbidden(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let auth = Authorization::parse(auth)?;
    if keys.is_empty() {
        return Ok(());
    }
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
        map.entry(name.as_str().to_string()).or_default().push(v);
    }
    let req = SignedRequest {
        method: method.as_str(),
        query,
        headers: &map,
        body,
    };
    sigv4::verify(
        &req,
        &auth,
        keys,
        &api.settings.region,
        SystemTime::now(),
        service == Service::Ec2,
    )
}
