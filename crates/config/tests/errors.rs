//! Every problem is reported, at the right place, with a useful message.

use std::path::Path;

use flotilla_config::{parse, ConfigError};

/// Diagnostics of `src` as `LINE:COL: message`.
fn errs(src: &str) -> Vec<String> {
    match parse(src, Path::new("f.toml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(d)) => d
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// 1-based `line:col` of the `nth` (0-based) occurrence of `needle` in `src`.
fn loc(src: &str, needle: &str, nth: usize) -> String {
    let (off, _) = src
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} not in source"));
    let before = &src[..off];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
    format!("{line}:{col}")
}

/// Asserts exactly one diagnostic, at `needle`, containing `msg`.
#[track_caller]
fn one(src: &str, needle: &str, msg: &str) {
    let got = errs(src);
    let want = loc(src, needle, 0);
    assert_eq!(
        got.len(),
        1,
        "expected one error, got {got:#?}\nsource:\n{src}"
    );
    assert!(
        got[0].starts_with(&format!("{want}: ")) && got[0].contains(msg),
        "expected `{want}: …{msg}…`, got {got:#?}"
    );
}

const LT: &str = "[launch_templates.web]\ncommand = [\"app\"]\n";
const TG: &str = "[target_groups.web]\n";

fn with_listener(extra_listener: &str, tail: &str) -> String {
    format!(
        "{LT}{TG}[[load_balancers.front.listeners]]\nbind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n{extra_listener}{tail}"
    )
}

fn rule(conditions: &str, action: &str) -> String {
    with_listener(
        &format!("[[load_balancers.front.listeners.rules]]\npriority = 1\nconditions = {conditions}\naction = {action}\n"),
        "",
    )
}

fn group(body: &str) -> String {
    format!("{LT}{TG}[auto_scaling_groups.web]\nlaunch_template = \"web\"\n{body}")
}

#[test]
fn broken_file_reports_every_problem_in_file_order() {
    let src = r#"[cluster]
zones = ["az-a", "az-b"]

[launch_templates.web]
comand = ["app"]

[target_groups.web]
heath_check = {}
deregistration_delay = 5

[target_groups.web.stickiness]
enabled = "yes"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:9090"
default_action = { type = "forward", target_group = "wbe" }

[auto_scaling_groups.web]
launch_template = "web"
zones = ["az-a", "az-z"]
min_size = 5
max_size = 2
"#;
    let got = errs(src);
    let want = [
        "4:1: missing required key `command` in [launch_templates.web]",
        "5:1: unknown key `comand` in [launch_templates.web]; did you mean `command`?",
        "8:1: unknown key `heath_check` in [target_groups.web]; did you mean `health_check`?",
        "9:24: expected a duration string like \"2s\", found integer 5; write \"5s\"",
        "12:11: expected true or false, found string",
        "15:8: bind address 127.0.0.1:9090 is already used by [cluster] admin_bind (127.0.0.1:9090)",
        "16:53: unknown target group `wbe`: not defined in [target_groups.NAME]; did you mean `web`?",
        "20:18: unknown zone `az-z`: not defined in [cluster] zones; did you mean `az-a`?",
        "21:12: min_size (5) must not be greater than max_size (2)",
    ];
    assert_eq!(got, want);
    // The Display form is FILE:LINE:COL: message, one per line.
    let err = parse(src, Path::new("conf/x.toml")).unwrap_err();
    let text = err.to_string();
    assert_eq!(text.lines().count(), want.len());
    assert!(text.starts_with("conf/x.toml:4:1: missing required key"));
}

#[test]
fn unknown_keys_everywhere_with_suggestions() {
    let src = r#"[clustr]
[launch_templates.web]
command = ["app"]
stop_timout = "1s"
[target_groups.web]
health_check = { intervall = "10s", xyz = 1 }
[[load_balancers.front.listeners]]
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_grup = "web" }
[[load_balancers.front.listeners.rules]]
priority = 1
conditions = [{ feild = "path-pattern", values = ["/"] }]
action = { type = "fixed-response", stauts = 200 }
"#;
    let got = errs(src);
    let has = |l: &str, m: &str| {
        assert!(
            got.iter().any(|g| g.starts_with(l) && g.contains(m)),
            "missing {l} {m} in {got:#?}"
        )
    };
    has(
        "1:2:",
        "unknown key `clustr` in the top level; did you mean `cluster`?",
    );
    has(
        "4:1:",
        "unknown key `stop_timout` in [launch_templates.web]; did you mean `stop_timeout`?",
    );
    has(
        "6:18:",
        "unknown key `intervall` in [target_groups.web.health_check]; did you mean `interval`?",
    );
    has("6:37:", "unknown key `xyz`");
    assert!(!got
        .iter()
        .any(|g| g.contains("`xyz`") && g.contains("did you mean")));
    has("9:38:", "unknown key `target_grup`");
    has("9:38:", "did you mean `target_group`?");
    has("12:17:", "unknown key `feild`");
    has("12:15:", "missing required key `field`");
    has("12:17:", "did you mean `field`?");
    has("13:37:", "unknown key `stauts`");
    has("13:37:", "did you mean `status`?");
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    one(
        &group("min_size = \"1\"\nmax_size = 2\n"),
        "\"1\"",
        "expected an integer, found string",
    );
    one(
        &format!("{LT}stop_timeout = \"soon\"\n"),
        "\"soon\"",
        "invalid duration \"soon\"",
    );
    one(
        &format!("{LT}stop_timeout = true\n"),
        "true",
        "expected a duration string like \"2s\"",
    );
    one(
        "[cluster]\nadmin_bind = \"localhost:80\"\n",
        "\"localhost",
        "use 127.0.0.1",
    );
    one(
        "[cluster]\nzones = \"az-a\"\n",
        "\"az-a\"",
        "expected an array",
    );
    one("cluster = 1\n", "1", "expected a table for [cluster]");
}

#[test]
fn required_keys_point_at_the_table_header() {
    one(
        "[launch_templates.web]\nenv = {}\n",
        "[launch_templates.web]",
        "missing required key `command`",
    );
    one(
        &format!("{LT}{TG}[[load_balancers.a.listeners]]\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"),
        "[[load_balancers",
        "missing required key `bind` in [load_balancers.a.listeners[0]]",
    );
    one(
        "[[load_balancers.a.listeners]]\nbind = \"127.0.0.1:1\"\n",
        "[[load_balancers",
        "missing required key `default_action`",
    );
    let src = format!("{LT}[auto_scaling_groups.g]\n");
    let got = errs(&src);
    let at = loc(&src, "[auto_scaling_groups.g]", 0);
    for key in ["launch_template", "min_size", "max_size"] {
        assert!(
            got.iter()
                .any(|g| g.starts_with(&at) && g.contains(&format!("`{key}`"))),
            "{key} not reported in {got:#?}"
        );
    }
}

#[test]
fn dangling_references() {
    one(
        &with_listener("", "").replace("target_group = \"web\"", "target_group = \"nope\""),
        "\"nope\"",
        "unknown target group `nope`",
    );
    one(
        &rule(
            "[{ field = \"path-pattern\", values = [\"/\"] }]",
            "{ type = \"forward\", target_groups = [{ name = \"web\" }, { name = \"gone\", weight = 2 }] }",
        ),
        "\"gone\"",
        "unknown target group `gone`",
    );
    one(
        &group("min_size = 1\nmax_size = 1\n")
            .replace("launch_template = \"web\"", "launch_template = \"wb\""),
        "\"wb\"",
        "unknown launch template `wb`: not defined in [launch_templates.NAME]; did you mean `web`?",
    );
    one(
        &group("min_size = 1\nmax_size = 1\ntarget_groups = [\"web\", \"x\"]\n"),
        "\"x\"",
        "unknown target group `x`",
    );
    one(
        &group("min_size = 1\nmax_size = 1\nzones = [\"az-b\", \"az-q\"]\n"),
        "\"az-q\"",
        "unknown zone `az-q`",
    );
}

#[test]
fn a_broken_definition_does_not_also_break_its_references() {
    // The target group body is wrong, but the name exists: only one error.
    let src = with_listener("", "").replace(TG, "[target_groups.web]\nprotocol = \"udp\"\n");
    one(&src, "\"udp\"", "unknown protocol `udp`");
}

#[test]
fn impossible_group_sizes() {
    one(
        &group("min_size = 3\nmax_size = 2\n"),
        "3",
        "min_size (3) must not be greater than max_size (2)",
    );
    one(
        &group("min_size = 1\nmax_size = 2\ndesired_capacity = 3\n"),
        "3\n",
        "desired_capacity (3) must be between",
    );
    one(
        &group("min_size = 1\nmax_size = 2\nzones = []\n"),
        "[]",
        "at least one zone",
    );
    one(
        &group("min_size = -1\nmax_size = 2\n"),
        "-1",
        "min_size must be at least 0",
    );
    one(
        &group("min_size = 1\nmax_size = 2\nzones = [\"az-a\", \"az-a\"]\n"),
        "\"az-a\"]",
        "duplicate zone `az-a`",
    );
}

#[test]
fn instance_refresh_settings_are_checked() {
    let ir = |body: &str| {
        group(&format!(
            "min_size = 1\nmax_size = 2\n[auto_scaling_groups.web.instance_refresh]\n{body}"
        ))
    };
    one(
        &ir("min_healthy_percentage = 101\n"),
        "101",
        "min_healthy_percentage must be between 0 and 100",
    );
    one(
        &ir("checkpoint_percentages = [50, 20]\n"),
        "20]",
        "ascending order",
    );
    one(
        &ir("checkpoint_percentages = [0]\n"),
        "0]",
        "between 1 and 100",
    );
    one(
        &ir("auto_rollback = \"yes\"\n"),
        "\"yes\"",
        "expected true or false",
    );
    one(&ir("rollback = true\n"), "rollback", "unknown key");
}

#[test]
fn zero_durations() {
    one(
        &format!("{LT}stop_timeout = \"0s\"\n"),
        "\"0s\"",
        "stop_timeout must be greater than zero",
    );
    one(
        &format!("{TG}health_check = {{ interval = \"0s\" }}\n"),
        "\"0s\"",
        "interval must be greater than zero",
    );
    one(
        &format!("{TG}health_check = {{ timeout = \"0ms\" }}\n"),
        "\"0ms\"",
        "timeout must be greater than zero",
    );
    one(
        "[load_balancers.a]\nidle_timeout = \"0s\"\n",
        "\"0s\"",
        "idle_timeout must be greater than zero",
    );
    one(
        "[cluster]\nhost_lost_grace = \"0s\"\n",
        "\"0s\"",
        "host_lost_grace must be greater than zero",
    );
}

#[test]
fn health_check_rules() {
    one(
        &format!("{TG}health_check = {{ interval = \"5s\", timeout = \"5s\" }}\n"),
        "\"5s\" }",
        "health check interval must be greater than the timeout",
    );
    one(
        &format!("{TG}health_check = {{ timeout = \"30s\" }}\n"),
        "\"30s\"",
        "interval must be greater than the timeout",
    );
    one(
        &format!("{TG}health_check = {{ healthy_threshold = 0 }}\n"),
        "0",
        "healthy_threshold must be between 1 and 10, found 0",
    );
    one(
        &format!("{TG}health_check = {{ unhealthy_threshold = 11 }}\n"),
        "11",
        "unhealthy_threshold must be between 1 and 10",
    );
    one(
        &format!("{TG}health_check = {{ matcher = \"200-1\" }}\n"),
        "\"200-1\"",
        "invalid matcher `200-1`",
    );
    one(
        &format!("{TG}health_check = {{ path = \"health\" }}\n"),
        "\"health\"",
        "must start with `/`",
    );
}

#[test]
fn duplicate_binds_across_listeners_and_admin() {
    let src = with_listener(
        "[[load_balancers.front.listeners]]\nbind = \"0.0.0.0:8080\"\ndefault_action = { type = \"fixed-response\" }\n",
        "",
    );
    one(
        &src,
        "\"0.0.0.0:8080\"",
        "bind address 0.0.0.0:8080 is already used by [load_balancers.front.listeners[0]]",
    );
    let src = format!(
        "[cluster]\nadmin_bind = \"127.0.0.1:8080\"\n{}",
        with_listener("", "")
    );
    let got = errs(&src);
    assert_eq!(got.len(), 1, "{got:#?}");
    let at = loc(&src, "\"127.0.0.1:8080\"", 1);
    assert!(got[0].starts_with(&at) && got[0].contains("already used by [cluster] admin_bind"));
    // Listeners on port 0 (any free port) never conflict.
    let src = with_listener(
        "[[load_balancers.front.listeners]]\nbind = \"127.0.0.1:0\"\ndefault_action = { type = \"fixed-response\" }\n\
         [[load_balancers.front.listeners]]\nbind = \"127.0.0.1:0\"\ndefault_action = { type = \"fixed-response\" }\n",
        "",
    );
    assert_eq!(errs(&src), Vec::<String>::new());
}

#[test]
fn rule_priorities() {
    let two = |a: u32, b: u32| {
        with_listener(
            &format!(
                "[[load_balancers.front.listeners.rules]]\npriority = {a}\nconditions = [{{ field = \"path-pattern\", values = [\"/a\"] }}]\naction = {{ type = \"fixed-response\" }}\n\
                 [[load_balancers.front.listeners.rules]]\npriority = {b}\nconditions = [{{ field = \"path-pattern\", values = [\"/b\"] }}]\naction = {{ type = \"fixed-response\" }}\n"
            ),
            "",
        )
    };
    let src = two(7, 7);
    let got = errs(&src);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with(&loc(&src, "7\nconditions", 1))
            && got[0].contains("duplicate rule priority 7")
    );
    one(
        &two(1, 50_001),
        "50001",
        "priority must be between 1 and 50000",
    );
    one(
        &two(0, 2),
        "0\n",
        "priority must be between 1 and 50000, found 0",
    );
    // Rules come out sorted.
    let cfg = parse(&two(9, 3), Path::new("f.toml")).unwrap();
    let p: Vec<u32> = cfg.load_balancers["front"].listeners[0]
        .rules
        .iter()
        .map(|r| r.priority)
        .collect();
    assert_eq!(p, [3, 9]);
}

#[test]
fn condition_rules() {
    let fr = "{ type = \"fixed-response\" }";
    one(
        &rule("[{ field = \"host-header\", values = [\"\"] }]", fr),
        "\"\"",
        "condition values must not be empty",
    );
    one(
        &rule("[{ field = \"host-header\", values = [] }]", fr),
        "[] }",
        "at least one value",
    );
    one(&rule("[]", fr), "[]", "at least one condition");
    one(
        &rule(
            "[{ field = \"source-ip\", values = [\"10.0.0.0/40\"] }]",
            fr,
        ),
        "\"10.0.0.0/40\"",
        "invalid CIDR `10.0.0.0/40`",
    );
    one(
        &rule("[{ field = \"source-ip\", values = [\"ten\"] }]", fr),
        "\"ten\"",
        "invalid CIDR `ten`",
    );
    one(
        &rule("[{ field = \"path-patern\", values = [\"/\"] }]", fr),
        "\"path-patern\"",
        "did you mean `path-pattern`?",
    );
    one(
        &rule("[{ field = \"http-header\", values = [\"x\"] }]", fr),
        "{ field",
        "missing required key `name`",
    );
    one(
        &rule("[{ field = \"query-string\", values = [\"k=\"] }]", fr),
        "\"k=\"",
        "empty value",
    );
    one(
        &rule(
            "[{ field = \"http-request-method\", values = [\"get\"] }]",
            fr,
        ),
        "\"get\"",
        "invalid method `get`",
    );
    one(
        &rule("[{ field = \"path-pattern\", values = [\"/a\"] }, { field = \"path-pattern\", values = [\"/b\"] }]", fr),
        "{ field = \"path-pattern\", values = [\"/b\"]",
        "only one `path-pattern` condition",
    );
}

#[test]
fn action_rules() {
    let c = "[{ field = \"path-pattern\", values = [\"/\"] }]";
    one(
        &rule(c, "{ type = \"redirect\", status = 303, path = \"/x\" }"),
        "303",
        "redirect status must be 301 or 302",
    );
    one(
        &rule(c, "{ type = \"redirect\", status = 302 }"),
        "{ type = \"redirect\"",
        "must change at least one of",
    );
    one(
        &rule(c, "{ type = \"fixed-response\", status = 302 }"),
        "302",
        "fixed-response status must be 2xx, 4xx or 5xx",
    );
    one(
        &rule(c, "{ type = \"fixed-response\", status = 600 }"),
        "600",
        "2xx, 4xx or 5xx",
    );
    one(
        &rule(
            c,
            "{ type = \"fixed-response\", content_type = \"text/xml\" }",
        ),
        "\"text/xml\"",
        "content_type `text/xml` is not one of",
    );
    let long = "x".repeat(1025);
    one(
        &rule(
            c,
            &format!("{{ type = \"fixed-response\", body = \"{long}\" }}"),
        ),
        "\"xxx",
        "at most 1024",
    );
    one(
        &rule(
            c,
            "{ type = \"forward\", target_groups = [{ name = \"web\", weight = 1000 }] }",
        ),
        "1000",
        "weight must be between 0 and 999",
    );
    one(
        &rule(c, "{ type = \"forwrd\", target_group = \"web\" }"),
        "\"forwrd\"",
        "did you mean `forward`?",
    );
    one(
        &rule(c, "{ target_group = \"web\" }"),
        "{ target_group",
        "missing required key `type`",
    );
    one(
        &rule(
            c,
            "{ type = \"forward\", target_group = \"web\", target_groups = [] }",
        ),
        "[] }",
        "either `target_group` or `target_groups`",
    );
}

#[test]
fn listener_protocol_rules() {
    one(
        &with_listener("", "").replace("bind = ", "protocol = \"https\"\nbind = "),
        "\"https\"",
        "https listener needs at least one certificate",
    );
    one(
        &with_listener("", "").replace("[[load_balancers.front.listeners]]", "[load_balancers.front]\ntype = \"network\"\n[[load_balancers.front.listeners]]"),
        "\"web\" }",
        "target group `web` uses protocol http, but a network load balancer forwards only to tcp target groups",
    );
}

#[test]
fn scaling_policy_rules() {
    let pol = |body: &str| {
        group(&format!("min_size = 1\nmax_size = 2\n[[auto_scaling_groups.web.scaling_policies]]\nname = \"p\"\n{body}"))
    };
    one(
        &pol("type = \"target_tracking\"\nmetric = \"cpu\"\ntarget_value = 50.0\n"),
        "\"cpu\"",
        "unknown metric `cpu`",
    );
    one(
        &pol("type = \"target_tracking\"\nmetric = \"cpu_utilization\"\ntarget_value = 0\n"),
        "0\n",
        "target_value must be greater than zero",
    );
    one(&pol("type = \"target_tracking\"\nmetric = \"cpu_utilization\"\ntarget_value = 5\nperiod = \"1500ms\"\n"), "\"1500ms\"", "whole number of seconds");
    let alarm = "alarm = { metric = \"cpu_utilization\", statistic = \"mean\", comparison = \">\", threshold = 1 }\n";
    one(
        &pol(&format!("type = \"simple\"\nadjustment = 1\n{alarm}")),
        "\"mean\"",
        "unknown statistic `mean`",
    );
    // Percentiles exist only for distributions: asked of another metric, the policy would
    // never get a datapoint and never act.
    let alarm = "alarm = { metric = \"cpu_utilization\", statistic = \"p99\", comparison = \">\", threshold = 1 }\n";
    one(
        &pol(&format!("type = \"simple\"\nadjustment = 1\n{alarm}")),
        "\"p99\"",
        "statistic `p99` needs a distribution metric (target_response_time)",
    );
    one(
        &pol("type = \"target_tracking\"\nmetric = \"request_rate_per_target\"\nstatistic = \"p50\"\ntarget_value = 5\n"),
        "\"p50\"",
        "`request_rate_per_target` has none of its percentiles",
    );
    assert_eq!(
        errs(&pol("type = \"target_tracking\"\nmetric = \"target_response_time\"\nstatistic = \"p99\"\ntarget_value = 0.2\n")),
        Vec::<String>::new()
    );
    one(
        &pol("type = \"target_tracking\"\nmetric = \"cpu_utilization\"\nstatistic = \"median\"\ntarget_value = 5\n"),
        "\"median\"",
        "unknown statistic `median`",
    );
    let alarm = "alarm = { metric = \"cpu_utilization\", evaluation_periods = 2, datapoints_to_alarm = 3, comparison = \">\", threshold = 1 }\n";
    one(
        &pol(&format!("type = \"simple\"\nadjustment = 1\n{alarm}")),
        "3,",
        "datapoints_to_alarm (3) must not exceed evaluation_periods (2)",
    );
    let alarm = "alarm = { metric = \"cpu_utilization\", comparison = \">\", threshold = 1 }\n";
    one(
        &pol(&format!("type = \"step\"\n{alarm}steps = [{{ upper = 0.0, adjustment = -1 }}, {{ lower = 10.0, adjustment = 1 }}]\n")),
        "{ lower = 10.0",
        "must not overlap or leave gaps",
    );
    one(
        &pol(&format!("type = \"simple\"\n{alarm}")),
        "[[auto_scaling_groups.web.scaling",
        "missing required key `adjustment`",
    );
    one(
        &pol(&format!(
            "type = \"simple\"\nadjustment = 1\ntarget_value = 3.0\n{alarm}"
        )),
        "target_value",
        "unknown key `target_value`",
    );
    let dup = pol("type = \"target_tracking\"\nmetric = \"cpu_utilization\"\ntarget_value = 5\n[[auto_scaling_groups.web.scaling_policies]]\nname = \"p\"\ntype = \"target_tracking\"\nmetric = \"cpu_utilization\"\ntarget_value = 5\n");
    let got = errs(&dup);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with(&loc(&dup, "\"p\"", 1)) && got[0].contains("duplicate name `p`"));
}

#[test]
fn scheduled_action_rules() {
    let sa = |body: &str| {
        group(&format!("min_size = 1\nmax_size = 2\n[[auto_scaling_groups.web.scheduled_actions]]\nname = \"s\"\n{body}"))
    };
    one(
        &sa("recurrence = \"0 8 * *\"\ndesired_capacity = 1\n"),
        "\"0 8",
        "5 fields",
    );
    one(
        &sa("desired_capacity = 1\n"),
        "[[auto_scaling_groups.web.scheduled",
        "needs `recurrence` or `start_time`",
    );
    one(
        &sa("recurrence = \"0 8 * * *\"\n"),
        "[[auto_scaling_groups.web.scheduled",
        "at least one of min_size",
    );
    one(
        &sa("start_time = \"tomorrow\"\nmax_size = 1\n"),
        "\"tomorrow\"",
        "invalid time",
    );
    // What the control plane could not run is refused here, at its location, instead of
    // being logged and skipped at start.
    one(
        &sa("recurrence = \"0 25 * * *\"\ndesired_capacity = 1\n"),
        "\"0 25",
        "recurrence `0 25 * * *`: hour",
    );
    one(
        &sa("recurrence = \"0 8 * * *\"\ntime_zone = \"Mars/Olympus\"\ndesired_capacity = 1\n"),
        "\"Mars/Olympus\"",
        "unknown time zone `Mars/Olympus`",
    );
    one(
        &sa("start_time = 2026-01-31T08:00:00\nmax_size = 1\n"),
        "2026-01-31T08:00:00",
        "needs a UTC offset",
    );
    one(
        &sa("start_time = \"2026-01-31T08:00:00Z\"\nend_time = \"2026-01-30T08:00:00Z\"\nmax_size = 1\n"),
        "\"2026-01-30",
        "end_time `2026-01-30T08:00:00Z` must be after start_time",
    );
    assert_eq!(
        errs(&sa("recurrence = \"*/15 8-18 * jan-mar mon-fri\"\ntime_zone = \"Asia/Seoul\"\nstart_time = 2026-01-31T08:00:00+09:00\ndesired_capacity = 1\n")),
        Vec::<String>::new()
    );
}

#[test]
fn toml_syntax_errors_point_at_the_problem() {
    let got = errs("[cluster]\nname = \"x\" y\n");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("2:12: TOML syntax error"), "{got:#?}");
    let got = errs("[cluster]\nname = \"x\"\nname = \"y\"\n");
    assert!(
        got[0].starts_with("3:1: TOML syntax error: duplicate key"),
        "{got:#?}"
    );
    let got = errs("[cluster\n");
    assert!(
        got[0].starts_with("1:") && got[0].contains("TOML syntax error"),
        "{got:#?}"
    );
    let got = errs("a = \"ünïcödé\" }\n");
    assert!(got[0].starts_with("1:15: "), "{got:#?}");
}

#[test]
fn never_panics_on_odd_input() {
    let inputs = [
        "cluster = 5\ntarget_groups = []\nload_balancers = { a = 1 }\n",
        "auto_scaling_groups.x.scaling_policies = [1, { type = 3 }]\n",
        "[[load_balancers.a.listeners]]\nbind = 1\ndefault_action = 3\nrules = 4\n",
        "[[load_balancers.a.listeners]]\nrules = [{ conditions = [1, { field = 2, values = [3] }], action = { type = \"redirect\", port = 70000 } }]\n",
        "[target_groups.a]\nhealth_check = 1\nstickiness = []\ntargets = [1, \"x\"]\n",
        "[auto_scaling_groups.a]\nmin_size = 99999999999999\nmax_size = -5\ndesired_capacity = 1.5\n",
        "[launch_templates.a]\ncommand = []\nenv = { \"\" = 1 }\n",
        "[launch_templates.a]\ncommand = [\"\"]\nstop_signal = \"SIGFOO\"\n",
        "[cluster]\nzones = []\n[auto_scaling_groups.a]\nzones = [\"x\"]\n",
        "\u{0}\u{feff}",
        "x = 1e999\n[auto_scaling_groups.a.scaling_policies]\n",
        "[[auto_scaling_groups.a.scaling_policies]]\ntype = \"step\"\nsteps = [{ lower = nan, upper = inf, adjustment = 9223372036854775807 }]\nalarm = { threshold = nan, comparison = \">\", metric = \"cpu_utilization\" }\n",
    ];
    for src in inputs {
        let r = parse(src, Path::new("f.toml"));
        assert!(r.is_err(), "{src:?} should be invalid");
    }
}

#[test]
fn slow_start_is_incompatible_with_least_outstanding_requests() {
    one(
        &format!("{TG}algorithm = \"least_outstanding_requests\"\nslow_start = \"30s\"\n"),
        "\"30s\"",
        "slow_start cannot be used with algorithm = \"least_outstanding_requests\"",
    );
    assert!(errs(&format!(
        "{TG}algorithm = \"least_outstanding_requests\"\nslow_start = \"0s\"\n"
    ))
    .is_empty());
    assert!(errs(&format!(
        "{TG}algorithm = \"round_robin\"\nslow_start = \"30s\"\n"
    ))
    .is_empty());
}

#[test]
fn attempt_deadlines_are_positive_and_per_try_is_for_http() {
    one(
        &format!("{TG}connect_timeout = \"0s\"\n"),
        "\"0s\"",
        "connect_timeout",
    );
    one(&format!("{TG}per_try_timeout = \"soon\"\n"), "\"soon\"", "");
    one(
        "[target_groups.raw]\nprotocol = \"tcp\"\nper_try_timeout = \"1s\"\n",
        "\"1s\"",
        "per_try_timeout only applies to http target groups",
    );
    assert!(errs(&format!(
        "{TG}connect_timeout = \"500ms\"\nper_try_timeout = \"2s\"\n"
    ))
    .is_empty());
}

#[test]
fn proxy_protocol_v2_is_for_tcp_target_groups() {
    let src = "[target_groups.web]\nproxy_protocol_v2 = true\n";
    one(src, "true", "only used by tcp target groups");
    let src = "[target_groups.raw]\nprotocol = \"tcp\"\nproxy_protocol = true\n";
    one(src, "proxy_protocol", "did you mean `proxy_protocol_v2`?");
    let src = "[target_groups.raw]\nprotocol = \"tcp\"\nproxy_protocol_v2 = \"yes\"\n";
    one(src, "\"yes\"", "expected true or false");
    let src = "[load_balancers.front]\naccess_log = \"\"\n";
    one(src, "\"\"", "empty");
    let src = "[load_balancers.net]\ntype = \"network\"\naccess_log = \"a.log\"\n";
    one(src, "\"a.log\"", "a network load balancer has none");
}

#[test]
fn lifecycle_hook_and_warm_pool_rules() {
    let hook = |body: &str| {
        group(&format!(
            "min_size = 1\nmax_size = 2\n[[auto_scaling_groups.web.lifecycle_hooks]]\nname = \"h\"\n{body}"
        ))
    };
    one(
        &hook("transition = \"launch\"\n"),
        "\"launch\"",
        "unknown lifecycle transition `launch`",
    );
    one(
        &hook(""),
        "[[auto_scaling_groups.web.lifecycle_hooks]]",
        "missing required key `transition`",
    );
    one(
        &hook("transition = \"launching\"\nheartbeat_timeout = \"3h\"\n"),
        "\"3h\"",
        "heartbeat_timeout must be between 1s and 2h",
    );
    one(
        &hook("transition = \"terminating\"\ndefault_result = \"proceed\"\n"),
        "\"proceed\"",
        "unknown default_result `proceed`",
    );
    one(
        &hook("transition = \"launching\"\ntimeout = \"1s\"\n"),
        "timeout = ",
        "unknown key `timeout`",
    );
    let twice = hook("transition = \"launching\"\n[[auto_scaling_groups.web.lifecycle_hooks]]\nname = \"h\"\ntransition = \"terminating\"\n");
    let got = errs(&twice);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains("duplicate name `h` in lifecycle_hooks"),
        "{got:#?}"
    );
    // AWS's spellings and defaults.
    let ok = hook("transition = \"autoscaling:EC2_INSTANCE_TERMINATING\"\n");
    assert_eq!(errs(&ok), Vec::<String>::new());
    let config = parse(&ok, Path::new("f.toml")).unwrap();
    let h = &config.auto_scaling_groups["web"].lifecycle_hooks[0];
    assert_eq!(
        h.transition,
        flotilla_config::LifecycleTransition::Terminating
    );
    assert_eq!(h.heartbeat_timeout, std::time::Duration::from_secs(3600));
    assert_eq!(
        h.default_result,
        flotilla_config::LifecycleActionResult::Abandon
    );

    let pool = |body: &str| {
        group(&format!(
            "min_size = 1\nmax_size = 4\n[auto_scaling_groups.web.warm_pool]\n{body}"
        ))
    };
    one(
        &pool("pool_state = \"stopped\"\n"),
        "\"stopped\"",
        "only pool_state = \"running\" is supported",
    );
    one(&pool("min_size = -1\n"), "-1", "min_size");
    one(&pool("reuse = true\n"), "reuse = ", "unknown key `reuse`");
    let ok = pool("min_size = 1\nmax_group_prepared_capacity = 3\npool_state = \"running\"\nreuse_on_scale_in = true\n");
    let config = parse(&ok, Path::new("f.toml")).unwrap();
    let wp = config.auto_scaling_groups["web"].warm_pool.unwrap();
    assert_eq!(
        (
            wp.min_size,
            wp.max_group_prepared_capacity,
            wp.reuse_on_scale_in
        ),
        (1, Some(3), true)
    );
}

#[test]
fn cross_zone_of_a_target_group_is_checked() {
    let bad = format!(
        "{LT}[target_groups.web]\ncross_zone = \"sometimes\"\n[[load_balancers.front.listeners]]\nbind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"
    );
    one(&bad, "\"sometimes\"", "cross_zone must be true, false or");
    // Stickiness needs cross-zone on (AWS), here turned off by the load balancer.
    let sticky = format!(
        "{LT}[target_groups.web]\nstickiness = {{ enabled = true }}\n[load_balancers.front]\ncross_zone = false\n[[load_balancers.front.listeners]]\nbind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"
    );
    one(
        &sticky,
        "\"web\" }",
        "stickiness enabled, which needs cross-zone",
    );
    // ... but not when the group overrides it.
    let fixed = sticky.replace("stickiness =", "cross_zone = true\nstickiness =");
    assert!(errs(&fixed).is_empty(), "{:?}", errs(&fixed));
    // Two load balancers that disagree, and a group that follows them.
    let two = format!(
        "{LT}{TG}[load_balancers.a]\ncross_zone = false\n[[load_balancers.a.listeners]]\nbind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n[[load_balancers.b.listeners]]\nbind = \"127.0.0.1:8081\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"
    );
    let got = errs(&two);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("cross_zone = false and cross_zone = true"),
        "{got:?}"
    );
    let ok = two.replace(
        "[target_groups.web]\n",
        "[target_groups.web]\ncross_zone = false\n",
    );
    assert!(errs(&ok).is_empty(), "{:?}", errs(&ok));
    let cfg = flotilla_config::parse(&ok, Path::new("f.toml")).unwrap();
    assert!(!cfg.target_group_cross_zone("web"));
}

#[test]
fn canary_rollback_is_checked() {
    let src = |rollback: &str| {
        format!(
            "{LT}{TG}[target_groups.canary]\n[[load_balancers.front.listeners]]\nbind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_groups = [{{ name = \"web\", weight = 90 }}, {{ name = \"canary\", weight = 10 }}], rollback = {rollback} }}\n"
        )
    };
    let good = src("{ target_group = \"canary\", alarm = { metric = \"http_target_5xx_rate\", period = \"10s\", comparison = \">=\", threshold = 5.0 } }");
    let cfg = flotilla_config::parse(&good, Path::new("f.toml")).unwrap();
    let l = &cfg.load_balancers["front"].listeners[0];
    let flotilla_config::Action::Forward {
        rollback: Some(r), ..
    } = &l.default_action
    else {
        panic!("no rollback: {:?}", l.default_action);
    };
    assert_eq!(
        (r.target_group.as_str(), r.alarm.threshold),
        ("canary", 5.0)
    );
    let bad = src("{ target_group = \"canry\", alarm = { metric = \"http_target_5xx_count\", comparison = \">=\", threshold = 1 } }");
    one(
        &bad,
        "\"canry\"",
        "is not one of this action's target groups (web, canary)",
    );
    let bad = src("{ target_group = \"canary\", alarm = { metric = \"cpu_utilization\", comparison = \">=\", threshold = 1 } }");
    one(
        &bad,
        "\"cpu_utilization\"",
        "unknown metric `cpu_utilization`",
    );
}
