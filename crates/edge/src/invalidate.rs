//! Invalidations (CloudFront `CreateInvalidation`): paths that remove every cached object
//! whose path matches, each a record with an id and a status.

use std::time::SystemTime;

/// One invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// `I` followed by a sequence number, unique per distribution.
    pub id: String,
    /// `Completed` (objects are dropped before the API answers).
    pub status: &'static str,
    /// The paths as given.
    pub paths: Vec<String>,
    /// When it was made.
    pub create_time: SystemTime,
    /// How many objects it removed.
    pub objects: usize,
}

/// CloudFront's rules: 1–3000 paths, each starting with `/` (or `*`), `*` only at the end.
pub fn validate(paths: &[String]) -> Result<(), String> {
    if paths.is_empty() || paths.len() > 3000 {
        return Err("an invalidation lists 1 to 3000 paths".into());
    }
    for p in paths {
        let star = p.find('*');
        if !(p.starts_with('/') || p == "*") || star.is_some_and(|i| i != p.len() - 1) {
            return Err(format!(
                "invalid path `{p}`: it starts with `/` and may end with one `*`"
            ));
        }
        if p.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "invalid path `{p}`: no spaces or control characters"
            ));
        }
    }
    Ok(())
}

/// Whether an object's path falls under an invalidation path (`/img/*` is a prefix).
pub fn covers(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_exact_paths() {
        assert!(covers("/img/*", "/img/a.png"));
        assert!(!covers("/img/*", "/imgx"));
        assert!(covers("/*", "/anything"));
        assert!(covers("/index.html", "/index.html"));
        assert!(!covers("/index.html", "/index.html2"));
    }

    #[test]
    fn paths_are_checked() {
        assert!(validate(&["/a/*".into()]).is_ok());
        assert!(validate(&[]).is_err());
        assert!(validate(&["a".into()]).is_err());
        assert!(validate(&["/a*b".into()]).is_err());
    }
}
