//! Serves the Postgres view over XRPC.
