//! Which cache behaviour serves a path: the first whose pattern matches, else the default
//! (CloudFront). Patterns are case-sensitive; `*` matches any run of characters, `?` one.

use flotilla_config::edge::{Behavior, Distribution};

/// The behaviour for `path` (the path only, never the query string).
pub fn select<'a>(d: &'a Distribution, path: &str) -> &'a Behavior {
    d.behaviors
        .iter()
        .find(|b| b.path_pattern.as_deref().is_some_and(|p| matches(p, path)))
        .unwrap_or(&d.default_behavior)
}

/// Whether `path` matches `pattern`; a pattern without a leading `/` (or `*`) is read as
/// starting with one, as CloudFront does (`images/*` is `/images/*`).
pub fn matches(pattern: &str, path: &str) -> bool {
    let p = pattern.as_bytes();
    let rooted = !p.is_empty() && p[0] != b'/' && p[0] != b'*';
    let s = path.as_bytes();
    if rooted {
        return s.first() == Some(&b'/') && glob(p, &s[1..]);
    }
    glob(p, s)
}

/// Iterative wildcard matching with one backtrack point (linear in practice).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns() {
        assert!(matches("/img/*", "/img/a.jpg"));
        assert!(matches("img/*", "/img/a/b.jpg"));
        assert!(!matches("/img/*", "/IMG/a.jpg"));
        assert!(matches("*.jpg", "/x/y.jpg"));
        assert!(matches("/a?c", "/abc"));
        assert!(!matches("/a?c", "/ac"));
        assert!(matches("*", "/anything"));
        assert!(!matches("/api/*", "/apix"));
        assert!(matches("/api*", "/apix"));
    }
}
