//! Command-line interface (spec §1).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Flotilla: an application/network load balancer and auto scaler in one binary.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about)]
pub(crate) struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Where the admin API of a running `flotilla up` is.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    /// Admin API base URL (inside an instance, FLOTILLA_ADMIN names it).
    #[arg(
        long = "admin",
        env = "FLOTILLA_ADMIN",
        default_value = "http://127.0.0.1:9090"
    )]
    pub(crate) url: String,
    /// Bearer token for a non-loopback admin API.
    #[arg(long, env = "FLOTILLA_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the load balancers, target groups and auto scaling groups of CONFIG in the foreground.
    Up {
        /// The config file (TOML).
        config: PathBuf,
        /// Data-plane worker threads (default: one per core).
        #[arg(long)]
        worker_threads: Option<usize>,
    },
    /// Check CONFIG without starting anything; print every error as FILE:LINE:COL: message.
    Validate {
        /// The config file (TOML).
        config: PathBuf,
    },
    /// Cluster mode: validate CONFIG as `up` does and store it in etcd; every node converges
    /// to it. An invalid file changes nothing.
    Apply {
        /// The config file (TOML).
        config: PathBuf,
        /// etcd client URLs, comma-separated (e.g. http://10.0.0.1:2379,http://10.0.0.2:2379).
        #[arg(long, env = "FLOTILLA_ETCD")]
        etcd: String,
    },
    /// Cluster mode: run this host's node — leader candidate (control), load balancer (lb),
    /// and agent for instances (compute) — coordinated through etcd.
    Node(NodeArgs),
    /// Cluster mode: list the nodes (name, zone, address, roles, leader, instances, slots,
    /// lease age).
    Nodes {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show groups, instances, target health and listeners of a running flotilla.
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Shift the weights of a forward action (blue/green, canary), e.g.
    /// `flotilla shift-weights front --rule 10 web=50 canary=50`; without weights, show them
    /// (and the canary rollback's state). The shift survives restarts until a reload changes
    /// that rule's weights in the file or --reset.
    ShiftWeights {
        /// Load balancer name.
        load_balancer: String,
        /// Rule priority, or `default` for the listener's default action.
        #[arg(long, default_value = "default")]
        rule: String,
        /// The listener's port or bind address, when several listeners have the rule.
        #[arg(long)]
        listener: Option<String>,
        /// Drop the shift (or a rollback): the config's weights apply again.
        #[arg(long, conflicts_with = "weights")]
        reset: bool,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// The whole new split, GROUP=WEIGHT (0-999); a group of the action left out gets 0.
        weights: Vec<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Set the desired capacity of an auto scaling group.
    Scale {
        /// Group name.
        group: String,
        /// New desired capacity (within the group's min..max).
        desired: u32,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Suspend scaling processes of a group (all when none are named), as AWS SuspendProcesses.
    Suspend {
        /// Group name.
        group: String,
        /// Launch, Terminate, HealthCheck, ReplaceUnhealthy, AZRebalance, AlarmNotification,
        /// ScheduledActions.
        processes: Vec<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Resume suspended scaling processes of a group (all when none are named).
    Resume {
        /// Group name.
        group: String,
        /// Processes to resume.
        processes: Vec<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Read a metric (e.g. request_rate_per_target) from a running flotilla.
    Metrics {
        /// Metric name (see the interface spec §3).
        metric: String,
        /// Series scope, e.g. group/web, target-group/web, instance/i-… (default: the only group).
        #[arg(long)]
        scope: Option<String>,
        /// Period, e.g. 10s.
        #[arg(long, default_value = "1s")]
        period: String,
        /// average, sum, minimum, maximum, sample_count, p50, p90 or p99.
        #[arg(long, default_value = "average")]
        statistic: String,
        /// Start: a duration ago (5m) or an RFC 3339 time.
        #[arg(long, default_value = "5m")]
        since: String,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List every instance of every auto scaling group.
    Instances {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show the scaling activities of a group, newest first, with their causes.
    Activities {
        /// Group name.
        group: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Terminate one instance: it drains, stops, and is replaced (unless --decrement-desired).
    Terminate {
        /// Instance id, e.g. i-0a1b2c3d4e5f.
        id: String,
        /// Lower the group's desired capacity by one instead of replacing the instance.
        #[arg(long)]
        decrement_desired: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Protect an instance from scale-in (AWS SetInstanceProtection): scale-in never picks it.
    Protect {
        /// Instance id, e.g. i-0a1b2c3d4e5f.
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Remove an instance's scale-in protection.
    Unprotect {
        /// Instance id, e.g. i-0a1b2c3d4e5f.
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Replace every instance of a group, rolling, never below the healthy floor (AWS
    /// StartInstanceRefresh), and follow its progress until it ends.
    Refresh {
        /// Group name.
        group: String,
        /// Share of the desired capacity (0-100) that must stay healthy meanwhile [default: 90].
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
        min_healthy_percentage: Option<u32>,
        /// How long a new instance must be healthy before the next step, e.g. 5s [default: the
        /// group's default_instance_warmup, else its health check grace period].
        #[arg(long)]
        instance_warmup: Option<String>,
        /// Pause when this share of instances is replaced (repeatable, ascending), e.g.
        /// --checkpoint 50 [default: the group's instance_refresh settings].
        #[arg(long = "checkpoint", value_parser = clap::value_parser!(u32).range(1..=100))]
        checkpoint_percentages: Vec<u32>,
        /// How long each checkpoint pauses, e.g. 1m [default: the group's, else 1h].
        #[arg(long)]
        checkpoint_delay: Option<String>,
        /// Roll back to the previous launch template version if a new instance fails.
        #[arg(long)]
        auto_rollback: bool,
        /// Start it and return at once instead of following it.
        #[arg(long, conflicts_with_all = ["status", "cancel"])]
        no_wait: bool,
        /// Only show the progress of the group's latest refresh.
        #[arg(long, conflicts_with_all = ["cancel", "min_healthy_percentage", "instance_warmup"])]
        status: bool,
        /// Cancel the running refresh (instances already replaced stay).
        #[arg(long, conflicts_with_all = ["min_healthy_percentage", "instance_warmup"])]
        cancel: bool,
        /// Print JSON instead of progress lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Zones and drills: list them, take one down (outage) or shift traffic away from it.
    Zone {
        #[command(subcommand)]
        command: ZoneCommand,
    },
    /// Lifecycle hooks: list the waiting instances, complete an action, send a heartbeat.
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCommand,
    },
    /// The DNS server: health checks and record sets (`[dns]`).
    Dns {
        #[command(subcommand)]
        command: crate::edge_cmds::DnsCommand,
    },
    /// Distributions (edge caches): requests, hit ratio, origin requests, bytes saved.
    Distributions {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Remove cached objects of a distribution, e.g. `flotilla invalidate cdn '/img/*'`.
    Invalidate {
        /// Distribution name.
        distribution: String,
        /// Paths starting with `/`; each may end with `*`.
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a group's warm pool: its size and its pre-started instances.
    WarmPool {
        /// Group name.
        group: String,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a running flotilla re-read its config file (validated first; nothing changes if invalid).
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Send HTTP load to URL and print one line per second (rate, p50/p99, errors) and a
    /// summary: open loop at --rps (default 50/s; latency counts from when each request was
    /// due, so slow answers cannot hide the queue) or --concurrency closed-loop clients, for
    /// --for. Exits 1 if any request failed.
    Load {
        /// Where to send it, e.g. http://127.0.0.1:8080/.
        url: String,
        /// Requests per second, sent on schedule whatever the answers do [default: 50].
        #[arg(long, conflicts_with = "concurrency")]
        rps: Option<f64>,
        /// Closed loop instead: this many clients, each sending when its last answer came.
        #[arg(long)]
        concurrency: Option<usize>,
        /// How long, e.g. 30s or 2m (at most 1h).
        #[arg(long = "for", value_name = "DURATION", default_value = "30s")]
        duration: String,
        /// Replace the URL's path and query, e.g. /work?ms=20 (the demo app burns 20 ms CPU).
        #[arg(long)]
        path: Option<String>,
        /// A request not answered within this counts as a timeout.
        #[arg(long, default_value = "10s")]
        timeout: String,
        /// Open loop: requests waiting at once; one due beyond this is skipped (an error).
        #[arg(long, default_value_t = 1000)]
        max_in_flight: usize,
        /// Print only the summary, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a group's predictive scaling forecast: the next 48 hours of load and the capacity
    /// each needs (a policy forecasts once it has 24 hours of history).
    Forecast {
        /// Group name.
        group: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Run a config's control plane (the real one: policies, warm-up, zones, health
    /// replacement, purchase options, predictive scaling) in virtual time against the
    /// scenario's simulated traffic and instances; print the summary (availability, p99,
    /// instances, cost, scaling actions), and with --out write seconds.csv, chart.svg,
    /// chart.png and summary.json.
    Simulate {
        /// The scenario (TOML): traffic, instance model, events.
        scenario: PathBuf,
        /// The Flotilla config to run [default: the scenario's `config`].
        #[arg(long, conflicts_with = "compare")]
        config: Option<PathBuf>,
        /// Seed of every random draw [default: the scenario's `seed`].
        #[arg(long)]
        seed: Option<u64>,
        /// Directory for seconds.csv, chart.svg, chart.png and summary.json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Run two or more configs on the same traffic and seed and print one line each.
        #[arg(long, num_args = 2.., value_names = ["A", "B"])]
        compare: Vec<PathBuf>,
    },
    /// Spot drills: send a Spot instance its interruption notice.
    Spot {
        #[command(subcommand)]
        command: SpotCommand,
    },
    /// Hot upgrade: the running flotilla starts the binary now at its path with the same
    /// arguments, hands it every listening socket, its instances and its state, and exits once
    /// the new one serves; no request is lost. A new binary that fails leaves the old serving.
    Upgrade {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Print a shell completion script for SHELL on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
    /// The instance keeper of a state directory (started by `flotilla up`, not by hand).
    #[command(hide = true)]
    Keeper {
        /// Its unix socket.
        socket: PathBuf,
    },
    /// Run the "What is the time?" demo web application (listens on $FLOTILLA_HOST:$PORT,
    /// 127.0.0.1 by default).
    DemoApp,
}

/// `flotilla node …`.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// etcd client URLs, comma-separated.
    #[arg(long, env = "FLOTILLA_ETCD")]
    pub(crate) etcd: String,
    /// This node's name, unique in the cluster (no '/').
    #[arg(long)]
    pub(crate) name: String,
    /// Its zone: one of the applied config's `[cluster] zones`.
    #[arg(long)]
    pub(crate) zone: String,
    /// The address its listeners and instances bind (this host's address).
    #[arg(long)]
    pub(crate) address: std::net::IpAddr,
    /// Roles, comma-separated: control, lb, compute.
    #[arg(long, default_value = "control,lb,compute")]
    pub(crate) roles: String,
    /// How many instances it runs at most (compute).
    #[arg(long, default_value_t = 8)]
    pub(crate) slots: u32,
    /// Where its admin API listens [default: ADDRESS:9090]; a non-loopback address needs
    /// FLOTILLA_ADMIN_TOKEN.
    #[arg(long)]
    pub(crate) admin_bind: Option<std::net::SocketAddr>,
    /// Its state directory (instance records, logs) [default: .flotilla-node-NAME].
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
    /// TTL of its etcd lease in seconds: how soon the cluster learns it is gone.
    #[arg(long, default_value_t = 10, hide = true)]
    pub(crate) lease_ttl: u64,
}

/// `flotilla spot …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SpotCommand {
    /// Send a Spot instance its interruption notice (EC2's two-minute warning): with the
    /// group's capacity_rebalance its replacement launches at once; it is drained in time and
    /// killed at the deadline.
    Interrupt {
        /// Instance id, e.g. i-0a1b2c3d4e5f.
        id: String,
        /// How long until it is reclaimed, e.g. 30s [default: the group's
        /// spot_interruption_notice, 2m].
        #[arg(long)]
        notice: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `flotilla lifecycle …`: AWS CompleteLifecycleAction and RecordLifecycleActionHeartbeat.
#[derive(Debug, Subcommand)]
pub(crate) enum LifecycleCommand {
    /// List the group's instances waiting for a lifecycle hook, with their timeouts.
    List {
        /// Group name.
        group: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// End an instance's wait for a hook: `continue` (into service / on to the stop signal)
    /// or `abandon` (a launching instance is terminated and replaced).
    Complete {
        #[command(flatten)]
        action: LifecycleActionArgs,
        /// How the action ends.
        #[arg(long, value_enum, default_value_t = LifecycleResultArg::Continue)]
        result: LifecycleResultArg,
    },
    /// Restart the hook's heartbeat timeout for an instance (more time to get ready).
    Heartbeat {
        #[command(flatten)]
        action: LifecycleActionArgs,
    },
}

/// Which lifecycle action: group, instance, hook.
#[derive(Debug, clap::Args)]
pub(crate) struct LifecycleActionArgs {
    /// Group name.
    pub(crate) group: String,
    /// Instance id, e.g. i-0a1b2c3d4e5f.
    pub(crate) instance: String,
    /// Lifecycle hook name from the config.
    pub(crate) hook: String,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

/// The result of a completed lifecycle action.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LifecycleResultArg {
    /// Go on.
    Continue,
    /// Give up.
    Abandon,
}

/// `flotilla zone …`: the drills of spec §6.
#[derive(Debug, Subcommand)]
pub(crate) enum ZoneCommand {
    /// List the cluster's zones: available, in an outage, or shifted away from.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Zone outage drill: kill every instance in ZONE at once (SIGKILL, no draining); the zone
    /// takes no launches until the outage ends. `--end` ends it early.
    Outage(DrillArgs),
    /// Zonal shift: no new traffic to ZONE's targets (instances keep running). `--end` ends it.
    Shift(DrillArgs),
}

/// Which zone, and for how long or `--end`.
#[derive(Debug, clap::Args)]
pub(crate) struct DrillArgs {
    /// Zone name, e.g. az-a.
    pub(crate) zone: String,
    /// How long, e.g. 30s.
    #[arg(long = "for", value_name = "DURATION", required_unless_present = "end")]
    pub(crate) duration: Option<String>,
    /// End it now.
    #[arg(long, conflicts_with = "duration")]
    pub(crate) end: bool,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}
