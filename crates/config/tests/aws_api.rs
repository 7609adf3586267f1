//! `[aws_api]`: defaults, images, and every bad value reported at its place.

use std::path::Path;

use flotilla_config::{parse, ConfigError};

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

#[test]
fn defaults_and_images_decode() {
    let c = parse(
        "[aws_api]\n[aws_api.images]\n\"ami-12c6146b\" = [\"{flotilla}\", \"demo-app\"]\n\
         [launch_templates.web]\ncommand = [\"app\"]\nuser_data = \"#!/bin/sh\"\n",
        Path::new("f.toml"),
    )
    .unwrap();
    let api = c.aws_api.expect("the section");
    assert_eq!(api.bind.to_string(), "127.0.0.1:4566");
    assert_eq!(
        (api.region.as_str(), api.account_id.as_str()),
        ("us-east-1", "000000000000")
    );
    assert_eq!(api.credentials_env, ["FLOTILLA_AWS_CREDENTIALS"]);
    assert_eq!(api.images["ami-12c6146b"], ["{flotilla}", "demo-app"]);
    assert_eq!(
        c.launch_templates["web"].user_data.as_deref(),
        Some(&b"#!/bin/sh"[..])
    );
    assert!(parse("", Path::new("f.toml")).unwrap().aws_api.is_none());
}

#[test]
fn bad_values_are_reported_where_they_are() {
    let src = "[cluster]\nadmin_bind = \"127.0.0.1:9000\"\n[aws_api]\nbind = \"127.0.0.1:9000\"\n\
               region = \"US East\"\naccount_id = \"12\"\nsurprise = 1\n\
               [aws_api.images]\n\"img-1\" = [\"x\"]\n\"ami-ab\" = []\n";
    let got = errs(src);
    for want in [
        "5:10: invalid region",
        "6:14: invalid account_id",
        "7:1: unknown key",
        "9:1: invalid image id `img-1`",
        "10:12: the image's command",
        "address 127.0.0.1:9000",
    ] {
        assert!(
            got.iter().any(|g| g.contains(want)),
            "{want:?} not in {got:#?}"
        );
    }
}
