//! Completing a launch lifecycle hook from inside the instance: what an application does
//! when it must warm up before traffic (AWS `CompleteLifecycleAction` from user data).
//!
//! With `DEMO_LAUNCH_HOOK=NAME` in the environment (set in the launch template's `env`), the
//! demo app, once it listens, waits `DEMO_WARMUP` (default 0, standing in for filling a
//! cache) and then completes hook NAME with `continue` at the admin API Flotilla named in
//! `FLOTILLA_ADMIN` whenever the instance waits for it: the launch hook fires again when an
//! instance leaves the warm pool, so the app keeps asking (every 500 ms; 409 means "not
//! waiting now") for as long as it runs. An unknown group or instance (404) or a refused body
//! ends it with a log line: the hook's heartbeat timeout then decides, as it would for an
//! application that never answered.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pause between attempts.
const RETRY: Duration = Duration::from_millis(500);

/// What completing the hook needs, when `DEMO_LAUNCH_HOOK` asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LaunchHook {
    /// `host:port` of the admin API (from `FLOTILLA_ADMIN`, `http://` stripped).
    admin: String,
    group: String,
    instance_id: String,
    hook: String,
    warmup: Duration,
}

impl LaunchHook {
    /// The hook to complete, if `DEMO_LAUNCH_HOOK` and `FLOTILLA_ADMIN` are set.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let hook = lookup("DEMO_LAUNCH_HOOK").filter(|h| !h.is_empty())?;
        let admin = lookup("FLOTILLA_ADMIN")?;
        let admin = admin.trim_start_matches("http://");
        let admin = admin.split('/').next().unwrap_or(admin).to_string();
        let warmup = lookup("DEMO_WARMUP")
            .and_then(|w| humantime::parse_duration(w.trim()).ok())
            .unwrap_or(Duration::ZERO);
        Some(Self {
            admin,
            group: lookup("FLOTILLA_GROUP").unwrap_or_default(),
            instance_id: lookup("FLOTILLA_INSTANCE_ID").unwrap_or_default(),
            hook,
            warmup,
        })
    }

    /// Warms up, then completes the hook (see the module docs).
    pub(crate) async fn complete(self) {
        tokio::time::sleep(self.warmup).await;
        let body = serde_json::json!({
            "instance_id": self.instance_id,
            "hook": self.hook,
            "result": "continue",
        })
        .to_string();
        loop {
            match self.post(&body).await {
                Ok(200) => tracing::info!(
                    hook = self.hook.as_str(),
                    "warmed up; lifecycle hook completed"
                ),
                // Not waiting now, or the admin API is busy or restarting: ask again later.
                Ok(409) | Ok(500..) | Err(_) => {}
                other => {
                    tracing::warn!(
                        hook = self.hook.as_str(),
                        "cannot complete the lifecycle hook: {other:?}"
                    );
                    return;
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One `POST /v1/groups/{group}/lifecycle-actions`; the answer's status code.
    async fn post(&self, body: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(&self.admin).await?;
        let request = format!(
            "POST /v1/groups/{}/lifecycle-actions HTTP/1.1\r\nHost: {}\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.group,
            self.admin,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        // "HTTP/1.1 200": the status code is bytes 9..12.
        std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_the_hook_from_the_environment() {
        let env: HashMap<&str, &str> = [
            ("DEMO_LAUNCH_HOOK", "warm-cache"),
            ("DEMO_WARMUP", "500ms"),
            ("FLOTILLA_ADMIN", "http://127.0.0.1:9090"),
            ("FLOTILLA_GROUP", "web"),
            ("FLOTILLA_INSTANCE_ID", "i-0a1b"),
        ]
        .into_iter()
        .collect();
        let hook = LaunchHook::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(hook.admin, "127.0.0.1:9090");
        assert_eq!(hook.warmup, Duration::from_millis(500));
        assert_eq!(
            (hook.group.as_str(), hook.hook.as_str()),
            ("web", "warm-cache")
        );
        assert!(LaunchHook::from_lookup(|k| (k == "FLOTILLA_ADMIN").then(|| "x".into())).is_none());
    }
}
