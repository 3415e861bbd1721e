//! The sequential stage's state (pure, no IO): each tracked repo's verified chain (rev, data
//! root), the sync 1.1 ordering checks, and the events held while a repo resyncs. Every
//! decision is an [`Action`] for the driver: a writer item, or a resync to start.

use std::collections::{HashMap, VecDeque};

use super::verify::{CheckedCommit, CheckedSync};
use crate::fold::{Classified, Desync, Item, MALFORMED_EVENT, RepoAdvance, RepoCommit, Skip};
use crate::store::RepoState;

/// Skip reason of a commit whose rev is not greater than the repo's last (a replay, or a
/// host sending stale events).
pub(super) const STALE_REV: &str = "stale_rev";
/// Skip reason of a commit whose rev is too far in the future.
pub(super) const FUTURE_REV: &str = "future_rev";
/// How far past now a rev may be: clocks drift, but a rev far ahead would block the repo's
/// real later commits (each must have a greater rev). The spec says "a few minutes".
const MAX_FUTURE_US: i64 = 5 * 60 * 1_000_000;
/// Commits held per repo while it resyncs. Past this the queue is dropped and the repo
/// resynced again once the running resync returns: the later `getRepo` covers them.
pub(super) const MAX_HELD: usize = 256;

const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// What the driver must do after a step.
// Emits are nearly every action, and drained at once: boxing them would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    /// Send this to the writer.
    Emit(Classified),
    /// Start (or queue) a resync of this repo.
    Resync(String),
}

/// One tracked repo.
#[derive(Debug)]
enum Repo {
    /// The chain is whole: the next commit must have `since == rev` and `prevData == data`.
    Synced { rev: String, data: String },
    /// A resync is queued or running; live commits wait in `held`, in stream order. `again`:
    /// the repo changed under the running resync (a `#sync`, an overflow), so resync again.
    Resyncing {
        held: VecDeque<CheckedCommit>,
        again: bool,
    },
}

/// Every tracked repo's chain.
#[derive(Debug, Default)]
pub(super) struct Chain {
    repos: HashMap<String, Repo>,
}

impl Chain {
    /// The chains stored in `repo_state`; desynchronized ones await a resync.
    pub(super) fn new(states: Vec<RepoState>) -> Chain {
        let repos = states
            .into_iter()
            .map(|state| {
                let repo = if state.is_desynchronized() {
                    Repo::Resyncing {
                        held: VecDeque::new(),
                        again: false,
                    }
                } else {
                    Repo::Synced {
                        rev: state.rev,
                        data: state.data_cid,
                    }
                };
                (state.did, repo)
            })
            .collect();
        Chain { repos }
    }

    /// Repos waiting for a resync (at start: those left desynchronized).
    pub(super) fn resyncing(&self) -> Vec<String> {
        let mut dids: Vec<String> = self
            .repos
            .iter()
            .filter(|(_, repo)| matches!(repo, Repo::Resyncing { .. }))
            .map(|(did, _)| did.clone())
            .collect();
        dids.sort();
        dids
    }

    /// Whether the repo is tracked.
    pub(super) fn is_tracked(&self, did: &str) -> bool {
        self.repos.contains_key(did)
    }

    /// One verified live commit, at `now_us` (unix µs).
    pub(super) fn commit(&mut self, commit: CheckedCommit, now_us: i64, out: &mut Vec<Action>) {
        self.step(commit, now_us, true, out);
    }

    /// `live`: the commit comes from the stream now, so its items move the cursor; held
    /// commits replayed after a resync do not (the cursor passed them when they were held).
    fn step(&mut self, commit: CheckedCommit, now_us: i64, live: bool, out: &mut Vec<Action>) {
        let seq = live.then_some(commit.seq);
        let skip = |reason, detail: String| {
            Action::Emit(Classified {
                time_us: seq,
                item: Item::Skip(Skip::new(reason, detail)),
            })
        };
        match tid_micros(&commit.rev) {
            None => {
                let detail = format!("{} rev {:?} is not a TID", commit.did, commit.rev);
                out.push(skip(MALFORMED_EVENT, detail));
                return;
            }
            Some(at) if at > now_us.saturating_add(MAX_FUTURE_US) => {
                let detail = format!("{} rev {} is in the future", commit.did, commit.rev);
                out.push(skip(FUTURE_REV, detail));
                return;
            }
            Some(_) => {}
        }
        let Some(repo) = self.repos.get_mut(&commit.did) else {
            if !commit.namespace_ops {
                out.push(Action::Emit(cursor(seq)));
                return;
            }
            // Newly tracked: apply this commit now, and resync for the records it published
            // before (its later commits wait for the snapshot).
            let did = commit.did.clone();
            self.repos.insert(
                did.clone(),
                Repo::Resyncing {
                    held: VecDeque::new(),
                    again: false,
                },
            );
            out.push(Action::Emit(applied(commit, seq)));
            out.push(Action::Resync(did));
            return;
        };
        match repo {
            Repo::Resyncing { held, again } => {
                if held.len() >= MAX_HELD {
                    tracing::warn!(did = %commit.did, "held commits overflowed; resyncing again");
                    held.clear();
                    *again = true;
                }
                held.push_back(commit);
                out.push(Action::Emit(cursor(seq)));
            }
            Repo::Synced { rev, data } => {
                if commit.rev <= *rev {
                    let detail = format!("{} rev {} after {rev}", commit.did, commit.rev);
                    out.push(skip(STALE_REV, detail));
                    return;
                }
                if commit.since.as_deref() != Some(rev.as_str()) || commit.prev_data != *data {
                    let reason = format!(
                        "commit {} has since {:?} and prevData {}, stored rev {rev} and data {data}",
                        commit.rev, commit.since, commit.prev_data
                    );
                    tracing::warn!(did = %commit.did, %reason, "chain broken; resyncing");
                    let did = commit.did.clone();
                    let desync = Desync {
                        did: did.clone(),
                        rev: Some(commit.rev.clone()),
                        reason,
                    };
                    *repo = Repo::Resyncing {
                        held: VecDeque::from([commit]),
                        again: false,
                    };
                    out.push(Action::Emit(Classified {
                        time_us: seq,
                        item: Item::Desynchronized(desync),
                    }));
                    out.push(Action::Resync(did));
                    return;
                }
                rev.clone_from(&commit.rev);
                data.clone_from(&commit.data);
                out.push(Action::Emit(applied(commit, seq)));
            }
        }
    }

    /// A verified `#sync`: resync unless it names the state we hold.
    pub(super) fn sync(&mut self, sync: CheckedSync, out: &mut Vec<Action>) {
        let seq = Some(sync.seq);
        let Some(repo) = self.repos.get_mut(&sync.did) else {
            out.push(Action::Emit(cursor(seq)));
            return;
        };
        match repo {
            Repo::Resyncing { again, .. } => {
                *again = true;
                out.push(Action::Emit(cursor(seq)));
            }
            Repo::Synced { rev, data } => {
                if sync.rev < *rev {
                    let detail = format!("{} #sync rev {} after {rev}", sync.did, sync.rev);
                    out.push(Action::Emit(Classified {
                        time_us: seq,
                        item: Item::Skip(Skip::new(STALE_REV, detail)),
                    }));
                } else if sync.rev == *rev && sync.data == *data {
                    out.push(Action::Emit(cursor(seq)));
                } else {
                    let reason = format!("#sync to rev {} data {}", sync.rev, sync.data);
                    tracing::info!(did = %sync.did, %reason, "repo reset; resyncing");
                    *repo = Repo::Resyncing {
                        held: VecDeque::new(),
                        again: false,
                    };
                    out.push(Action::Emit(Classified {
                        time_us: seq,
                        item: Item::Desynchronized(Desync {
                            did: sync.did.clone(),
                            rev: Some(sync.rev),
                            reason,
                        }),
                    }));
                    out.push(Action::Resync(sync.did));
                }
            }
        }
    }

    /// A resync landed at (`rev`, `data`): resync again if asked, else apply the held
    /// commits newer than the snapshot, in order.
    pub(super) fn resynced(
        &mut self,
        did: &str,
        rev: String,
        data: String,
        now_us: i64,
        out: &mut Vec<Action>,
    ) {
        let held = match self.repos.remove(did) {
            Some(Repo::Resyncing { held, again: true }) => {
                self.repos
                    .insert(did.to_owned(), Repo::Resyncing { held, again: false });
                out.push(Action::Resync(did.to_owned()));
                return;
            }
            Some(Repo::Resyncing { held, again: false }) => held,
            // Not resyncing (cannot happen: only the driver starts resyncs, on our word).
            Some(Repo::Synced { .. }) | None => VecDeque::new(),
        };
        let snapshot = rev.clone();
        self.repos
            .insert(did.to_owned(), Repo::Synced { rev, data });
        for commit in held {
            if commit.rev > snapshot {
                self.step(commit, now_us, false, out);
            }
        }
    }

    /// A resync failed: mark the repo desynchronized (its held commits stay held for the
    /// retry, which the driver schedules).
    pub(super) fn resync_failed(&mut self, did: &str, reason: String, out: &mut Vec<Action>) {
        out.push(Action::Emit(Classified {
            time_us: None,
            item: Item::Desynchronized(Desync {
                did: did.to_owned(),
                rev: None,
                reason,
            }),
        }));
    }
}

/// The writer item of a commit that extends the chain.
fn applied(commit: CheckedCommit, seq: Option<i64>) -> Classified {
    Classified {
        time_us: seq,
        item: Item::RepoCommit(RepoCommit {
            advance: RepoAdvance {
                did: commit.did,
                rev: commit.rev,
                data_cid: commit.data,
            },
            ops: commit.ops,
            skips: commit.skips,
        }),
    }
}

fn cursor(seq: Option<i64>) -> Classified {
    Classified {
        time_us: seq,
        item: Item::Cursor,
    }
}

/// The timestamp of a TID rev, in unix µs; `None` if it is not a TID.
pub(super) fn tid_micros(tid: &str) -> Option<i64> {
    if tid.len() != 13 {
        return None;
    }
    let mut value: u64 = 0;
    for byte in tid.bytes() {
        let digit = TID_ALPHABET.iter().position(|&c| c == byte)?;
        value = (value << 5) | u64::try_from(digit).ok()?;
    }
    // The top bit is always 0; the low 10 bits are the clock id.
    if value >> 63 != 0 {
        return None;
    }
    i64::try_from(value >> 10).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tid;

    const DID: &str = "did:plc:chaintest";
    /// A `now` well past the test revs, which are small TIDs.
    const NOW: i64 = 1_767_225_600_000_000;

    /// A commit at rev `n` following rev `since` (data roots named after the revs).
    fn commit(seq: i64, n: u64, since: Option<u64>, ours: bool) -> CheckedCommit {
        CheckedCommit {
            seq,
            did: DID.to_owned(),
            rev: rev(n),
            since: since.map(rev),
            data: format!("data{n}"),
            prev_data: since.map_or_else(|| "empty".to_owned(), |s| format!("data{s}")),
            namespace_ops: ours,
            ops: Vec::new(),
            skips: Vec::new(),
        }
    }

    /// A TID for `n` µs after the epoch (clock id 0), so `tid_micros(rev(n)) == n`.
    fn rev(n: u64) -> String {
        tid(n << 10)
    }

    fn synced_at(n: u64) -> Chain {
        Chain::new(vec![RepoState {
            did: DID.to_owned(),
            rev: rev(n),
            data_cid: format!("data{n}"),
            status: "synced".to_owned(),
        }])
    }

    /// `apply:<rev n>`, `skip:<reason>`, `cursor`, `desync`, `resync` per action.
    fn shape(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Resync(_) => "resync".to_owned(),
                Action::Emit(c) => match &c.item {
                    Item::RepoCommit(rc) => format!("apply:{}", rc.advance.rev),
                    Item::Skip(s) => format!("skip:{}", s.reason),
                    Item::Cursor => "cursor".to_owned(),
                    Item::Desynchronized(_) => "desync".to_owned(),
                    other => format!("{other:?}"),
                },
            })
            .collect()
    }

    #[test]
    fn tid_timestamps() {
        assert_eq!(tid_micros(&rev(12345)), Some(12345));
        assert_eq!(
            tid_micros("3lbp5n4x7ws2k").map(|t| t > 1_700_000_000_000_000),
            Some(true)
        );
        for bad in [
            "",
            "short",
            "3lbp5n4x7ws2k0",
            "3lbp5n4x7ws2!",
            "zzzzzzzzzzzzz",
        ] {
            assert_eq!(tid_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn chain_checks() {
        let future = u64::try_from(NOW + MAX_FUTURE_US + 1).expect("positive");
        // (stored rev, commit, expected actions)
        let cases: Vec<(u64, CheckedCommit, Vec<String>)> = vec![
            (
                5,
                commit(1, 6, Some(5), false),
                vec![format!("apply:{}", rev(6))],
            ),
            (
                5,
                commit(1, 5, Some(4), true),
                vec!["skip:stale_rev".into()],
            ),
            (
                5,
                commit(1, 3, Some(2), true),
                vec!["skip:stale_rev".into()],
            ),
            (
                5,
                commit(1, future, Some(5), true),
                vec!["skip:future_rev".into()],
            ),
            // A gap: since names a rev we never saw.
            (
                5,
                commit(1, 8, Some(7), true),
                vec!["desync".into(), "resync".into()],
            ),
            // since matches but prevData does not.
            (
                5,
                CheckedCommit {
                    prev_data: "other".into(),
                    ..commit(1, 6, Some(5), true)
                },
                vec!["desync".into(), "resync".into()],
            ),
            (
                5,
                CheckedCommit {
                    rev: "not-a-tid".into(),
                    ..commit(1, 6, Some(5), true)
                },
                vec!["skip:malformed_event".into()],
            ),
        ];
        for (stored, c, want) in cases {
            let mut chain = synced_at(stored);
            let mut out = Vec::new();
            chain.commit(c.clone(), NOW, &mut out);
            assert_eq!(shape(&out), want, "{c:?}");
            assert!(out.iter().all(|a| match a {
                Action::Emit(e) => e.time_us == Some(1),
                Action::Resync(did) => did == DID,
            }));
        }
    }

    #[test]
    fn untracked_repos_become_tracked_by_namespace_records() {
        let mut chain = Chain::default();
        let mut out = Vec::new();
        chain.commit(commit(1, 3, Some(2), false), NOW, &mut out);
        assert_eq!(shape(&out), vec!["cursor"]);
        assert!(!chain.is_tracked(DID));
        out.clear();
        chain.commit(commit(2, 4, Some(3), true), NOW, &mut out);
        assert_eq!(
            shape(&out),
            vec![format!("apply:{}", rev(4)), "resync".into()]
        );
        assert!(chain.is_tracked(DID));
        // Held until the resync for its earlier records lands.
        out.clear();
        chain.commit(commit(3, 5, Some(4), false), NOW, &mut out);
        assert_eq!(shape(&out), vec!["cursor"]);
        out.clear();
        chain.resynced(DID, rev(4), "data4".into(), NOW, &mut out);
        assert_eq!(shape(&out), vec![format!("apply:{}", rev(5))]);
        assert!(
            out.iter()
                .all(|a| matches!(a, Action::Emit(c) if c.time_us.is_none()))
        );
    }

    #[test]
    fn held_commits_apply_after_the_snapshot() {
        let mut chain = synced_at(5);
        let mut out = Vec::new();
        // A gap at 8 (7 was missed), then 9 and 10 arrive during the resync.
        for (seq, n, since) in [(1, 8, 7), (2, 9, 8), (3, 10, 9)] {
            chain.commit(commit(seq, n, Some(since), true), NOW, &mut out);
        }
        assert_eq!(shape(&out), vec!["desync", "resync", "cursor", "cursor"]);
        assert_eq!(chain.resyncing(), vec![DID.to_owned()]);
        out.clear();
        // The snapshot already holds 8 and 9: only 10 is applied, and nothing counts as stale.
        chain.resynced(DID, rev(9), "data9".into(), NOW, &mut out);
        assert_eq!(shape(&out), vec![format!("apply:{}", rev(10))]);
        out.clear();
        chain.commit(commit(4, 11, Some(10), true), NOW, &mut out);
        assert_eq!(shape(&out), vec![format!("apply:{}", rev(11))]);
    }

    #[test]
    fn overflow_and_sync_ask_for_another_resync() {
        let mut chain = synced_at(5);
        let mut out = Vec::new();
        chain.commit(commit(1, 8, Some(7), true), NOW, &mut out);
        for i in 0..u64::try_from(MAX_HELD).expect("small") {
            chain.commit(commit(2, 9 + i, Some(8 + i), true), NOW, &mut out);
        }
        out.clear();
        chain.resynced(DID, rev(8), "data8".into(), NOW, &mut out);
        assert_eq!(shape(&out), vec!["resync"]);
        out.clear();
        chain.resynced(DID, rev(400), "data400".into(), NOW, &mut out);
        assert_eq!(shape(&out), Vec::<String>::new());

        let sync = |rev_n: u64, data: &str| CheckedSync {
            seq: 9,
            did: DID.to_owned(),
            rev: rev(rev_n),
            data: data.to_owned(),
        };
        let cases = [
            (sync(400, "data400"), vec!["cursor"]),
            (sync(300, "data300"), vec!["skip:stale_rev"]),
            (sync(400, "other"), vec!["desync", "resync"]),
            (sync(500, "data500"), vec!["desync", "resync"]),
        ];
        for (s, want) in cases {
            let mut chain = synced_at(400);
            let mut out = Vec::new();
            chain.sync(s.clone(), &mut out);
            assert_eq!(shape(&out), want, "{s:?}");
        }
        // A #sync during a resync makes it run again.
        let mut chain = synced_at(400);
        let mut out = Vec::new();
        chain.sync(sync(500, "data500"), &mut out);
        chain.sync(sync(501, "data501"), &mut out);
        out.clear();
        chain.resynced(DID, rev(500), "data500".into(), NOW, &mut out);
        assert_eq!(shape(&out), vec!["resync"]);
    }

    #[test]
    fn desynchronized_repos_resync_at_start() {
        let chain = Chain::new(vec![
            RepoState {
                did: "did:plc:b".into(),
                rev: rev(1),
                data_cid: "d".into(),
                status: "desynchronized".into(),
            },
            RepoState {
                did: "did:plc:a".into(),
                rev: rev(1),
                data_cid: "d".into(),
                status: "synced".into(),
            },
        ]);
        assert_eq!(chain.resyncing(), vec!["did:plc:b".to_owned()]);
        assert!(chain.is_tracked("did:plc:a"));
    }
}
