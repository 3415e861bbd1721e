//! Account status as the account's current PDS reports it (`com.atproto.sync.getRepoStatus`),
//! so stale `#account` events from an old host are confirmed before anything is hidden.

use serde::Deserialize;

/// What the PDS says about a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoStatus {
    /// Hosted and active.
    Active {
        /// The repo's current revision, when the PDS reports it.
        rev: Option<String>,
    },
    /// Hosted but not active: `takendown`, `suspended`, `deleted`, `deactivated`,
    /// `desynchronized`, `throttled`, or a status this code does not know yet.
    Inactive {
        /// The status string as sent (`unknown` when absent).
        status: String,
    },
    /// The PDS answered `RepoNotFound`: the repo is gone from its current host.
    NotFound,
}

#[derive(Deserialize)]
struct StatusBody {
    did: String,
    active: bool,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    rev: Option<String>,
}

#[derive(Deserialize)]
struct XrpcErrorBody {
    error: String,
}

/// Interprets a 2xx or 4xx answer; `Err` carries the reason when it says nothing usable
/// (the caller then leaves the status unchanged).
pub(crate) fn parse_repo_status(
    did: &str,
    success: bool,
    body: &[u8],
) -> Result<RepoStatus, String> {
    if !success {
        return match serde_json::from_slice::<XrpcErrorBody>(body) {
            Ok(error) if error.error == "RepoNotFound" => Ok(RepoStatus::NotFound),
            Ok(error) => Err(format!("xrpc error {}", truncate(&error.error))),
            Err(_) => Err("client error without an xrpc error body".into()),
        };
    }
    let answer: StatusBody =
        serde_json::from_slice(body).map_err(|e| format!("not a getRepoStatus answer: {e}"))?;
    if answer.did != did {
        return Err("answer is for another DID".into());
    }
    Ok(if answer.active {
        RepoStatus::Active { rev: answer.rev }
    } else {
        RepoStatus::Inactive {
            status: answer.status.unwrap_or_else(|| "unknown".into()),
        }
    })
}

/// Error names come from the remote: keep what goes into our messages short.
fn truncate(s: &str) -> &str {
    s.char_indices().nth(64).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
        let active = RepoStatus::Active {
            rev: Some("3lbb".into()),
        };
        let cases: [(bool, &str, Result<RepoStatus, ()>); 8] = [
            (
                true,
                r#"{"did":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa","active":true,"rev":"3lbb"}"#,
                Ok(active),
            ),
            (
                true,
                r#"{"did":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa","active":false,"status":"takendown"}"#,
                Ok(RepoStatus::Inactive {
                    status: "takendown".into(),
                }),
            ),
            (
                true,
                r#"{"did":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa","active":false}"#,
                Ok(RepoStatus::Inactive {
                    status: "unknown".into(),
                }),
            ),
            (
                true,
                r#"{"did":"did:plc:bbbbbbbbbbbbbbbbbbbbbbbb","active":true}"#,
                Err(()),
            ),
            (true, "not json", Err(())),
            (
                false,
                r#"{"error":"RepoNotFound","message":"Could not find repo"}"#,
                Ok(RepoStatus::NotFound),
            ),
            (false, r#"{"error":"InvalidRequest"}"#, Err(())),
            (false, "<html>", Err(())),
        ];
        for (success, body, expected) in cases {
            let got = parse_repo_status(did, success, body.as_bytes()).map_err(|_| ());
            assert_eq!(got, expected, "{body}");
        }
    }
}
