//! Completing a launch lifecycle hook from inside the instance: what an application does
//! when it must warm up before traffic (AWS `CompleteLifecycleAction` from user data).
//!
//! With `DEMO_LAUNCH_HOOK=NAME` in the environment (set in the launch template's `env`), the
//! demo app, once it listens, waits `DEMO_WARMUP` (default 0, standing in for filling a
//! cache) and then completes hook NAME with `continue` at the admin API Flotilla named in
//! `FLOTILLA_ADMIN`, retrying every 200 ms while the instance is not yet waiting (409) for at
//! most a minute. Any other answer ends the attempt with a log line: the hook's heartbeat
//! timeout then decides, as it would for an application that never answered.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the app keeps trying to complete its hook.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// Pause between attempts while the instance is not yet waiting.
const RETRY: Duration = Duration::from_millis(200);

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
        let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
        loop {
            match self.post(&body).await {
                Ok(200) => {
                    tracing::info!(
                        hook = self.hook.as_str(),
                        "warmed up; lifecycle hook completed"
                    );
                    return;
                }
                Ok(409) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY).await;
                }
                other => {
                    tracing::warn!(
                        hook = self.hook.as_str(),
                        "cannot complete the lifecycle hook: {other:?}"
                    );
                    return;
                }
            }
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
