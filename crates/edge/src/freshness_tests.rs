use super::*;
use http::HeaderValue;

const TTLS: Ttls = Ttls {
    min: Duration::from_secs(0),
    default: Duration::from_secs(86_400),
    max: Duration::from_secs(31_536_000),
};

fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        h.append(*n, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn check(status: u16, list: &[(&'static str, &str)]) -> Result<Lifetime, NotStored> {
    let h = headers(list);
    let d = Directives::parse(&h);
    storable(&Method::GET, false, status, &h, &d)?;
    Ok(lifetime(status, &h, &d, TTLS))
}

#[test]
fn explicit_freshness_wins_and_s_maxage_beats_max_age() {
    let l = check(200, &[("cache-control", "max-age=60")]).unwrap();
    assert_eq!(l.fresh_for, Duration::from_secs(60));
    let l = check(200, &[("cache-control", "max-age=60, s-maxage=5")]).unwrap();
    assert_eq!(l.fresh_for, Duration::from_secs(5));
}

#[test]
fn silent_origins_get_the_default_ttl_and_errors_ten_seconds() {
    assert_eq!(check(200, &[]).unwrap().fresh_for, TTLS.default);
    assert_eq!(check(404, &[]).unwrap().fresh_for, ERROR_TTL);
}

#[test]
fn ttl_bounds_clamp_the_origin() {
    let ttls = Ttls {
        min: Duration::from_secs(30),
        default: Duration::from_secs(60),
        max: Duration::from_secs(90),
    };
    let h = headers(&[("cache-control", "max-age=5")]);
    assert_eq!(
        lifetime(200, &h, &Directives::parse(&h), ttls).fresh_for,
        Duration::from_secs(30)
    );
    let h = headers(&[("cache-control", "max-age=500")]);
    assert_eq!(
        lifetime(200, &h, &Directives::parse(&h), ttls).fresh_for,
        Duration::from_secs(90)
    );
}

#[test]
fn expires_counts_from_date_and_an_invalid_one_is_stale() {
    let l = check(
        200,
        &[
            ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
            ("expires", "Mon, 07 Dec 2026 10:02:00 GMT"),
        ],
    )
    .unwrap();
    assert_eq!(l.fresh_for, Duration::from_secs(120));
    assert_eq!(
        check(200, &[("expires", "0")]).unwrap().fresh_for,
        Duration::ZERO
    );
}

#[test]
fn refusals() {
    assert_eq!(
        check(200, &[("cache-control", "no-store")]),
        Err("no-store")
    );
    assert_eq!(
        check(200, &[("cache-control", "private, max-age=60")]),
        Err("private")
    );
    assert_eq!(check(200, &[("vary", "*")]), Err("Vary: *"));
    assert_eq!(check(200, &[("set-cookie", "a=b")]), Err("Set-Cookie"));
    assert!(check(302, &[]).is_err());
    assert!(check(500, &[]).is_err());
    assert!(check(302, &[("cache-control", "max-age=10")]).is_ok());
    let h = HeaderMap::new();
    let d = Directives::parse(&h);
    assert!(storable(&Method::POST, false, 200, &h, &d).is_err());
    assert!(storable(&Method::GET, true, 200, &h, &d).is_err());
    let h = headers(&[("cache-control", "public")]);
    assert!(storable(&Method::GET, true, 200, &h, &Directives::parse(&h)).is_ok());
}

#[test]
fn no_cache_is_stored_but_never_fresh_and_must_revalidate_has_no_stale_windows() {
    assert_eq!(
        check(200, &[("cache-control", "no-cache")])
            .unwrap()
            .fresh_for,
        Duration::ZERO
    );
    let l = check(
        200,
        &[(
            "cache-control",
            "max-age=1, stale-while-revalidate=30, stale-if-error=60",
        )],
    )
    .unwrap();
    assert_eq!(
        (l.stale_while_revalidate, l.stale_if_error),
        (Duration::from_secs(30), Duration::from_secs(60))
    );
    let l = check(
        200,
        &[(
            "cache-control",
            "max-age=1, must-revalidate, stale-if-error=60",
        )],
    )
    .unwrap();
    assert_eq!(l.stale_if_error, Duration::ZERO);
}

#[test]
fn initial_age_takes_the_larger_of_date_and_age_plus_delay() {
    let t0 = httpdate::parse_http_date("Mon, 07 Dec 2026 10:00:00 GMT").unwrap();
    let h = headers(&[("date", "Mon, 07 Dec 2026 09:59:50 GMT"), ("age", "3")]);
    assert_eq!(
        initial_age(&h, t0, t0 + Duration::from_secs(1)),
        Duration::from_secs(11)
    );
    let h = headers(&[("age", "30")]);
    assert_eq!(
        initial_age(&h, t0, t0 + Duration::from_secs(1)),
        Duration::from_secs(31)
    );
}
