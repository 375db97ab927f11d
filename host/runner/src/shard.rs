//! One share of a suite, for suites that run on many machines (`runner test --shard K/N`), the
//! way `cargo nextest run --partition count:K/N` and `jest --shard` take theirs: the scenarios
//! are ordered by a key that does not depend on the machine or on the order they were named in
//! (the path as given), then dealt round-robin. Every scenario is in exactly one shard, and the
//! shards differ in size by at most one.

use std::fmt;

/// Shard `k` of `n` (1-based, as CI matrices count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "--shard {s:?}: give K/N with 1 <= K <= N, e.g. --shard 2/3 for the second of three \
                 (a CI matrix's index and total)"
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// The items of this shard, in their given order. `key` must tell the items apart and must
    /// not depend on the machine: a path as the user gave it, with `./` dropped.
    pub fn pick<T>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> Vec<T> {
        let mut keys: Vec<String> = items.iter().map(&key).collect();
        keys.sort();
        keys.dedup();
        items
            .into_iter()
            .filter(|item| {
                let at = keys.binary_search(&key(item)).unwrap_or(0);
                at % self.n == self.k - 1
            })
            .collect()
    }
}

/// A path as a shard key: its components as given, joined by `/`, without `.` ones, so that
/// `./gallery/seed.wasm` and `gallery/seed.wasm` are one key on every machine.
pub fn key(path: &std::path::Path) -> String {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_shards_partition_any_set_in_any_order(
            names in proptest::collection::btree_set("[a-z/._-]{1,12}", 0..40),
            n in 1usize..8,
            rotate in 0usize..40,
        ) {
            let mut given: Vec<String> = names.iter().cloned().collect();
            if !given.is_empty() {
                let r = rotate % given.len();
                given.rotate_left(r);
            }
            let mut seen: Vec<String> = Vec::new();
            let mut sizes = Vec::new();
            for k in 1..=n {
                let share = Shard { k, n }.pick(given.clone(), |s| s.clone());
                // The same share whatever order the names came in.
                let sorted = Shard { k, n }.pick(names.iter().cloned().collect(), |s| s.clone());
                let mut a = share.clone();
                a.sort();
                prop_assert_eq!(a, sorted);
                sizes.push(share.len());
                seen.extend(share);
            }
            seen.sort();
            let all: Vec<String> = names.iter().cloned().collect();
            prop_assert_eq!(seen, all, "every name in exactly one shard");
            let (min, max) = (sizes.iter().min().copied().unwrap_or(0), sizes.iter().max().copied().unwrap_or(0));
            prop_assert!(max - min <= 1, "{:?}", sizes);
        }
    }

    #[test]
    fn a_shard_is_k_of_n() {
        assert_eq!("2/3".parse(), Ok(Shard { k: 2, n: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("give K/N with 1 <= K <= N"), "{e}");
        }
        assert_eq!(Shard { k: 2, n: 3 }.to_string(), "2/3");
    }

    #[test]
    fn a_path_is_one_key_with_or_without_dot() {
        use std::path::Path;
        assert_eq!(key(Path::new("./gallery/seed.wasm")), "gallery/seed.wasm");
        assert_eq!(key(Path::new("gallery/./seed.wasm")), "gallery/seed.wasm");
    }
}
