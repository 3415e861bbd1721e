//! ATProto identity: resolve DIDs to documents and verify handles both ways, for the indexer
//! (commit signature keys, PDS endpoints, handles) and the appview (service-auth JWT keys).
//!
//! Data flow:
//!
//! ```text
//! Did --resolve_did--> cache (moka, TTL) --miss--> did:plc: GET {plc_url}/{did}
//!                                                  did:web: GET https://{host}/.well-known/did.json
//!       -> DidDocument (id must equal the DID) -> signing_key() / pds_endpoint() / handle()
//! DidDocument --verified_handle--> handle() --resolve_handle--> DNS TXT _atproto.{handle}
//!                                                            || GET https://{handle}/.well-known/atproto-did
//!       -> Some(handle) only if it names the same DID, else None ("handle.invalid")
//! ```
//!
//! [`SyncClient`] makes the repository sync calls of a backfill (`getRepo` streamed under a
//! size cap, `listRepos` and `listReposByCollection` pages) and of the blob mirror (`getBlob`,
//! a capped [`Download`]) through the same guard.
//!
//! [`Resolver::repo_status`] asks the account's current PDS (`com.atproto.sync.getRepoStatus`)
//! before an `#account` event hides anything: old hosts keep sending stale events.
//!
//! Every request goes through one guard: per-host token buckets, timeouts, a body cap read in
//! chunks, same-origin redirects only, and an address policy that refuses private, loopback,
//! link-local, unique-local, multicast and reserved addresses (loopback is allowed only with
//! `allow_loopback`, for tests). Host names are resolved by the guard itself and the client
//! connects only to the addresses it checked, so DNS rebinding cannot reach a private address.
//!
//! ```no_run
//! use plyr_identity::{Did, Resolver, ResolverConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = Resolver::new(ResolverConfig::default())?;
//! let did = Did::new("did:plc:ewvi7nxzyoun6zhxrhs64oiz")?;
//! let doc = resolver.resolve_did(&did).await?;
//! let key = doc.signing_key()?; // plyr_repo::PublicKey, for verify_commit
//! let handle = resolver.verified_handle(&doc).await; // None: show "handle.invalid"
//! # let _ = (key, handle);
//! # Ok(())
//! # }
//! ```

mod address;
mod config;
mod dns;
mod document;
mod error;
mod fetch;
mod identifier;
mod rate;
mod resolver;
mod service_auth;
mod status;
mod sync;

pub use config::ResolverConfig;
pub use document::{DidDocument, Service, VerificationMethod};
pub use error::{BuildError, IdentityError, IdentityErrorKind};
pub use fetch::Download;
pub use identifier::{Did, Handle};
pub use rate::RateLimit;
pub use resolver::Resolver;
#[doc(hidden)]
pub use service_auth::fuzz_service_token;
pub use service_auth::{AuthError, ServiceAuth, ServiceToken};
pub use status::RepoStatus;
pub use sync::{ListedRepo, Listing, RepoPage, SyncClient, SyncConfig, xrpc_url};
