//! One API call: the service and action it names, a working copy of the registry the action
//! may change, and the commit — a changed registry is turned into the overlay and applied
//! through the backend first; only if that works does the change count (and it is stored).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flotilla_config::Config;

use crate::backend::AwsBackend;
use crate::model::overlay::OverlayContext;
use crate::model::{Ids, Overlay, Registry, ZoneMap};
use crate::protocol::{AwsError, AwsResult, Params};
use crate::server::Api;

/// The three APIs of the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    Ec2,
    Elbv2,
    AutoScaling,
}

impl Service {
    /// By `Version`, else by the SigV4 scope's service.
    pub(crate) fn of(version: Option<&str>, scope: Option<&str>) -> AwsResult<Service> {
        match (version, scope) {
            (Some("2016-11-15"), _) => Ok(Service::Ec2),
            (Some("2015-12-01"), _) => Ok(Service::Elbv2),
            (Some("2011-01-01"), _) => Ok(Service::AutoScaling),
            (Some(v), _) => Err(AwsError::new(
                "NoSuchVersion",
                format!(
                    "The requested version ({v}) of service is not served here: Flotilla speaks \
                     ELBv2 2015-12-01, Auto Scaling 2011-01-01 and EC2 2016-11-15"
                ),
            )),
            (None, Some("ec2")) => Ok(Service::Ec2),
            (None, Some("autoscaling")) => Ok(Service::AutoScaling),
            (None, Some("elasticloadbalancing")) => Ok(Service::Elbv2),
            (None, _) => Err(AwsError::missing("Version")),
        }
    }

    pub(crate) fn namespace(self) -> &'static str {
        match self {
            Service::Ec2 => "http://ec2.amazonaws.com/doc/2016-11-15/",
            Service::Elbv2 => "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
            Service::AutoScaling => "http://autoscaling.amazonaws.com/doc/2011-01-01/",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Elbv2 => "elasticloadbalancing",
            Service::AutoScaling => "autoscaling",
        }
    }
}

/// An action's answer: a Query `<OpResult>` body (`None`: the operation has no output) or
/// EC2's children of the root.
pub(crate) enum Answer {
    Query(Option<String>),
    Ec2(String),
}

/// What a handler works with.
pub(crate) struct Call<'a> {
    pub(crate) p: &'a Params,
    /// A working copy; committed only if the backend applies it.
    pub(crate) reg: Registry,
    /// The config file's resources (read-only through the API).
    pub(crate) file: Config,
    pub(crate) zones: ZoneMap,
    pub(crate) ids: &'a Ids,
    pub(crate) backend: &'a dyn AwsBackend,
    pub(crate) listen_ip: std::net::IpAddr,
    /// Backend commands to run once the registry change is applied (e.g. the desired
    /// capacity `UpdateAutoScalingGroup` sets).
    pub(crate) after_commit: Vec<AfterCommit>,
}

/// A backend command run after the commit.
pub(crate) type AfterCommit = Box<dyn FnOnce(&dyn AwsBackend) -> crate::backend::CommandResult<()>>;

/// `InvalidAction` for an action the service does not have (here).
pub(crate) fn invalid_action(action: &str) -> AwsError {
    AwsError::new(
        "InvalidAction",
        format!("The action {action} is not valid for this web service."),
    )
}

impl Call<'_> {
    /// Runs `action` of `service`; commits a changed registry through the backend.
    pub(crate) fn run(api: &Api, p: &Params, service: Service, action: &str) -> AwsResult<Answer> {
        // Held for the whole call: changes are applied in the order they were made.
        let mut current = api.registry.lock().unwrap_or_else(|e| e.into_inner());
        let file = api.backend.file_config();
        let mut call = Call {
            p,
            reg: current.clone(),
            zones: ZoneMap::new(&api.settings.region, &file.cluster.zones),
            file,
            ids: &api.ids,
            backend: api.backend.as_ref(),
            listen_ip: api.settings.listen_ip,
            after_commit: Vec::new(),
        };
        let answer = match service {
            Service::Ec2 => crate::ec2::dispatch(&mut call, action),
            Service::Elbv2 => crate::elbv2::dispatch(&mut call, action),
            Service::AutoScaling => crate::autoscaling::dispatch(&mut call, action),
        }?;
        if call.reg != *current {
            call.commit()?;
            *current = std::mem::take(&mut call.reg);
        }
        for f in std::mem::take(&mut call.after_commit) {
            f(call.backend).map_err(AwsError::validation)?;
        }
        Ok(answer)
    }

    fn commit(&self) -> AwsResult<()> {
        let images = self
            .file
            .aws_api
            .as_ref()
            .map(|a| a.images.clone())
            .unwrap_or_default();
        let cx = OverlayContext {
            images: &images,
            listen_ip: self.listen_ip,
            working_dir: &self.file.base_dir,
        };
        let overlay = Overlay::build(&self.reg, &cx).map_err(AwsError::validation)?;
        self.backend
            .apply(&overlay, self.reg.to_records())
            .map_err(AwsError::validation)
    }

    /// Images of `[aws_api.images]`.
    pub(crate) fn images(&self) -> BTreeMap<String, Vec<String>> {
        self.file
            .aws_api
            .as_ref()
            .map(|a| a.images.clone())
            .unwrap_or_default()
    }
}

/// Now, ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// ISO 8601 with milliseconds, as AWS writes timestamps.
pub(crate) fn iso(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// One page of `items` from the opaque `token` (an offset), at most `max`; the token of the
/// next page when there is one. A token that is not one of ours is `bad_token`.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    token: Option<&str>,
    max: usize,
    bad_token: impl Fn() -> AwsError,
) -> AwsResult<(Vec<T>, Option<String>)> {
    let start = match token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("flotilla-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(&bad_token)?,
    };
    let max = max.max(1);
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| format!("flotilla-{end}"));
    let page = items.into_iter().skip(start).take(end - start).collect();
    Ok((page, next))
}
