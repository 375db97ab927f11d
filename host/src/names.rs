//! Validation of the names a scenario gives its namespaces and links.
//!
//! The kernel limits interface names to IFNAMSIZ-1 = 15 bytes; namespaces get the same limit so
//! a scenario's names can be pinned and shown alongside `ip netns list` output unchanged.

use crate::error::{LabError, LabResult};

/// Longest name the kernel accepts for an interface (IFNAMSIZ - 1).
pub const MAX_NAME_LEN: usize = 15;

/// Check a namespace or link name: 1-15 characters of `[A-Za-z0-9_.-]`, not `.` or `..`.
/// `what` is "namespace" or "link", for the message.
pub fn validate(what: &str, name: &str) -> LabResult<()> {
    if name.is_empty() {
        return Err(LabError::Invalid(format!(
            "{what} name is empty: use 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_.-]"
        )));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(LabError::Invalid(format!(
            "{what} name {name:?} is {} characters long: the limit is {MAX_NAME_LEN} (the kernel's IFNAMSIZ)",
            name.chars().count()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(LabError::Invalid(format!(
            "{what} name {name:?} contains {bad:?}: only [A-Za-z0-9_.-] are allowed"
        )));
    }
    if name == "." || name == ".." {
        return Err(LabError::Invalid(format!(
            "{what} name {name:?} is reserved: pick a name that is not \".\" or \"..\""
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_seed_names() {
        for n in [
            "ns01",
            "ns02",
            "ns01-veth0",
            "a",
            "A_b.c-9",
            "fifteen-chars-x",
        ] {
            validate("link", n).unwrap();
        }
    }

    #[test]
    fn rejects_sixteen_characters_naming_the_limit() {
        let err = validate("link", "sixteen-chars-xx").unwrap_err();
        assert_eq!(
            err.to_string(),
            "link name \"sixteen-chars-xx\" is 16 characters long: the limit is 15 (the kernel's IFNAMSIZ)"
        );
    }

    #[test]
    fn rejects_bad_characters_and_reserved_names() {
        for n in ["a b", "a/b", "ns:1", "é", "a\0b", "x\n"] {
            let err = validate("namespace", n).unwrap_err();
            assert!(matches!(err, LabError::Invalid(_)), "{n:?}");
            assert!(
                err.to_string().contains("only [A-Za-z0-9_.-] are allowed"),
                "{err}"
            );
        }
        assert!(validate("namespace", "")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(validate("namespace", "..")
            .unwrap_err()
            .to_string()
            .contains("reserved"));
    }
}
