//! `flotilla dns …`, `flotilla distributions` and `flotilla invalidate`: the edge over the
//! admin API.

use std::process::ExitCode;

use flotilla_admin::edge_api::{
    DistributionInfo, DnsHealthCheckInfo, DnsZoneInfo, InvalidationInfo, InvalidationRequest,
    RecordSetInfo,
};

use crate::cli::AdminArgs;
use crate::commands::{client, refused};

/// `flotilla dns` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DnsCommand {
    /// Health checks with their state (healthy, why, when last checked).
    Health {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Hosted zones, or the record sets of one zone.
    Records {
        /// The zone; without it, every zone.
        zone: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

/// Runs a `flotilla dns` subcommand.
pub(crate) async fn dns(command: DnsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DnsCommand::Health { json, admin } => {
            let checks: Vec<DnsHealthCheckInfo> =
                match client(&admin)?.get("/v1/dns/health-checks").await {
                    Ok(c) => c,
                    Err(e) => return refused(e),
                };
            if json {
                return print_json(&checks);
            }
            println!(
                "{:<20} {:<11} {:<22} {:<9} REASON",
                "HEALTH CHECK", "TYPE", "TARGET", "STATE"
            );
            for c in &checks {
                let state = if c.healthy { "healthy" } else { "unhealthy" };
                println!(
                    "{:<20} {:<11} {:<22} {:<9} {}",
                    c.name,
                    c.kind,
                    c.target.as_deref().unwrap_or("-"),
                    state,
                    c.reason
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DnsCommand::Records {
            zone: None,
            json,
            admin,
        } => {
            let zones: Vec<DnsZoneInfo> = match client(&admin)?.get("/v1/dns/zones").await {
                Ok(z) => z,
                Err(e) => return refused(e),
            };
            if json {
                return print_json(&zones);
            }
            for z in &zones {
                println!(
                    "{} (serial {}, {} record sets, NS {})",
                    z.name,
                    z.serial,
                    z.record_sets,
                    z.name_servers.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DnsCommand::Records {
            zone: Some(zone),
            json,
            admin,
        } => {
            let sets: Vec<RecordSetInfo> = match client(&admin)?
                .get(&format!("/v1/dns/zones/{zone}/records"))
                .await
            {
                Ok(s) => s,
                Err(e) => return refused(e),
            };
            if json {
                return print_json(&sets);
            }
            for s in &sets {
                println!("{}", record_line(s));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn record_line(s: &RecordSetInfo) -> String {
    let routing = s.routing.as_deref().unwrap_or("simple");
    let id = s
        .set_identifier
        .as_deref()
        .map(|i| format!(" [{i}]"))
        .unwrap_or_default();
    let ttl = s.ttl.map_or("60 (alias)".to_string(), |t| t.to_string());
    let data = match &s.alias {
        Some(a) => format!(
            "ALIAS {}",
            a.load_balancer
                .as_deref()
                .map(|n| format!("load_balancer:{n}"))
                .or(a
                    .distribution
                    .as_deref()
                    .map(|n| format!("distribution:{n}")))
                .or(a.record.clone())
                .unwrap_or_default()
        ),
        None => s.values.join(" | "),
    };
    let hc = s
        .health_check
        .as_deref()
        .map(|h| format!(" health_check={h}"))
        .unwrap_or_default();
    format!(
        "{:<32} {:<5} {:>6} {routing}{id} {data}{hc}",
        s.name, s.rtype, ttl
    )
}

/// `flotilla distributions`.
pub(crate) async fn distributions(admin: AdminArgs, json: bool) -> anyhow::Result<ExitCode> {
    let list: Vec<DistributionInfo> = match client(&admin)?.get("/v1/distributions").await {
        Ok(l) => l,
        Err(e) => return refused(e),
    };
    if json {
        return print_json(&list);
    }
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10} {:>12} {:>12}  LISTENERS",
        "DISTRIBUTION",
        "REQUESTS",
        "HITS",
        "MISSES",
        "ERRORS",
        "HIT %",
        "ORIGIN",
        "SAVED",
        "CACHED"
    );
    for d in &list {
        println!(
            "{:<16} {:>9} {:>9} {:>9} {:>7} {:>6.1}% {:>10} {:>12} {:>12}  {}",
            d.name,
            d.requests,
            d.hits + d.refresh_hits,
            d.misses,
            d.errors,
            d.hit_ratio * 100.0,
            d.origin_requests,
            d.bytes_saved,
            d.cached_bytes,
            d.listeners.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `flotilla invalidate NAME PATH…`.
pub(crate) async fn invalidate(
    admin: AdminArgs,
    distribution: &str,
    paths: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/distributions/{distribution}/invalidations");
    match client(&admin)?
        .post::<_, InvalidationInfo>(&path, &InvalidationRequest { paths })
        .await
    {
        Ok(i) => {
            println!(
                "invalidation {} {}: {} object(s) removed for {}",
                i.id,
                i.status,
                i.objects,
                i.paths.join(" ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}
