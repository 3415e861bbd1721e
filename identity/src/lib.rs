//! ATProto identity: resolve DIDs to documents and verify handles both ways.
