//! "Did you mean …?" suggestions for misspelt keys, values and names.

/// Levenshtein edit distance between two strings, counted in characters.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'c, I>(word: &str, candidates: I) -> Option<&'c str>
where
    I: IntoIterator<Item = &'c str>,
{
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&word.to_ascii_lowercase(), c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"` or the empty string.
pub(crate) fn hint<'c, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'c str>,
{
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("heath_check", "health_check"), 1);
    }

    #[test]
    fn suggests_only_close_words() {
        let keys = ["health_check", "protocol", "targets"];
        assert_eq!(closest("heath_check", keys), Some("health_check"));
        assert_eq!(closest("protocl", keys), Some("protocol"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(hint("target", keys), "; did you mean `targets`?");
        assert_eq!(hint("nothing_like_it", keys), "");
    }
}
