//! `flotilla-cluster-probe`: an election candidate in its own process, so that tests and
//! `bench/cluster-failover.sh` can SIGKILL or SIGSTOP a leader by PID. It prints one JSON
//! object per line on stdout (`event` plus `wall_ms`, wall-clock milliseconds, comparable
//! between processes of one machine):
//!
//! `lease`, `leader` (won), `write` (a fenced write landed), `fenced` (a fenced write was
//! refused), `self_fenced` (stepped down because the lease was not confirmed in time),
//! `write_error`, `error` (fatal; exit 2).
//!
//! Usage: `flotilla-cluster-probe candidate --endpoints URL[,URL…] --id ID [--address A]
//! [--ttl SECS] [--fence-key KEY] [--write-ms MS] [--no-self-fence]`

use std::time::Duration;

use flotilla_cluster::election::SELF_FENCE_MARGIN;
use flotilla_cluster::records::now_ms;
use flotilla_cluster::{Candidate, ClusterError, Etcd, EtcdConfig, Keys, LeaderInfo};
use serde_json::{json, Value};

struct Args {
    endpoints: String,
    id: String,
    address: String,
    ttl: i64,
    fence_key: String,
    write_ms: u64,
    self_fence: bool,
}

fn emit(event: &str, mut fields: Value) {
    if let Some(map) = fields.as_object_mut() {
        map.insert("event".into(), json!(event));
        map.insert("wall_ms".into(), json!(now_ms()));
    }
    println!("{fields}");
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    if argv.next().as_deref() != Some("candidate") {
        return Err("usage: flotilla-cluster-probe candidate --endpoints URLS --id ID [--address A] [--ttl SECS] [--fence-key KEY] [--write-ms MS] [--no-self-fence]".into());
    }
    let mut args = Args {
        endpoints: String::new(),
        id: String::new(),
        address: String::new(),
        ttl: flotilla_cluster::election::CONTROLLER_TTL_SECS,
        fence_key: format!("{}probe/fenced", Keys::default().root()),
        write_ms: 100,
        self_fence: true,
    };
    while let Some(flag) = argv.next() {
        if flag == "--no-self-fence" {
            args.self_fence = false;
            continue;
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--endpoints" => args.endpoints = value,
            "--id" => args.id = value,
            "--address" => args.address = value,
            "--ttl" => args.ttl = value.parse().map_err(|e| format!("--ttl: {e}"))?,
            "--fence-key" => args.fence_key = value,
            "--write-ms" => {
                args.write_ms = value.parse().map_err(|e| format!("--write-ms: {e}"))?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.endpoints.is_empty() || args.id.is_empty() {
        return Err("--endpoints and --id are required".into());
    }
    Ok(args)
}

/// Leads until fenced or self-fenced, writing `id:seq` to the fence key every `write_ms`.
async fn lead(candidate: &Candidate, args: &Args) -> Result<(), ClusterError> {
    let leadership = candidate.campaign().await?;
    let fence = leadership.fence().clone();
    emit(
        "leader",
        json!({"id": args.id, "key": fence.election_key, "rev": fence.create_revision, "lease": format!("{:x}", leadership.lease_id())}),
    );
    let mut seq = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(args.write_ms)).await;
        if args.self_fence && !leadership.is_fresh(SELF_FENCE_MARGIN) {
            let age = candidate.lease().snapshot().confirmed_age();
            emit(
                "self_fenced",
                json!({"id": args.id, "confirmed_age_ms": age.as_millis() as u64}),
            );
            return Ok(());
        }
        seq += 1;
        let value = format!("{}:{seq}", args.id);
        match leadership
            .write()
            .put(&args.fence_key, &value)
            .commit()
            .await
        {
            Ok(revision) => emit(
                "write",
                json!({"id": args.id, "seq": seq, "revision": revision}),
            ),
            Err(err @ ClusterError::Fenced { .. }) => {
                emit(
                    "fenced",
                    json!({"id": args.id, "seq": seq, "error": err.to_string()}),
                );
                return Ok(());
            }
            Err(err) => emit(
                "write_error",
                json!({"id": args.id, "seq": seq, "error": err.to_string()}),
            ),
        }
    }
}

async fn run(args: Args) -> Result<(), ClusterError> {
    let etcd = Etcd::connect(EtcdConfig::from_list(&args.endpoints)?).await?;
    let info = LeaderInfo {
        id: args.id.clone(),
        address: args.address.clone(),
    };
    let candidate =
        Candidate::new(etcd, &Keys::default().leader_election(), info, args.ttl).await?;
    emit(
        "lease",
        json!({"id": args.id, "lease": format!("{:x}", candidate.lease().id()), "pid": std::process::id()}),
    );
    loop {
        lead(&candidate, &args).await?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(64);
        }
    };
    if let Err(err) = run(args).await {
        emit("error", json!({"error": err.to_string()}));
        std::process::exit(2);
    }
}
