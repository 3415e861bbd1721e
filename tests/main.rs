//! End-to-end tests: the root package's one test binary (one link step on 2 cores).

/// Scripted Jetstream server, event builders and the in-process harness.
mod support;

/// Jetstream -> Postgres -> XRPC scenarios: folding, bad input, identity, accounts, reconnects.
mod ingest;

/// Handles verified both ways by the resolver beside the stream, against a loopback PLC.
mod identity;

/// The real binary killed with SIGKILL mid-replay and restarted: nothing lost or doubled.
mod restart;

/// The relay path (`--source relay`) against the reference PDS and a PLC from npm.
mod relay_pds;

/// `backfill --all` from the reference PDS into an empty database: the relay's answers.
mod backfill_pds;

/// Forged and tampered commits spliced into the real PDS firehose: rejected and counted.
mod forged;

/// Faults against a reference run: kill -9 at seeded points, a websocket cut mid-frame, Postgres
/// restarted under the indexer.
mod faults;
