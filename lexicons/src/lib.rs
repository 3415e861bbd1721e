//! Lexicon documents for fm.plyr, ATProto identifier syntax, and a validator driven by the
//! lexicon JSON itself (no per-record hand-written checks).
//!
//! Data flow: the indexer hands every incoming record to [`Namespace::validate`], which maps the
//! collection (e.g. `fm.plyr.stg.track`) to its lexicon (`fm.plyr.track`), checks the record key
//! and `$type`, validates the body with the embedded [`Catalog::plyr`], then plyr's own app
//! rules. The appview uses [`Catalog::validate_output`] in tests to check its XRPC responses.
//!
//! ```
//! use plyr_lexicons::{Namespace, RecordKind, RejectionKind};
//!
//! let ns = Namespace::new("fm.plyr")?;
//! assert_eq!(ns.kind_of("fm.plyr.track"), Some(RecordKind::Track));
//! assert_eq!(ns.kind_of("fm.plyr.stg.track"), None);
//!
//! let like = serde_json::json!({
//!     "$type": "fm.plyr.like",
//!     "subject": {
//!         "uri": "at://did:plc:abc/fm.plyr.track/3jzfcijpj2z2a",
//!         "cid": "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq",
//!     },
//!     "createdAt": "2026-01-01T00:00:00Z",
//! });
//! assert_eq!(ns.validate("fm.plyr.like", "3jzfcijpj2z2b", &like), Ok(RecordKind::Like));
//! let wrong = ns.validate("fm.plyr.like", "self", &like).map_err(|r| r.kind());
//! assert_eq!(wrong, Err(RejectionKind::BadRecordKey));
//! # Ok::<(), plyr_lexicons::syntax::SyntaxError>(())
//! ```

mod catalog;
mod data;
mod namespace;
pub mod schema;
pub mod syntax;
mod validate;

pub use catalog::Catalog;
pub use data::validate_data;
pub use namespace::{AppRule, Namespace, RecordKind, Rejection, RejectionKind};
pub use schema::{Document, LexiconError};
pub use syntax::{AtUri, SyntaxError, parse_datetime};
pub use validate::{ValidationError, ValidationErrorKind};
