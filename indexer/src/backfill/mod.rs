//! Backfill: repositories indexed from their `getRepo` snapshots. [`sync_repo`] verifies and
//! applies one repository (also the relay's resync of a desynchronized repo).

// Until the backfill command and the relay's resync call it.
#![allow(dead_code, unused_imports)]

mod sync;

pub(crate) use sync::{SyncContext, SyncError, Synced, sync_repo};
