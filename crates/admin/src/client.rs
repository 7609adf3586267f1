//! A small JSON client for the admin API, used by the CLI commands that talk to `flotilla up`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::ErrorBody;

/// Why a call to the admin API failed, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL given with `--admin` is not a URL.
    #[error("`{0}` is not a valid admin URL")]
    BadUrl(String),
    /// Nothing answered: most likely `flotilla up` is not running there.
    #[error("cannot reach the admin API at {url} ({reason}); is `flotilla up` running?")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The API answered with an error.
    #[error("{error} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Reason from the JSON body.
        error: String,
        /// Code from the JSON body.
        code: String,
        /// Itemised problems (a refused reload lists every config error here).
        details: Vec<String>,
    },
    /// The answer was not the JSON expected.
    #[error("unexpected answer from the admin API: {0}")]
    Decode(String),
}

/// Talks JSON to one admin endpoint, with an optional bearer token.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9090`).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        base.parse::<Uri>()
            .map_err(|_| ClientError::BadUrl(base.clone()))?;
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self { base, token, http })
    }

    /// `GET path`, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `PUT path` with a JSON body, answer decoded as `T`.
    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `POST path` with a JSON body, answer decoded as `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`, answer decoded as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path);
        let uri: Uri = url.parse().map_err(|_| ClientError::BadUrl(url.clone()))?;
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::BadUrl(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let parsed: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
            let (error, code, details) = parsed
                .map(|b| (b.error, b.code, b.errors))
                .unwrap_or_else(|| {
                    (
                        String::from_utf8_lossy(&bytes).into_owned(),
                        "unknown".into(),
                        Vec::new(),
                    )
                });
            return Err(ClientError::Api {
                status: status.as_u16(),
                error,
                code,
                details,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
