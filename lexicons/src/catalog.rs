//! The catalog: lexicon documents keyed by NSID, reference resolution, and the embedded
//! plyr catalog built from every file in `schemas/`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::schema::{Document, LexiconError, Schema};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Lexicon documents keyed by NSID.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    docs: BTreeMap<String, Document>,
}

/// An embedded document that failed to load: its file name and why.
pub(crate) type LoadFailure = (&'static str, String);

/// The embedded catalog and any documents that failed to load (a unit test keeps this empty).
static PLYR: LazyLock<(Catalog, Vec<LoadFailure>)> = LazyLock::new(load_embedded);

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Every document embedded from `lexicons/schemas/`: the fm.plyr records and XRPC methods
    /// and the com.atproto documents they reference. Built once, on first use.
    pub fn plyr() -> &'static Catalog {
        &PLYR.0
    }

    /// Parses, checks and adds one lexicon document.
    pub fn add_document(&mut self, value: serde_json::Value) -> Result<(), LexiconError> {
        let doc = Document::from_json(value)?;
        if self.docs.contains_key(&doc.id) {
            return Err(LexiconError::Duplicate { id: doc.id });
        }
        self.docs.insert(doc.id.clone(), doc);
        Ok(())
    }

    /// The text of every embedded document (`schemas/*.json`) as written, sorted by file
    /// name: for tools that render the documents themselves (the appview's API docs).
    pub fn plyr_sources() -> impl Iterator<Item = &'static str> {
        EMBEDDED.iter().map(|(_, text)| *text)
    }

    /// The document with this NSID.
    pub fn get(&self, nsid: &str) -> Option<&Document> {
        self.docs.get(nsid)
    }

    /// Every NSID in the catalog, in sorted order.
    pub fn nsids(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// Resolves a reference written inside document `base`: `#def`, `nsid#def` or `nsid`
    /// (meaning `nsid#main`). Returns the owning document and the definition.
    pub(crate) fn resolve(&self, base: &str, reference: &str) -> Option<(&Document, &Schema)> {
        let (nsid, name) = split_ref(base, reference);
        let doc = self.docs.get(nsid)?;
        let def = doc.defs.get(name)?;
        Some((doc, def))
    }

    /// Every reference (in `ref` and `union` nodes) that does not resolve, as
    /// `"document: reference"`. Empty for a self-contained catalog.
    pub fn unresolved_refs(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for doc in self.docs.values() {
            for def in doc.defs.values() {
                self.collect_unresolved(&doc.id, def, &mut missing);
            }
        }
        missing
    }

    fn collect_unresolved(&self, base: &str, schema: &Schema, missing: &mut Vec<String>) {
        let mut check = |reference: &str| {
            if self.resolve(base, reference).is_none() {
                missing.push(format!("{base}: {reference}"));
            }
        };
        match schema {
            Schema::Ref(r) => check(&r.reference),
            Schema::Union(u) => u.refs.iter().for_each(|r| check(r)),
            Schema::Record(r) => self.collect_unresolved(base, &r.record, missing),
            Schema::Object(o) => o
                .properties
                .values()
                .for_each(|p| self.collect_unresolved(base, p, missing)),
            Schema::Params(p) => p
                .properties
                .values()
                .for_each(|p| self.collect_unresolved(base, p, missing)),
            Schema::Array(a) => self.collect_unresolved(base, &a.items, missing),
            Schema::Query(q) => {
                let bodies = q.output.iter().filter_map(|b| b.schema.as_deref());
                for s in q.parameters.as_deref().into_iter().chain(bodies) {
                    self.collect_unresolved(base, s, missing);
                }
            }
            Schema::Procedure(p) => {
                let bodies = [&p.input, &p.output]
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b.schema.as_deref());
                for s in p.parameters.as_deref().into_iter().chain(bodies) {
                    self.collect_unresolved(base, s, missing);
                }
            }
            Schema::Subscription(s) => {
                let message = s.message.iter().filter_map(|m| m.schema.as_deref());
                for s in s.parameters.as_deref().into_iter().chain(message) {
                    self.collect_unresolved(base, s, missing);
                }
            }
            _ => {}
        }
    }
}

/// Splits a reference into (document NSID, definition name), relative to `base`.
pub(crate) fn split_ref<'a>(base: &'a str, reference: &'a str) -> (&'a str, &'a str) {
    match reference.split_once('#') {
        Some(("", name)) => (base, name),
        Some((nsid, name)) => (nsid, name),
        None => (reference, "main"),
    }
}

/// Builds the embedded catalog, collecting (not panicking on) documents that fail to load.
pub(crate) fn load_embedded() -> (Catalog, Vec<LoadFailure>) {
    let mut catalog = Catalog::new();
    let mut failures = Vec::new();
    for &(name, text) in EMBEDDED {
        let loaded = match serde_json::from_str(text) {
            Ok(value) => catalog.add_document(value).map_err(|e| error_chain(&e)),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = loaded {
            failures.push((name, e));
        }
    }
    (catalog, failures)
}

/// An error and its sources on one line, `outer: inner: …`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_document_loads() {
        let (catalog, failures) = load_embedded();
        assert!(
            failures.is_empty(),
            "embedded documents failed: {failures:#?}"
        );
        assert_eq!(catalog.nsids().count(), EMBEDDED.len());
        for nsid in [
            "fm.plyr.track",
            "fm.plyr.like",
            "fm.plyr.comment",
            "fm.plyr.list",
            "fm.plyr.actor.profile",
            "com.atproto.repo.strongRef",
            "com.atproto.label.defs",
        ] {
            assert!(catalog.get(nsid).is_some(), "{nsid} missing");
        }
    }

    #[test]
    fn every_embedded_file_is_named_after_its_nsid() {
        for doc in Catalog::plyr().docs.values() {
            let file = format!("{}.json", doc.id);
            assert!(
                EMBEDDED.iter().any(|(name, _)| *name == file),
                "{} is not in {file}",
                doc.id
            );
        }
    }

    #[test]
    fn every_embedded_reference_resolves() {
        assert_eq!(Catalog::plyr().unresolved_refs(), Vec::<String>::new());
    }

    #[test]
    fn split_ref_forms() {
        let cases = [
            ("#item", ("fm.plyr.list", "item")),
            (
                "com.atproto.label.defs#selfLabels",
                ("com.atproto.label.defs", "selfLabels"),
            ),
            (
                "com.atproto.repo.strongRef",
                ("com.atproto.repo.strongRef", "main"),
            ),
        ];
        for (reference, want) in cases {
            assert_eq!(split_ref("fm.plyr.list", reference), want, "{reference}");
        }
    }
}
