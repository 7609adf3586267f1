//! Image launch templates (`image = "localhost/web:2.1"` and its keys): decoded into control's
//! `ImageTemplate`, every mistake reported at its line and column.

use std::path::Path;

use flotilla_config::{parse, ConfigError, PullPolicy};

fn errors(src: &str) -> Vec<String> {
    match parse(src, Path::new("f.toml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(d)) => d
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// A template `[launch_templates.web]` with `body`, on line 1.
fn template(body: &str) -> String {
    format!("[launch_templates.web]\n{body}\n")
}

#[test]
fn an_image_template_decodes_with_defaults_and_every_key() {
    let cfg = parse(
        &template("image = \"localhost/web:2.1\""),
        Path::new("f.toml"),
    )
    .expect("valid");
    let t = &cfg.launch_templates["web"];
    let image = t.image.as_ref().expect("an image template");
    assert_eq!(image.reference, "localhost/web:2.1");
    assert!(t.command.is_empty(), "the image's own entrypoint");
    assert!(image.args.is_empty());
    assert_eq!(
        (image.port, image.cpu_millis, image.memory_bytes),
        (None, None, None)
    );
    assert_eq!(image.pull, PullPolicy::IfMissing);

    let full = template(
        "image = \"localhost/web:2.2\"\ncommand = [\"/app\"]\nargs = [\"demo-app\"]\nport = 8080\ncpu = 0.5\nmemory = \"64MiB\"\npull = \"never\"\nstop_signal = \"SIGINT\"\nstop_timeout = \"3s\"\nenv = { A = \"1\" }",
    );
    let cfg = parse(&full, Path::new("f.toml")).expect("valid");
    let t = &cfg.launch_templates["web"];
    let image = t.image.as_ref().expect("an image template");
    assert_eq!(t.command, ["/app"]);
    assert_eq!(image.args, ["demo-app"]);
    assert_eq!(image.port, Some(8080));
    assert_eq!(image.cpu_millis, Some(500));
    assert_eq!(image.memory_bytes, Some(64 << 20));
    assert_eq!(image.pull, PullPolicy::Never);
    assert_eq!(t.stop_timeout, std::time::Duration::from_secs(3));
    assert_eq!(t.env["A"], "1");
}

#[test]
fn a_command_template_is_not_an_image_template() {
    let cfg = parse(&template("command = [\"app\"]"), Path::new("f.toml")).expect("valid");
    assert_eq!(cfg.launch_templates["web"].image, None);
}

#[test]
fn image_mistakes_are_reported_at_their_values() {
    let cases: [(&str, &str, &str); 10] = [
        (
            "command = [\"app\"]\nport = 80",
            "3:8",
            "`port` applies only to image templates",
        ),
        (
            "command = [\"app\"]\npull = \"never\"",
            "3:8",
            "`pull` applies only to image templates",
        ),
        ("image = \"\"", "2:9", "must not be empty"),
        ("image = \"--privileged\"", "2:9", "must not start with `-`"),
        ("image = \"a b\"", "2:9", "must not contain spaces"),
        (
            "image = \"x\"\nport = 0",
            "3:8",
            "port must be between 1 and 65535",
        ),
        (
            "image = \"x\"\ncpu = 0",
            "3:7",
            "cpu must be a number of cores above 0",
        ),
        (
            "image = \"x\"\nmemory = \"1MiB\"",
            "3:10",
            "memory must be at least 6MiB",
        ),
        (
            "image = \"x\"\npull = \"sometimes\"",
            "3:8",
            "unknown pull policy `sometimes`",
        ),
        (
            "image = \"x\"\nworking_dir = \"/srv\"",
            "3:15",
            "`working_dir` applies only to command templates",
        ),
    ];
    for (body, at, msg) in cases {
        let got = errors(&template(body));
        assert_eq!(got.len(), 1, "{body}: {got:#?}");
        assert!(
            got[0].starts_with(&format!("{at}: ")) && got[0].contains(msg),
            "{body}: expected {at}: …{msg}…, got {got:#?}"
        );
    }
}

#[test]
fn an_empty_command_next_to_an_image_says_how_to_keep_the_entrypoint() {
    let got = errors(&template("image = \"x\"\ncommand = []"));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with("3:11: ") && got[0].contains("leave it out"),
        "{got:#?}"
    );
}

#[test]
fn a_template_without_command_or_image_asks_for_the_command() {
    let got = errors(&template("env = { A = \"1\" }"));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains("missing required key `command`"),
        "{got:#?}"
    );
}
