//! Where a version number is decided and where the newest version is
//! found.
//!
//! Rule: a put of a name gets the highest version any member offered plus
//! one, and its writer's node id. Versions are ordered by (version,
//! writer, manifest id), so two writers that chose the same number at the
//! same time both keep their version (different manifests, both stored and
//! both offered), and the higher writer id is the newer. A reader takes
//! the newest among all answers. A writer that heard no member, or, when
//! it knows the group's N members, fewer than N - R + 1 of them (at least
//! one holder of every version must have answered), refuses to choose a
//! number instead of writing version 1 (or an old number) again.

use std::collections::BTreeMap;
use subcast_proto::replicast::Hash32;

/// A version as found by a lookup, in version order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionKey {
    pub version: u64,
    /// Node id of the client that wrote it.
    pub writer: u32,
    pub manifest_id: Hash32,
}

/// One version found by a lookup: its manifest's size and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FoundVersion {
    pub size: u32,
    pub holders: Vec<u32>,
}

/// Versions found by a lookup, oldest first.
pub type Versions = BTreeMap<VersionKey, FoundVersion>;

/// Why no version number can be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "no member of the name's negotiating group answered the version lookup, so a new version cannot be numbered without risking an existing one: are the nodes running?"
    )]
    NoAnswer,
    #[error(
        "only {answered} of the {known} members of the name's negotiating group answered the version lookup; with R={replicas} at least {need} must answer so that a holder of every version did: retry when the nodes are back"
    )]
    TooFewAnswers {
        answered: usize,
        known: usize,
        replicas: usize,
        need: usize,
    },
}

/// How many of a group's `known` members must answer a lookup so that a
/// holder of every version stored `replicas` times is among them: N - R +
/// 1 (1 while no member is known). A new version's number, a listing and
/// "no such object" all need it.
pub fn quorum(known: usize, replicas: usize) -> usize {
    known.saturating_sub(replicas) + 1
}

/// The version number a new put gets, from a lookup's answers: `answered`
/// members answered, `known` members were expected (0: none known yet).
pub fn next_version(
    found: &Versions,
    answered: usize,
    known: usize,
    replicas: usize,
) -> Result<u64, VersionError> {
    if answered == 0 {
        return Err(VersionError::NoAnswer);
    }
    if known > 0 {
        let need = quorum(known, replicas);
        if answered < need {
            return Err(VersionError::TooFewAnswers {
                answered,
                known,
                replicas,
                need,
            });
        }
    }
    Ok(found.keys().map(|k| k.version).max().unwrap_or(0) + 1)
}

/// The newest version found, or the newest of number `version`.
pub fn newest(found: &Versions, version: Option<u64>) -> Option<(VersionKey, &FoundVersion)> {
    found
        .iter()
        .rev()
        .find(|(k, _)| version.is_none_or(|v| k.version == v))
        .map(|(k, f)| (*k, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: u64, writer: u32, m: u8) -> VersionKey {
        VersionKey {
            version,
            writer,
            manifest_id: [m; 32],
        }
    }

    #[test]
    fn numbering_and_newest() {
        let mut f = Versions::new();
        assert_eq!(next_version(&f, 3, 5, 3), Ok(1));
        f.insert(key(4, 9, 1), FoundVersion::default());
        f.insert(key(4, 7, 2), FoundVersion::default());
        f.insert(key(3, 99, 3), FoundVersion::default());
        assert_eq!(next_version(&f, 5, 5, 3), Ok(5));
        // Same number, two writers: the higher writer is the newer.
        assert_eq!(newest(&f, None).unwrap().0, key(4, 9, 1));
        assert_eq!(newest(&f, Some(3)).unwrap().0, key(3, 99, 3));
        assert!(newest(&f, Some(8)).is_none());
    }

    /// Before: a lookup that nobody answered gave version 1 again.
    #[test]
    fn no_or_too_few_answers_choose_no_number() {
        let f = Versions::new();
        assert_eq!(next_version(&f, 0, 0, 3), Err(VersionError::NoAnswer));
        assert_eq!(next_version(&f, 0, 6, 3), Err(VersionError::NoAnswer));
        // 6 members, R=3: 4 answers make sure a holder of each version did.
        assert!(matches!(
            next_version(&f, 3, 6, 3),
            Err(VersionError::TooFewAnswers { need: 4, .. })
        ));
        assert_eq!(next_version(&f, 4, 6, 3), Ok(1));
        // No member known yet: any answer will do.
        assert_eq!(next_version(&f, 1, 0, 3), Ok(1));
    }
}
