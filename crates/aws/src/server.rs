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
    let api2 = Arc::clone(&api);
    let rid = request_id.clone();
    let answered =
        tokio::task::spawn_blocking(move || respond(&api2, &method, &uri, &headers, &body, &rid))
            .await;
    let (status, text) = answered.unwrap_or_else(|_| {
        let e = AwsError::internal("the request handler failed");
        (500, xml::query_error("", &e, &request_id))
    });
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

/// The whole request, synchronously: (status, XML).
pub(crate) fn respond(
    api: &Api,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> (u16, String) {
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
    let params = Params::parse(input);
    let service = params
        .as_ref()
        .ok()
        .and_then(|p| Service::of(p.get("Version"), scope.as_deref()).ok());
    let fail = |e: AwsError| {
        let text = match service {
            Some(Service::Ec2) => xml::ec2_error(&e, request_id),
            Some(s) => xml::query_error(s.namespace(), &e, request_id),
            None => xml::query_error("", &e, request_id),
        };
        (e.status, text)
    };
    let result = (|| {
        let params = params?;
        if method != Method::POST && method != Method::GET {
            return Err(AwsError::new(
                "InvalidAction",
                format!("{method} is not supported; send POST / with form parameters"),
            ));
        }
        let service = Service::of(params.get("Version"), scope.as_deref())?;
        check_signature(api, method, query, headers, body, auth, service)?;
        let action = params.get("Action").ok_or_else(|| {
            AwsError::new(
                "MissingAction",
                "The request must contain the parameter Action",
            )
        })?;
        let span = tracing::debug_span!("aws_api", service = service.name(), action);
        let _entered = span.enter();
        let answer = Call::run(api, &params, service, action)?;
        Ok((service, action.to_string(), answer))
    })();
    match result {
        Ok((service, action, Answer::Query(r))) => (
            200,
            xml::query_response(&action, service.namespace(), r.as_deref(), request_id),
        ),
        Ok((_, action, Answer::Ec2(body))) => (200, xml::ec2_response(&action, &body, request_id)),
        Err(e) => {
            tracing::debug!(
                code = e.code.as_str(),
                message = e.message.as_str(),
                "aws api error"
            );
            fail(e)
        }
    }
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
