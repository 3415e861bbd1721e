//! The repository Merkle Search Tree: key heights, the node format, lazy loading from a partial
//! block set, canonical insert/delete, root CIDs, and the sync 1.1 inversion proof.
//!
//! A node at layer `L` holds the keys of height `L` and `len + 1` subtree pointers at layer
//! `L - 1` (spec `repository`, fanout 4). Subtrees stay unloaded CIDs until an operation needs
//! them, so a proof fails exactly when a block it needs is missing.

use std::collections::HashMap;

use cid::Cid;
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::data_model::cid_for_cbor;
use crate::error::ErrorKind;

/// Why an MST operation or proof failed.
#[derive(Debug, thiserror::Error)]
pub enum MstError {
    /// A block the operation needs is not in the block set.
    #[error("missing mst block {cid}")]
    MissingBlock {
        /// The absent block.
        cid: Cid,
    },
    /// A node that breaks the MST's structural rules.
    #[error("malformed mst node {cid}: {reason}")]
    Malformed {
        /// The offending node.
        cid: Cid,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The tree disagrees with an operation (key absent, present, or holding another value).
    #[error("mst mismatch at {key}: {reason}")]
    Mismatch {
        /// The key (record path) concerned.
        key: String,
        /// What disagrees.
        reason: &'static str,
    },
}

impl MstError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MstError::MissingBlock { .. } => ErrorKind::MissingBlock,
            MstError::Malformed { .. } => ErrorKind::MalformedMst,
            MstError::Mismatch { .. } => ErrorKind::MstMismatch,
        }
    }
}

fn mismatch(key: &[u8], reason: &'static str) -> MstError {
    MstError::Mismatch {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

/// Where MST nodes are read from.
pub(crate) trait BlockSource {
    /// The block's bytes, already checked against its CID.
    fn block(&self, cid: &Cid) -> Option<&[u8]>;
}

impl BlockSource for HashMap<Cid, &[u8]> {
    fn block(&self, cid: &Cid) -> Option<&[u8]> {
        self.get(cid).copied()
    }
}

impl BlockSource for HashMap<Cid, Vec<u8>> {
    fn block(&self, cid: &Cid) -> Option<&[u8]> {
        self.get(cid).map(Vec::as_slice)
    }
}

/// No blocks: for trees built from scratch, which never load anything.
impl BlockSource for () {
    fn block(&self, _: &Cid) -> Option<&[u8]> {
        None
    }
}

/// The MST height of a key: leading zero bits of sha256(key), counted in 2-bit chunks.
pub(crate) fn key_height(key: &[u8]) -> u32 {
    let mut zeros = 0;
    for byte in Sha256::digest(key) {
        zeros += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    zeros / 2
}

/// Length of the shared byte prefix of two keys.
pub(crate) fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The wire form of a node: `{l, e: [{p, k, v, t}]}` with prefix-compressed keys.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct NodeData<'a> {
    l: Option<Cid>,
    #[serde(borrow)]
    e: Vec<EntryData<'a>>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct EntryData<'a> {
    p: usize,
    #[serde(borrow, with = "serde_bytes")]
    k: &'a [u8],
    v: Cid,
    t: Option<Cid>,
}

/// A subtree pointer: either a CID not loaded yet, or a loaded (possibly modified) node.
enum Link {
    Stub(Cid),
    Node(Box<Node>),
}

type Ptr = Option<Link>;

struct Leaf {
    key: Vec<u8>,
    value: Cid,
}

struct Node {
    layer: u32,
    leaves: Vec<Leaf>,
    /// `leaves.len() + 1` pointers: `ptrs[i]` holds the keys between `leaves[i - 1]` and
    /// `leaves[i]`.
    ptrs: Vec<Ptr>,
    /// The node's CID while its content matches it (loaded and untouched, or encoded).
    cid: Option<Cid>,
}

impl Node {
    fn empty() -> Node {
        Node {
            layer: 0,
            leaves: Vec::new(),
            ptrs: vec![None],
            cid: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.leaves.is_empty() && self.ptrs.iter().all(Option::is_none)
    }

    /// Wraps the node as a pointer, or `None` if it holds nothing.
    fn into_ptr(self) -> Ptr {
        if self.is_empty() {
            None
        } else {
            Some(Link::Node(Box::new(self)))
        }
    }

    fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.leaves
            .binary_search_by(|leaf| leaf.key.as_slice().cmp(key))
    }
}

/// Reads and validates nodes from a block source, recording which blocks it read.
struct Loader<'s, S: ?Sized> {
    source: &'s S,
    loaded: Vec<Cid>,
}

impl<S: BlockSource + ?Sized> Loader<'_, S> {
    fn resolve(&mut self, link: Link, layer: u32) -> Result<Box<Node>, MstError> {
        match link {
            Link::Node(node) => Ok(node),
            Link::Stub(cid) => self.load(cid, Some(layer)).map(Box::new),
        }
    }

    /// Decodes a node; `layer` is what its parent implies (`None` for the root).
    fn load(&mut self, cid: Cid, layer: Option<u32>) -> Result<Node, MstError> {
        let bytes = self
            .source
            .block(&cid)
            .ok_or(MstError::MissingBlock { cid })?;
        self.loaded.push(cid);
        let malformed = |reason| MstError::Malformed { cid, reason };
        let data = match decode_canonical(bytes) {
            Some(data) => data,
            // Anything but the canonical layout takes the general decoder.
            None => serde_ipld_dagcbor::from_slice::<NodeData<'_>>(bytes)
                .map_err(|_| malformed("not an mst node"))?,
        };
        let mut leaves: Vec<Leaf> = Vec::with_capacity(data.e.len());
        let mut ptrs = Vec::with_capacity(data.e.len() + 1);
        ptrs.push(data.l.map(Link::Stub));
        for entry in &data.e {
            let prev = leaves.last().map_or(&[][..], |leaf| leaf.key.as_slice());
            let shared = prev
                .get(..entry.p)
                .ok_or_else(|| malformed("prefix longer than the previous key"))?;
            let key = [shared, entry.k].concat();
            if !leaves.is_empty() && key.as_slice() <= prev {
                return Err(malformed("keys out of order"));
            }
            leaves.push(Leaf {
                key,
                value: entry.v,
            });
            ptrs.push(entry.t.map(Link::Stub));
        }
        let layer = match (leaves.first(), layer) {
            (Some(first), _) => {
                let height = key_height(&first.key);
                if layer.is_some_and(|expected| expected != height) {
                    return Err(malformed("keys at the wrong layer"));
                }
                height
            }
            // Only the root of an empty tree may hold nothing at all.
            (None, None) if ptrs[0].is_none() => 0,
            (None, None) => return Err(malformed("root without keys")),
            (None, Some(_)) if ptrs[0].is_none() => return Err(malformed("empty inner node")),
            (None, Some(expected)) => expected,
        };
        if leaves.iter().any(|leaf| key_height(&leaf.key) != layer) {
            return Err(malformed("keys of mixed heights"));
        }
        if layer == 0 && ptrs.iter().any(Option::is_some) {
            return Err(malformed("subtree below layer 0"));
        }
        Ok(Node {
            layer,
            leaves,
            ptrs,
            cid: Some(cid),
        })
    }
}

/// An MST over a (possibly partial) block set; nodes load on demand.
pub(crate) struct Mst<'s, S: ?Sized> {
    root: Node,
    loader: Loader<'s, S>,
}

impl<'s, S: BlockSource + ?Sized> Mst<'s, S> {
    /// An empty tree.
    #[cfg_attr(not(any(test, feature = "builder")), allow(dead_code))]
    pub(crate) fn empty(source: &'s S) -> Self {
        Mst {
            root: Node::empty(),
            loader: Loader {
                source,
                loaded: Vec::new(),
            },
        }
    }

    /// The tree rooted at `root`; only the root block is read now.
    pub(crate) fn load(source: &'s S, root: Cid) -> Result<Self, MstError> {
        let mut loader = Loader {
            source,
            loaded: Vec::new(),
        };
        let root = loader.load(root, None)?;
        Ok(Mst { root, loader })
    }

    /// The value stored under `key`, if any.
    pub(crate) fn get(&mut self, key: &[u8]) -> Result<Option<Cid>, MstError> {
        get(&mut self.loader, &mut self.root, key, key_height(key))
    }

    /// Adds a key that must not be present.
    pub(crate) fn insert(&mut self, key: &[u8], value: Cid) -> Result<(), MstError> {
        let height = key_height(key);
        if height <= self.root.layer {
            return insert(&mut self.loader, &mut self.root, key, height, value);
        }
        // The key outranks the root: split the old tree around it and raise the root.
        let old = std::mem::replace(&mut self.root, Node::empty());
        let old_layer = old.layer;
        let (left, right) = split(&mut self.loader, old.into_ptr(), old_layer, key)?;
        self.root = Node {
            layer: height,
            leaves: vec![Leaf {
                key: key.to_vec(),
                value,
            }],
            ptrs: vec![
                wrap(left, old_layer, height - 1),
                wrap(right, old_layer, height - 1),
            ],
            cid: None,
        };
        Ok(())
    }

    /// Replaces the value of a present key, returning the old value.
    pub(crate) fn update(&mut self, key: &[u8], value: Cid) -> Result<Cid, MstError> {
        update(
            &mut self.loader,
            &mut self.root,
            key,
            key_height(key),
            value,
        )
    }

    /// Removes a present key, returning its value.
    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<Cid, MstError> {
        let height = key_height(key);
        if height > self.root.layer {
            return Err(mismatch(key, "key not in tree"));
        }
        let value = delete(&mut self.loader, &mut self.root, key, height)?;
        // A root left without keys hands over to its only subtree, down to the first layer
        // that has keys.
        while self.root.leaves.is_empty() {
            let child_layer = self.root.layer.saturating_sub(1);
            match self.root.ptrs.first_mut().and_then(Option::take) {
                None => {
                    self.root = Node::empty();
                    break;
                }
                Some(link) => self.root = *self.loader.resolve(link, child_layer)?,
            }
        }
        Ok(value)
    }

    /// The root CID; `sink` receives every node encoded to compute it (the new blocks).
    pub(crate) fn root_cid(&mut self, sink: &mut dyn FnMut(Cid, Vec<u8>)) -> Cid {
        encode(&mut self.root, sink)
    }
}

fn get<S: BlockSource + ?Sized>(
    loader: &mut Loader<'_, S>,
    node: &mut Node,
    key: &[u8],
    height: u32,
) -> Result<Option<Cid>, MstError> {
    if height > node.layer {
        return Ok(None);
    }
    match node.search(key) {
        Ok(i) => Ok(Some(node.leaves[i].value)),
        Err(_) if height == node.layer => Ok(None),
        Err(i) => {
            let Some(link) = node.ptrs[i].take() else {
                return Ok(None);
            };
            let mut child = loader.resolve(link, node.layer - 1)?;
            let found = get(loader, &mut child, key, height);
            node.ptrs[i] = Some(Link::Node(child));
            found
        }
    }
}

fn insert<S: BlockSource + ?Sized>(
    loader: &mut Loader<'_, S>,
    node: &mut Node,
    key: &[u8],
    height: u32,
    value: Cid,
) -> Result<(), MstError> {
    node.cid = None;
    let i = match node.search(key) {
        Ok(_) => return Err(mismatch(key, "key already in tree")),
        Err(i) => i,
    };
    let child_layer = node.layer.saturating_sub(1);
    if height == node.layer {
        let (left, right) = split(loader, node.ptrs[i].take(), child_layer, key)?;
        node.ptrs[i] = left;
        node.ptrs.insert(i + 1, right);
        node.leaves.insert(
            i,
            Leaf {
                key: key.to_vec(),
                value,
            },
        );
        return Ok(());
    }
    let mut child = match node.ptrs[i].take() {
        Some(link) => loader.resolve(link, child_layer)?,
        None => Box::new(Node {
            layer: child_layer,
            ..Node::empty()
        }),
    };
    insert(loader, &mut child, key, height, value)?;
    node.ptrs[i] = Some(Link::Node(child));
    Ok(())
}

/// Splits a subtree at layer `layer` around `key` (which it must not hold) into the parts
/// below and above it.
fn split<S: BlockSource + ?Sized>(
    loader: &mut Loader<'_, S>,
    ptr: Ptr,
    layer: u32,
    key: &[u8],
) -> Result<(Ptr, Ptr), MstError> {
    let Some(link) = ptr else {
        return Ok((None, None));
    };
    let node = loader.resolve(link, layer)?;
    let i = match node.search(key) {
        Ok(_) => return Err(mismatch(key, "key already in tree")),
        Err(i) => i,
    };
    let Node {
        mut leaves,
        mut ptrs,
        ..
    } = *node;
    let (gap_left, gap_right) = split(loader, ptrs[i].take(), layer.saturating_sub(1), key)?;
    let right_leaves = leaves.split_off(i);
    let mut right_ptrs = Vec::with_capacity(ptrs.len() - i);
    right_ptrs.push(gap_right);
    right_ptrs.extend(ptrs.drain(i + 1..));
    ptrs[i] = gap_left;
    let left = Node {
        layer,
        leaves,
        ptrs,
        cid: None,
    };
    let right = Node {
        layer,
        leaves: right_leaves,
        ptrs: right_ptrs,
        cid: None,
    };
    Ok((left.into_ptr(), right.into_ptr()))
}

/// Adds keyless nodes above a subtree until it sits at layer `to`.
fn wrap(mut ptr: Ptr, from: u32, to: u32) -> Ptr {
    for layer in from + 1..=to {
        ptr = ptr.map(|link| {
            Link::Node(Box::new(Node {
                layer,
                leaves: Vec::new(),
                ptrs: vec![Some(link)],
                cid: None,
            }))
        });
    }
    ptr
}

fn update<S: BlockSource + ?Sized>(
    loader: &mut Loader<'_, S>,
    node: &mut Node,
    key: &[u8],
    height: u32,
    value: Cid,
) -> Result<Cid, MstError> {
    if height > node.layer {
        return Err(mismatch(key, "key not in tree"));
    }
    node.cid = None;
    match node.search(key) {
        Ok(i) => Ok(std::mem::replace(&mut node.leaves[i].value, value)),
        Err(_) if height == node.layer => Err(mismatch(key, "key not in tree")),
        Err(i) => {
            let link = node.ptrs[i]
                .take()
                .ok_or_else(|| mismatch(key, "key not in tree"))?;
            let mut child = loader.resolve(link, node.layer - 1)?;
            let old = update(loader, &mut child, key, height, value);
            node.ptrs[i] = Some(Link::Node(child));
            old
        }
    }
}

fn delete<S: BlockSource + ?Sized>(
    loader: &mut Loader<'_, S>,
    node: &mut Node,
    key: &[u8],
    height: u32,
) -> Result<Cid, MstError> {
    node.cid = None;
    let child_layer = node.layer.saturating_sub(1);
    match node.search(key) {
        Ok(i) => {
            let leaf = node.leaves.remove(i);
            let right = node.ptrs.remove(i + 1);
            let left = node.ptrs[i].take();
            node.ptrs[i] = merge(loader, left, right, child_layer)?;
            Ok(leaf.value)
        }
        Err(_) if height == node.layer => Err(mismatch(key, "key not in tree")),
        Err(i) => {
            let link = node.ptrs[i]
                .take()
                .ok_or_else(|| mismatch(key, "key not in tree"))?;
            let mut child = loader.resolve(link, child_layer)?;
            let value = delete(loader, &mut child, key, height)?;
            node.ptrs[i] = child.into_ptr();
            Ok(value)
        }
    }
}

/// Joins two adjacent subtrees at layer `layer` (every key of `left` below every key of
/// `right`), zipping their facing edges together.
fn merge<S: BlockSource + ?Sized>(
    loader: &mut Loader<'_, S>,
    left: Ptr,
    right: Ptr,
    layer: u32,
) -> Result<Ptr, MstError> {
    let (left, right) = match (left, right) {
        (None, other) | (other, None) => return Ok(other),
        (Some(left), Some(right)) => (left, right),
    };
    let left = loader.resolve(left, layer)?;
    let right = loader.resolve(right, layer)?;
    let Node {
        mut leaves,
        mut ptrs,
        ..
    } = *left;
    let Node {
        leaves: right_leaves,
        ptrs: right_ptrs,
        ..
    } = *right;
    let mut right_ptrs = right_ptrs.into_iter();
    let seam = merge(
        loader,
        ptrs.pop().flatten(),
        right_ptrs.next().flatten(),
        layer.saturating_sub(1),
    )?;
    ptrs.push(seam);
    ptrs.extend(right_ptrs);
    leaves.extend(right_leaves);
    Ok(Some(Link::Node(Box::new(Node {
        layer,
        leaves,
        ptrs,
        cid: None,
    }))))
}

/// Reads a node laid out exactly as [`encode_node`] writes it, without the generic decoder
/// (half the cost of loading a node); `None` means "not this layout", not "invalid".
fn decode_canonical(bytes: &[u8]) -> Option<NodeData<'_>> {
    let mut cbor = CborReader { bytes, pos: 0 };
    cbor.expect_head(5, 2)?;
    cbor.expect_key(b'e')?;
    let count = usize::try_from(cbor.head_of(4)?).ok()?;
    // Each entry takes well over 16 bytes: a cap that keeps a forged count from allocating.
    let mut e = Vec::with_capacity(count.min(bytes.len() / 16));
    for _ in 0..count {
        cbor.expect_head(5, 4)?;
        cbor.expect_key(b'k')?;
        let k = cbor.byte_string()?;
        cbor.expect_key(b'p')?;
        let p = usize::try_from(cbor.head_of(0)?).ok()?;
        cbor.expect_key(b't')?;
        let t = cbor.link_or_null()?;
        cbor.expect_key(b'v')?;
        let v = cbor.link_or_null()??;
        e.push(EntryData { p, k, v, t });
    }
    cbor.expect_key(b'l')?;
    let l = cbor.link_or_null()?;
    (cbor.pos == bytes.len()).then_some(NodeData { l, e })
}

/// Whether the fast decoder takes this block, for tests over real nodes.
#[cfg(test)]
pub(crate) fn decodes_canonically(bytes: &[u8]) -> bool {
    decode_canonical(bytes).is_some()
}

/// A cursor for [`decode_canonical`]: definite lengths only, as DAG-CBOR requires.
struct CborReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> CborReader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    /// Reads a head, returning its major type and argument.
    fn head(&mut self) -> Option<(u8, u64)> {
        let first = *self.take(1)?.first()?;
        let value = match first & 0x1f {
            small @ 0..=23 => u64::from(small),
            24 => u64::from(*self.take(1)?.first()?),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?)),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().ok()?)),
            27 => u64::from_be_bytes(self.take(8)?.try_into().ok()?),
            _ => return None,
        };
        Some((first >> 5, value))
    }

    fn head_of(&mut self, major: u8) -> Option<u64> {
        let (got, value) = self.head()?;
        (got == major).then_some(value)
    }

    fn expect_head(&mut self, major: u8, value: u64) -> Option<()> {
        (self.head_of(major)? == value).then_some(())
    }

    fn expect_key(&mut self, key: u8) -> Option<()> {
        self.expect_head(3, 1)?;
        (*self.take(1)?.first()? == key).then_some(())
    }

    fn byte_string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.head_of(2)?).ok()?;
        self.take(len)
    }

    /// `Some(None)` for null, `Some(Some(cid))` for a tag-42 link, `None` for anything else.
    fn link_or_null(&mut self) -> Option<Option<Cid>> {
        if self.bytes.get(self.pos) == Some(&0xf6) {
            self.pos += 1;
            return Some(None);
        }
        self.expect_head(6, 42)?;
        let (prefix, mut cid_bytes) = self.byte_string()?.split_first()?;
        if *prefix != 0 {
            return None;
        }
        let cid = Cid::read_bytes(&mut cid_bytes).ok()?;
        cid_bytes.is_empty().then_some(Some(cid))
    }
}

/// Writes a node's canonical DAG-CBOR directly: MST nodes are re-encoded on every proof, and
/// the generic serializer (a buffer and a sort per map) cost ~40% of a signature check.
/// The shape is fixed: `{"e": [{"k", "p", "t", "v"}], "l"}`, keys already in canonical order.
fn encode_node(leaves: &[Leaf], links: &[Option<Cid>]) -> Vec<u8> {
    const MAP: u8 = 5 << 5;
    const ARRAY: u8 = 4 << 5;
    const BYTES: u8 = 2 << 5;
    const NULL: u8 = 0xf6;
    let mut out = Vec::with_capacity(16 + leaves.len() * 96);
    let text = |out: &mut Vec<u8>, key: u8| out.extend_from_slice(&[0x61, key]);
    let link = |out: &mut Vec<u8>, cid: Option<&Cid>| match cid {
        None => out.push(NULL),
        Some(cid) => {
            // Tag 42, then the binary CID behind a 0x00 multibase prefix.
            out.extend_from_slice(&[0xd8, 0x2a]);
            head(out, BYTES, cid.encoded_len() + 1);
            out.push(0);
            // Writing into a Vec cannot fail.
            let _ = cid.write_bytes(&mut *out);
        }
    };
    head(&mut out, MAP, 2);
    text(&mut out, b'e');
    head(&mut out, ARRAY, leaves.len());
    let mut prev: &[u8] = &[];
    for (leaf, right) in leaves.iter().zip(links.iter().skip(1)) {
        let p = common_prefix_len(prev, &leaf.key);
        head(&mut out, MAP, 4);
        text(&mut out, b'k');
        head(&mut out, BYTES, leaf.key.len() - p);
        out.extend_from_slice(&leaf.key[p..]);
        text(&mut out, b'p');
        head(&mut out, 0, p);
        text(&mut out, b't');
        link(&mut out, right.as_ref());
        text(&mut out, b'v');
        link(&mut out, Some(&leaf.value));
        prev = &leaf.key;
    }
    text(&mut out, b'l');
    link(&mut out, links.first().and_then(Option::as_ref));
    out
}

/// A CBOR head: major type (already shifted) and a minimally encoded length or value.
fn head(out: &mut Vec<u8>, major: u8, value: usize) {
    match (
        u8::try_from(value),
        u16::try_from(value),
        u32::try_from(value),
    ) {
        (Ok(v), _, _) if v < 24 => out.push(major | v),
        (Ok(v), _, _) => out.extend_from_slice(&[major | 24, v]),
        (_, Ok(v), _) => {
            out.push(major | 25);
            out.extend_from_slice(&v.to_be_bytes());
        }
        (_, _, Ok(v)) => {
            out.push(major | 26);
            out.extend_from_slice(&v.to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&u64::try_from(value).unwrap_or(u64::MAX).to_be_bytes());
        }
    }
}

fn encode(node: &mut Node, sink: &mut dyn FnMut(Cid, Vec<u8>)) -> Cid {
    if let Some(cid) = node.cid {
        return cid;
    }
    let mut links = Vec::with_capacity(node.ptrs.len());
    for ptr in &mut node.ptrs {
        links.push(match ptr {
            None => None,
            Some(Link::Stub(cid)) => Some(*cid),
            Some(Link::Node(child)) => Some(encode(child, sink)),
        });
    }
    let bytes = encode_node(&node.leaves, &links);
    let cid = cid_for_cbor(&bytes);
    sink(cid, bytes);
    node.cid = Some(cid);
    cid
}

/// A complete tree's content.
pub(crate) struct Walk {
    /// Every `(key, value)`, in key order.
    pub(crate) records: Vec<(String, Cid)>,
    /// Every node's CID.
    #[cfg_attr(not(any(test, feature = "builder")), allow(dead_code))]
    pub(crate) nodes: Vec<Cid>,
}

/// Reads a complete tree; keys must be UTF-8 record paths.
pub(crate) fn walk<S: BlockSource + ?Sized>(source: &S, root: Cid) -> Result<Walk, MstError> {
    let mut loader = Loader {
        source,
        loaded: Vec::new(),
    };
    let root = loader.load(root, None)?;
    let mut records = Vec::new();
    walk_node(&mut loader, root, &mut records)?;
    Ok(Walk {
        records,
        nodes: loader.loaded,
    })
}

fn walk_node<S: BlockSource + ?Sized>(
    loader: &mut Loader<'_, S>,
    node: Node,
    out: &mut Vec<(String, Cid)>,
) -> Result<(), MstError> {
    let Node {
        layer,
        leaves,
        ptrs,
        cid,
    } = node;
    let cid = cid.unwrap_or_default();
    let mut leaves = leaves.into_iter();
    // Leaves interleave with pointers: ptr0, leaf0, ptr1, leaf1, ..., ptrN.
    for ptr in ptrs {
        if let Some(link) = ptr {
            let child = loader.resolve(link, layer.saturating_sub(1))?;
            walk_node(loader, *child, out)?;
        }
        if let Some(leaf) = leaves.next() {
            let key = String::from_utf8(leaf.key).map_err(|_| MstError::Malformed {
                cid,
                reason: "key is not utf-8",
            })?;
            // Global order also proves each subtree sits in its parent's key range.
            if out.last().is_some_and(|(last, _)| *last >= key) {
                return Err(MstError::Malformed {
                    cid,
                    reason: "keys out of order across nodes",
                });
            }
            out.push((key, leaf.value));
        }
    }
    Ok(())
}

/// One operation of a commit, as the inversion proof sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    Create { cid: Cid },
    Update { cid: Cid, prev: Cid },
    Delete { prev: Cid },
}

/// The result of an inversion proof.
pub(crate) struct Inversion {
    /// The root of the tree before the commit, as reconstructed.
    pub(crate) root: Cid,
    /// The blocks the proof read.
    #[cfg_attr(not(any(test, feature = "builder")), allow(dead_code))]
    pub(crate) loaded: Vec<Cid>,
}

/// Checks every change's result is in the post-commit tree at `after`, then undoes the changes
/// and returns the reconstructed pre-commit root.
pub(crate) fn invert<S: BlockSource + ?Sized>(
    source: &S,
    after: Cid,
    changes: &[(&str, Change)],
) -> Result<Inversion, MstError> {
    let mut tree = Mst::load(source, after)?;
    for (key, change) in changes {
        let expected = match change {
            Change::Create { cid } | Change::Update { cid, .. } => Some(*cid),
            Change::Delete { .. } => None,
        };
        if tree.get(key.as_bytes())? != expected {
            return Err(mismatch(key.as_bytes(), "operation result not in tree"));
        }
    }
    for (key, change) in changes {
        let key = key.as_bytes();
        match change {
            Change::Create { .. } => {
                tree.delete(key)?;
            }
            Change::Update { prev, .. } => {
                tree.update(key, *prev)?;
            }
            Change::Delete { prev } => tree.insert(key, *prev)?,
        }
    }
    let root = tree.root_cid(&mut |_, _| {});
    Ok(Inversion {
        root,
        loaded: tree.loader.loaded,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;

    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/atproto-interop-tests"
    );

    fn cases(name: &str) -> Vec<Value> {
        let path = format!("{FIXTURES}/{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        match serde_json::from_str(&text) {
            Ok(Value::Array(cases)) => cases,
            other => panic!("{path} is not an array: {other:?}"),
        }
    }

    fn text(value: &Value) -> &str {
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a string: {value}"))
    }

    fn cid(value: &Value) -> Cid {
        Cid::try_from(text(value)).unwrap_or_else(|e| panic!("bad cid {value}: {e}"))
    }

    fn strings(value: &Value) -> Vec<&str> {
        value
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {value}"))
            .iter()
            .map(text)
            .collect()
    }

    #[test]
    fn direct_encoding_matches_serde() {
        let value = cid_for_cbor(b"\xa0");
        let long_key = "k".repeat(300);
        let leaves: Vec<Leaf> = [
            "app.bsky.feed.post/3k2a",
            "app.bsky.feed.post/3k2b",
            &long_key,
        ]
        .iter()
        .map(|key| Leaf {
            key: key.as_bytes().to_vec(),
            value,
        })
        .collect();
        for links in [
            vec![None, None, None, None],
            vec![Some(value), None, Some(value), Some(value)],
        ] {
            let mut entries = Vec::new();
            let mut prev: &[u8] = &[];
            for (leaf, t) in leaves.iter().zip(links.iter().skip(1)) {
                let p = common_prefix_len(prev, &leaf.key);
                entries.push(EntryData {
                    p,
                    k: &leaf.key[p..],
                    v: leaf.value,
                    t: *t,
                });
                prev = &leaf.key;
            }
            let data = NodeData {
                l: links[0],
                e: entries,
            };
            let expected = serde_ipld_dagcbor::to_vec(&data).expect("encodes");
            assert_eq!(encode_node(&leaves, &links), expected);
            let fast = decode_canonical(&expected).expect("canonical layout");
            assert_eq!(
                serde_ipld_dagcbor::to_vec(&fast).expect("encodes"),
                expected
            );
            // Every truncation is refused by the fast path (and left to the general decoder).
            for cut in 0..expected.len() {
                assert!(decode_canonical(&expected[..cut]).is_none(), "cut at {cut}");
            }
        }
        assert_eq!(
            encode_node(&[], &[None]),
            serde_ipld_dagcbor::to_vec(&NodeData { l: None, e: vec![] }).expect("encodes")
        );
    }

    #[test]
    fn key_heights_fixture() {
        for case in cases("mst/key_heights.json") {
            let key = text(&case["key"]);
            assert_eq!(
                Some(u64::from(key_height(key.as_bytes()))),
                case["height"].as_u64(),
                "{key}"
            );
        }
    }

    #[test]
    fn example_keys_encode_their_height() {
        let path = format!("{FIXTURES}/mst/example_keys.txt");
        let keys = std::fs::read_to_string(&path).expect("example keys");
        let mut count = 0;
        for key in keys.lines().filter(|line| !line.is_empty()) {
            // Keys are generated as `<letter><height>/<digits>`.
            let height = key[1..2].parse::<u32>().expect("height digit");
            assert_eq!(key_height(key.as_bytes()), height, "{key}");
            count += 1;
        }
        assert_eq!(count, 156);
    }

    #[test]
    fn common_prefix_fixture() {
        for case in cases("mst/common_prefix.json") {
            let (left, right) = (text(&case["left"]), text(&case["right"]));
            assert_eq!(
                Some(common_prefix_len(left.as_bytes(), right.as_bytes()) as u64),
                case["len"].as_u64(),
                "{left:?} {right:?}"
            );
        }
    }

    fn build(keys: &[&str], value: Cid) -> (Mst<'static, ()>, Cid, HashMap<Cid, Vec<u8>>) {
        let mut tree = Mst::empty(&());
        for key in keys {
            tree.insert(key.as_bytes(), value).expect("insert");
        }
        let mut blocks = HashMap::new();
        let root = tree.root_cid(&mut |cid, bytes| {
            blocks.insert(cid, bytes);
        });
        (tree, root, blocks)
    }

    #[test]
    fn empty_tree_root() {
        // The empty tree's root (`{l: null, e: []}`) from the reference implementation.
        let (_, root, _) = build(&[], cid_for_cbor(b"\xa0"));
        assert_eq!(
            root.to_string(),
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
        );
    }

    #[test]
    fn commit_proof_fixtures() {
        let cases = cases("firehose/commit-proof-fixtures.json");
        assert_eq!(cases.len(), 6);
        for case in cases {
            let name = text(&case["comment"]);
            let leaf = cid(&case["leafValue"]);
            let keys = strings(&case["keys"]);
            let adds = strings(&case["adds"]);
            let dels = strings(&case["dels"]);
            let before = cid(&case["rootBeforeCommit"]);
            let after = cid(&case["rootAfterCommit"]);

            let (mut tree, root, mut blocks) = build(&keys, leaf);
            assert_eq!(root, before, "{name}: root before");
            for key in &adds {
                tree.insert(key.as_bytes(), leaf).expect("add");
            }
            for key in &dels {
                assert_eq!(tree.delete(key.as_bytes()).expect("del"), leaf, "{name}");
            }
            let root = tree.root_cid(&mut |cid, bytes| {
                blocks.insert(cid, bytes);
            });
            assert_eq!(root, after, "{name}: root after");

            let changes: Vec<(&str, Change)> = adds
                .iter()
                .map(|key| (*key, Change::Create { cid: leaf }))
                .chain(dels.iter().map(|key| (*key, Change::Delete { prev: leaf })))
                .collect();
            let proof: HashSet<Cid> = case["blocksInProof"]
                .as_array()
                .expect("blocksInProof")
                .iter()
                .map(cid)
                .collect();
            let partial: HashMap<Cid, Vec<u8>> = blocks
                .iter()
                .filter(|(cid, _)| proof.contains(cid))
                .map(|(cid, bytes)| (*cid, bytes.clone()))
                .collect();
            assert_eq!(partial.len(), proof.len(), "{name}: proof blocks exist");

            for (label, source) in [("all blocks", &blocks), ("proof blocks", &partial)] {
                let inversion = invert(source, after, &changes)
                    .unwrap_or_else(|e| panic!("{name} ({label}): {e}"));
                assert_eq!(inversion.root, before, "{name} ({label})");
                let used: HashSet<Cid> = inversion.loaded.iter().copied().collect();
                assert!(
                    used.is_subset(&proof),
                    "{name} ({label}): read blocks outside the proof: {:?}",
                    used.difference(&proof).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn missing_needed_block_is_an_error() {
        let leaf = cid_for_cbor(b"\xa0");
        let keys = ["A0/374913", "B1/986427", "C0/451630", "E0/670489"];
        let (_, _, before_blocks) = build(&keys, leaf);
        let (mut tree, _, _) = build(&keys, leaf);
        tree.insert(b"D2/269196", leaf).expect("insert");
        let mut blocks = before_blocks;
        let after = tree.root_cid(&mut |cid, bytes| {
            blocks.insert(cid, bytes);
        });
        let changes = [("D2/269196", Change::Create { cid: leaf })];
        let full = invert(&blocks, after, &changes).expect("full proof");
        // Drop each block the proof read, one at a time: each must be reported missing.
        for needed in &full.loaded {
            let mut partial = blocks.clone();
            partial.remove(needed);
            match invert(&partial, after, &changes) {
                Err(MstError::MissingBlock { cid }) => assert_eq!(cid, *needed),
                other => panic!("expected missing {needed}, got {:?}", other.map(|i| i.root)),
            }
        }
    }

    #[test]
    fn wrong_claims_are_mismatches() {
        let leaf = cid_for_cbor(b"\xa0");
        let other = cid_for_cbor(b"\xa1\x61\x61\x01");
        let keys = ["A0/374913", "B1/986427", "C0/451630"];
        let (_, root, blocks) = build(&keys, leaf);
        let table: [(&str, Change); 4] = [
            (
                "claims a create that is absent",
                Change::Create { cid: leaf },
            ),
            (
                "claims a delete of a present key",
                Change::Delete { prev: leaf },
            ),
            ("claims the wrong value", Change::Create { cid: other }),
            (
                "claims an update to the wrong value",
                Change::Update {
                    cid: other,
                    prev: leaf,
                },
            ),
        ];
        let keys_for = ["Z0/000000", "A0/374913", "B1/986427", "C0/451630"];
        for ((name, change), key) in table.into_iter().zip(keys_for) {
            let err = invert(&blocks, root, &[(key, change)])
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted"));
            assert_eq!(err.kind(), ErrorKind::MstMismatch, "{name}: {err}");
        }
    }

    /// A small deterministic generator, so the randomized checks need no extra crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn tree_shape_is_independent_of_history() {
        let leaf = cid_for_cbor(b"\xa0");
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..20 {
            let count = 1 + rng.next() % 200;
            let keys: Vec<String> = (0..count)
                .map(|_| format!("app.bsky.feed.post/{:013x}", rng.next() >> 12))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let keep: Vec<&str> = keys
                .iter()
                .filter(|_| !rng.next().is_multiple_of(3))
                .map(String::as_str)
                .collect();
            // Insert everything in a shuffled order, delete the rest, compare with a tree
            // built from the kept keys alone.
            let mut order: Vec<&str> = keys.iter().map(String::as_str).collect();
            for i in (1..order.len()).rev() {
                let j = usize::try_from(rng.next() % (i as u64 + 1)).expect("index");
                order.swap(i, j);
            }
            let (mut tree, _, blocks) = build(&order, leaf);
            let full_root = tree.root_cid(&mut |_, _| {});
            for key in keys.iter().filter(|key| !keep.contains(&key.as_str())) {
                tree.delete(key.as_bytes()).expect("delete");
            }
            let (_, expected, _) = build(&keep, leaf);
            assert_eq!(tree.root_cid(&mut |_, _| {}), expected, "round {round}");
            // The stored tree walks back to exactly its keys, in order.
            let walked = walk(&blocks, full_root).expect("walk");
            assert_eq!(
                walked.nodes.len(),
                blocks.len(),
                "round {round}: every node read"
            );
            let walked_keys: Vec<&str> =
                walked.records.iter().map(|(key, _)| key.as_str()).collect();
            let sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
            assert_eq!(walked_keys, sorted, "round {round}");
        }
    }
}
