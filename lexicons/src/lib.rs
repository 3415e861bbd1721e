//! Lexicon documents for fm.plyr, ATProto identifier syntax, and a validator driven by the
//! lexicon JSON itself (no per-record hand-written checks).
//!
//! Data flow: the indexer hands every incoming record to [`Namespace::validate`], which maps the
//! collection (e.g. `fm.plyr.stg.track`) to its lexicon (`fm.plyr.track`), checks `$type`, the
//! record key and the lexicon, then plyr's own app rules.
//!
//! ```
//! use plyr_lexicons::{Namespace, RecordKind};
//! let ns = Namespace::new("fm.plyr").unwrap();
//! assert_eq!(ns.kind_of("fm.plyr.track"), Some(RecordKind::Track));
//! assert_eq!(ns.kind_of("fm.plyr.stg.track"), None);
//! ```
#![warn(missing_docs)]
