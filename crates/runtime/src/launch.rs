//! Turns a launch template into the compute provider's launch request.

use std::path::Path;

use flotilla_compute::{LaunchSpec, Signal};
use flotilla_control::InstanceId;
use flotilla_control::LaunchTemplate;

/// The placeholder in a launch template's command that stands for the running binary, so the
/// demo app and examples work wherever Flotilla is installed.
const SELF_PLACEHOLDER: &str = "{flotilla}";

/// The variable telling an instance where the admin API is (`http://HOST:PORT`), so it can
/// poll for and complete its lifecycle actions.
const ADMIN_ENV: &str = "FLOTILLA_ADMIN";

/// The variable naming the file that holds an instance's user data (EC2 `UserData`, decoded),
/// as EC2 serves user data to a VM.
pub(crate) const USER_DATA_ENV: &str = "FLOTILLA_USER_DATA";

/// Writes an instance's user data to `<dir>/<instance id>` (readable by its owner only) and
/// returns the path.
pub(crate) fn write_user_data(dir: &Path, id: &InstanceId, data: &[u8]) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(id.as_str());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(data)?;
    Ok(path.to_string_lossy().into_owned())
}

/// Builds the launch request for one instance of `group` in `zone`; `admin_url` becomes
/// `FLOTILLA_ADMIN` unless the template sets it.
pub(crate) fn launch_spec(
    template: &LaunchTemplate,
    flotilla_exe: &Path,
    id: &InstanceId,
    group: &str,
    zone: &str,
    admin_url: &str,
) -> LaunchSpec {
    let mut env = template.env.clone();
    env.entry(ADMIN_ENV.to_string())
        .or_insert_with(|| admin_url.to_string());
    let exe = flotilla_exe.to_string_lossy();
    // Inside an image the host's binary is not there: its command is taken as written.
    let command = match template.image {
        Some(_) => template.command.clone(),
        None => template
            .command
            .iter()
            .map(|arg| arg.replace(SELF_PLACEHOLDER, &exe))
            .collect(),
    };
    LaunchSpec {
        instance_id: id.to_string(),
        zone: zone.to_string(),
        group: group.to_string(),
        command,
        env,
        working_dir: template.working_dir.clone(),
        // The config only accepts signals the compute layer knows; TERM is the safe fallback.
        stop_signal: Signal::from_name(template.stop_signal.as_str()).unwrap_or(Signal::TERM),
        stop_timeout: template.stop_timeout,
        image: template.image.clone(),
    }
}
