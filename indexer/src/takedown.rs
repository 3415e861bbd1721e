//! Local takedowns (`plyr-appview takedown`): an actor, a record or a blob hidden from every
//! read until reversed, kept in migration 0008's `takedown` table that the appview filters by.

use plyr_identity::Did;
use sqlx::PgPool;

use crate::StoreError;
use crate::store::labels as store;

/// What a takedown hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakedownSubject {
    /// An account and everything it published.
    Actor(Did),
    /// One record, by AT-URI (`at://<did>/<collection>/<rkey>`).
    Record(String),
    /// One blob, by CID: `/blob/{cid}` stops serving it.
    Blob(String),
}

/// A subject that is not a DID, a record AT-URI or a CID.
#[derive(Debug, thiserror::Error)]
#[error("invalid takedown subject {subject:?}: {reason}")]
pub struct SubjectError {
    subject: String,
    reason: String,
}

impl TakedownSubject {
    /// An actor by DID.
    pub fn actor(did: &str) -> Result<TakedownSubject, SubjectError> {
        Did::new(did)
            .map(TakedownSubject::Actor)
            .map_err(|e| SubjectError {
                subject: did.to_owned(),
                reason: e.to_string(),
            })
    }

    /// A record by AT-URI; it must name a record (collection and rkey), with a DID authority.
    pub fn record(uri: &str) -> Result<TakedownSubject, SubjectError> {
        let invalid = |reason: String| SubjectError {
            subject: uri.to_owned(),
            reason,
        };
        plyr_lexicons::AtUri::parse(uri).map_err(|e| invalid(e.to_string()))?;
        let parts: Vec<&str> = uri
            .strip_prefix("at://")
            .unwrap_or_default()
            .split('/')
            .collect();
        match parts.as_slice() {
            [authority, collection, rkey]
                if authority.starts_with("did:") && !collection.is_empty() && !rkey.is_empty() =>
            {
                Ok(TakedownSubject::Record(uri.to_owned()))
            }
            _ => Err(invalid(
                "not a record URI (at://<did>/<collection>/<rkey>)".to_owned(),
            )),
        }
    }

    /// A blob by CID.
    pub fn blob(cid: &str) -> Result<TakedownSubject, SubjectError> {
        plyr_repo::Cid::try_from(cid)
            .map(|parsed| TakedownSubject::Blob(parsed.to_string()))
            .map_err(|e| SubjectError {
                subject: cid.to_owned(),
                reason: e.to_string(),
            })
    }

    fn parts(&self) -> (&str, &'static str) {
        match self {
            TakedownSubject::Actor(did) => (did.as_str(), "actor"),
            TakedownSubject::Record(uri) => (uri, "record"),
            TakedownSubject::Blob(cid) => (cid, "blob"),
        }
    }
}

/// Takes `subject` down locally, or with `reverse` restores it. Returns whether anything
/// changed (false: it was already down, or was not down).
pub async fn takedown(
    pool: &PgPool,
    subject: &TakedownSubject,
    reverse: bool,
) -> Result<bool, StoreError> {
    let (subject, kind) = subject.parts();
    store::set_takedown(pool, subject, kind, reverse).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked() {
        assert!(TakedownSubject::actor("did:plc:alice2ggjmksahdcvelwfyzu").is_ok());
        assert!(TakedownSubject::actor("alice.test").is_err());
        assert!(TakedownSubject::record("at://did:plc:alice/fm.plyr.track/3kabc").is_ok());
        for bad in [
            "at://did:plc:alice",
            "at://did:plc:alice/fm.plyr.track",
            "at://alice.test/fm.plyr.track/3kabc",
            "https://x/y/z",
        ] {
            assert!(TakedownSubject::record(bad).is_err(), "{bad}");
        }
        let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        assert_eq!(
            TakedownSubject::blob(cid).expect("cid"),
            TakedownSubject::Blob(cid.to_owned())
        );
        assert!(TakedownSubject::blob("not-a-cid").is_err());
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn takedown_and_reverse(pool: PgPool) {
        let hidden = |pool: PgPool| async move {
            sqlx::query_scalar::<_, String>("select subject from hidden_subject")
                .fetch_all(&pool)
                .await
                .expect("hidden")
        };
        let actor = TakedownSubject::actor("did:plc:alice2ggjmksahdcvelwfyzu").expect("did");
        assert!(takedown(&pool, &actor, false).await.expect("down"));
        assert!(
            !takedown(&pool, &actor, false).await.expect("again"),
            "idempotent"
        );
        assert_eq!(
            hidden(pool.clone()).await,
            ["did:plc:alice2ggjmksahdcvelwfyzu"]
        );
        assert!(takedown(&pool, &actor, true).await.expect("reverse"));
        assert!(!takedown(&pool, &actor, true).await.expect("reverse again"));
        assert!(hidden(pool.clone()).await.is_empty());
    }
}
