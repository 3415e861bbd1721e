// Writes the label signature vectors the indexer's label tests check against
// (indexer/src/labels/atproto-vectors.json): `#labels` frames encoded and signed by the reference
// implementation's own code (@atproto/common's DAG-CBOR encoder, the one the reference labeler
// signs with, and @atproto/crypto's keys), so the Rust side is tested against bytes it did not
// make itself. Signing is deterministic (RFC 6979): a rerun writes the same file.
//
//   bash tests/pds/install.sh
//   tests/pds/.node/bin/node tests/pds/label-vectors.mjs > indexer/src/labels/atproto-vectors.json
//
// @atproto/common comes with the PDS (a dependency of @atproto/pds).
import { cborEncode } from '@atproto/common'
import { P256Keypair, Secp256k1Keypair } from '@atproto/crypto'

const K256_SECRET = '9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c'
const P256_SECRET = '9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0d'
const OTHER_SECRET = '1111111111111111111111111111111111111111111111111111111111111111'
const K256_LABELER = 'did:plc:k256labelerxxxxxxxxxxxxx'
const P256_LABELER = 'did:web:labeler.example.com'
const TRACK = 'at://did:plc:alice2ggjmksahdcvelwfyzu/fm.plyr.track/3kabc'
const TRACK_CID = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm'
const ARTIST = 'did:plc:bob2ggjmksahdcvelwfyzuaa'
// secp256k1's group order, to turn a low-S signature into its high-S twin.
const K256_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

const k256 = await Secp256k1Keypair.import(K256_SECRET)
const p256 = await P256Keypair.import(P256_SECRET)
const other = await Secp256k1Keypair.import(OTHER_SECRET)

const hex = (bytes) => Buffer.from(bytes).toString('hex')

// As the reference labeler does: sign the DAG-CBOR of the label without `sig`.
const sign = async (label, key) => ({ ...label, sig: await key.sign(cborEncode(label)) })

const highS = (sig) => {
  const r = sig.slice(0, 32)
  const s = BigInt('0x' + hex(sig.slice(32)))
  const flipped = Buffer.from((K256_N - s).toString(16).padStart(64, '0'), 'hex')
  return new Uint8Array([...r, ...flipped])
}

const frame = (seq, labels) =>
  hex(Buffer.concat([cborEncode({ op: 1, t: '#labels' }), cborEncode({ seq, labels })]))

const base = { ver: 1, src: K256_LABELER, uri: TRACK, val: '!takedown', cts: '2026-01-01T00:00:00.000Z' }
const tampered = await sign(base, k256)
tampered.val = '!hide'
const flipped = await sign(base, k256)
flipped.sig = highS(flipped.sig)

const cases = [
  ['k256, record subject with cid', 'ok', K256_LABELER, await sign({ ...base, cid: TRACK_CID }, k256)],
  [
    'k256, negation of an account label with expiry',
    'ok',
    K256_LABELER,
    await sign({ ...base, uri: ARTIST, val: '!suspend', neg: true, exp: '2027-01-01T00:00:00.000Z' }, k256),
  ],
  ['k256, no ver (early labelers)', 'ok', K256_LABELER, await sign({ src: K256_LABELER, uri: TRACK, val: 'porn', cts: base.cts }, k256)],
  ['k256, a field this client does not know', 'ok', K256_LABELER, await sign({ ...base, note: 'kept in the signed bytes' }, k256)],
  ['p256 labeler', 'ok', P256_LABELER, await sign({ ...base, src: P256_LABELER }, p256)],
  ['value changed after signing', 'bad_label_signature', K256_LABELER, tampered],
  ['high-S twin of a good signature', 'bad_label_signature', K256_LABELER, flipped],
  ['signed by another key', 'bad_label_signature', K256_LABELER, await sign(base, other)],
  ['p256 label checked with nothing but its own key', 'bad_label_signature', P256_LABELER, await sign({ ...base, src: P256_LABELER }, k256)],
  ['no sig', 'unsigned_label', K256_LABELER, base],
]

const out = {
  generator: 'tests/pds/label-vectors.mjs (@atproto/common cborEncode, @atproto/crypto 0.5.5)',
  keys: { [K256_LABELER]: k256.did(), [P256_LABELER]: p256.did() },
  cases: cases.map(([name, expect, labeler, label], i) => ({ name, expect, labeler, frame: frame(i + 1, [label]) })),
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n')
