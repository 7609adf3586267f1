//! The connection to etcd: one balanced client over every endpoint, with the settings the
//! measured pitfalls demand, and unary calls that are always bounded and retried.

use std::time::Duration;

use etcd_client::{
    Client, Compare, ConnectOptions, DeleteOptions, GetOptions, GetResponse, KeyValue,
    LeaseTimeToLiveOptions, PutOptions, Txn, TxnResponse,
};

use crate::error::{ClusterError, Result};
use crate::retry::{retry, Attempt, RetryPolicy};

/// etcd's default `--grpc-keepalive-min-time`: a client that pings more often is sent GOAWAY
/// (too_many_pings) and every stream on the connection breaks about 2 s later.
pub const MIN_HTTP2_KEEPALIVE: Duration = Duration::from_secs(5);

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the members, e.g. `http://10.77.0.1:2379`.
    pub endpoints: Vec<String>,
    /// TCP connect timeout per endpoint.
    pub connect_timeout: Duration,
    /// HTTP/2 ping interval; raised to [`MIN_HTTP2_KEEPALIVE`] if lower. It is what notices a
    /// member that vanished without closing the connection (a partition), so streams re-open.
    pub keepalive_interval: Duration,
    /// How long an HTTP/2 ping may go unanswered before the connection is dropped.
    pub keepalive_timeout: Duration,
    /// Retry of unary calls.
    pub retry: RetryPolicy,
}

impl EtcdConfig {
    /// Defaults for `endpoints`: 2 s connect timeout, HTTP/2 pings every 5 s with a 3 s
    /// timeout, [`RetryPolicy::default`].
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            connect_timeout: Duration::from_secs(2),
            keepalive_interval: MIN_HTTP2_KEEPALIVE,
            keepalive_timeout: Duration::from_secs(3),
            retry: RetryPolicy::default(),
        }
    }

    /// Parses a comma-separated list as the CLI's `--etcd URL[,URL…]` gives it.
    pub fn from_list(list: &str) -> Result<Self> {
        let endpoints: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.contains("://") {
                    s.to_string()
                } else {
                    format!("http://{s}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(ClusterError::Invalid("no etcd endpoint given".into()));
        }
        Ok(Self::new(endpoints))
    }
}

/// A cloneable handle on the etcd cluster: every unary call goes through [`retry`], so a dead
/// member costs a retry rather than an error, and a dead cluster a clear
/// [`ClusterError::Unreachable`] after a bounded time rather than a hang.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    config: EtcdConfig,
    endpoints_text: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints_text)
            .finish()
    }
}

impl Etcd {
    /// Builds the client. The channel connects lazily, so this does not fail when etcd is
    /// down; the first call does, after its retries.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(ClusterError::Invalid("no etcd endpoint given".into()));
        }
        let keepalive = config.keepalive_interval.max(MIN_HTTP2_KEEPALIVE);
        if keepalive != config.keepalive_interval {
            tracing::warn!(asked = ?config.keepalive_interval, used = ?keepalive,
                "HTTP/2 keep-alive raised to etcd's minimum ping interval");
        }
        // No keep-alive while idle: etcd does not permit pings without an open stream.
        // require_leader: a member cut off from its raft leader fails calls and cancels watch
        // streams at once (which re-open elsewhere) instead of serving them stale or stalled.
        let options = ConnectOptions::new()
            .with_require_leader(true)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(keepalive, config.keepalive_timeout);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|source| ClusterError::Etcd {
                operation: "connect".into(),
                source,
            })?;
        let endpoints_text = config.endpoints.join(",");
        Ok(Etcd {
            client,
            config,
            endpoints_text,
        })
    }

    /// The raw client, for streams (watch, keep-alive, observe) that the caller re-opens itself.
    pub fn raw(&self) -> Client {
        self.client.clone()
    }

    /// The configuration this handle was built with.
    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// Runs a unary call with this handle's retry policy.
    pub async fn call<T, F, Fut>(&self, operation: &str, mut op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let client = &self.client;
        retry(&self.config.retry, &self.endpoints_text, operation, || {
            let fut = op(client.clone());
            async move { fut.await.map_err(|e| Attempt::from_etcd(operation, e)) }
        })
        .await
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut resp = self
            .call(&format!("get {key}"), |mut c| async move {
                c.get(key, None).await
            })
            .await?;
        Ok(resp.take_kvs().into_iter().next())
    }

    /// Reads every key under `prefix` at one revision; the response header's revision is the
    /// one to watch from (plus one).
    pub async fn get_prefix(&self, prefix: &str) -> Result<GetResponse> {
        self.call(&format!("list {prefix}"), |mut c| async move {
            c.get(prefix, Some(GetOptions::new().with_prefix())).await
        })
        .await
    }

    /// Writes one key, attached to `lease` when given.
    pub async fn put(&self, key: &str, value: Vec<u8>, lease: Option<i64>) -> Result<i64> {
        let resp = self
            .call(&format!("put {key}"), |mut c| {
                let value = value.clone();
                let options = lease.map(|id| PutOptions::new().with_lease(id));
                async move { c.put(key, value, options).await }
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Deletes one key, or every key under it with `prefix`; returns how many went.
    pub async fn delete(&self, key: &str, prefix: bool) -> Result<i64> {
        let resp = self
            .call(&format!("delete {key}"), |mut c| async move {
                let options = prefix.then(|| DeleteOptions::new().with_prefix());
                c.delete(key, options).await
            })
            .await?;
        Ok(resp.deleted())
    }

    /// Runs a transaction (the caller builds it anew for each attempt).
    pub async fn txn(&self, operation: &str, build: impl Fn() -> Txn) -> Result<TxnResponse> {
        self.call(operation, |mut c| {
            let txn = build();
            async move { c.txn(txn).await }
        })
        .await
    }

    /// Grants a lease of `ttl` seconds; etcd silently raises TTLs below its floor (2 s with the
    /// default election timeout), so lower values are refused here instead.
    pub async fn grant(&self, ttl: i64) -> Result<i64> {
        if ttl < 2 {
            return Err(ClusterError::Invalid(format!(
                "lease TTL {ttl}s is below etcd's 2 s floor"
            )));
        }
        let resp = self
            .call("lease grant", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        Ok(resp.id())
    }

    /// Remaining seconds of a lease, `None` when it is gone.
    pub async fn time_to_live(&self, lease: i64) -> Result<Option<i64>> {
        let resp = self
            .call("lease ttl", |mut c| async move {
                c.lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new()))
                    .await
            })
            .await?;
        Ok((resp.ttl() > 0).then_some(resp.ttl()))
    }

    /// Remaining and granted seconds of a lease, `None` when it is gone: how long ago its
    /// holder last renewed it is granted − remaining.
    pub async fn lease_ttls(&self, lease: i64) -> Result<Option<(i64, i64)>> {
        let resp = self
            .call("lease ttl", |mut c| async move {
                c.lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new()))
                    .await
            })
            .await?;
        Ok((resp.ttl() > 0).then_some((resp.ttl(), resp.granted_ttl())))
    }

    /// Revokes a lease (its keys go with it). A lease already gone is not an error.
    pub async fn revoke(&self, lease: i64) -> Result<()> {
        let result = self
            .call("lease revoke", |mut c| async move {
                c.lease_revoke(lease).await
            })
            .await;
        match result {
            Err(ClusterError::Etcd { source, .. }) if source.to_string().contains("not found") => {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// The store's current revision (a linearizable read, so it needs quorum).
    pub async fn revision(&self) -> Result<i64> {
        let resp = self
            .call("revision", |mut c| async move {
                c.get("\0", Some(GetOptions::new().with_count_only())).await
            })
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Compacts history up to `revision` (tests and maintenance).
    pub async fn compact(&self, revision: i64) -> Result<()> {
        self.call(
            "compact",
            |mut c| async move { c.compact(revision, None).await },
        )
        .await
        .map(|_| ())
    }
}

/// A compare that holds while `key` still exists with `create_revision`: the guard of every
/// fenced write (see [`crate::election`]).
pub fn still_created_at(key: &str, create_revision: i64) -> Compare {
    Compare::create_revision(key, etcd_client::CompareOp::Equal, create_revision)
}
