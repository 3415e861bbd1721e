// Starts a PLC directory (in-memory) and the reference PDS on loopback for the end-to-end tests,
// prints one JSON line {"pds": url, "plc": url} once both answer, and shuts both down when
// stdin closes (the test harness dropped us) or on SIGTERM/SIGINT.
//
// Usage: node start.mjs <data directory>   (the caller owns and removes the directory)

import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import * as crypto from '@atproto/crypto'
import { PDS } from '@atproto/pds'
import plc from '@did-plc/server'

const { PlcServer, Database: PlcDatabase } = plc

const dataDir = process.argv[2]
if (!dataDir) {
  console.error('usage: node start.mjs <data directory>')
  process.exit(2)
}

// The PDS writes its own URL (http://localhost:<port>) into every DID document, so it needs a
// real port before it starts: ask the kernel for a free one.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function main() {
  const plcServer = PlcServer.create({ db: PlcDatabase.mock(), port: 0 })
  const plcHttp = await plcServer.start()
  const plcUrl = `http://localhost:${plcHttp.address().port}`

  const port = await freePort()
  const blobs = path.join(dataDir, 'blobs')
  fs.mkdirSync(blobs, { recursive: true })
  const rotationKey = await crypto.Secp256k1Keypair.create({ exportable: true })
  const recoveryKey = await crypto.Secp256k1Keypair.create()
  const pds = await PDS.fromEnv({
    devMode: true,
    port,
    hostname: 'localhost',
    dataDirectory: dataDir,
    blobstoreDiskLocation: blobs,
    didPlcUrl: plcUrl,
    recoveryDidKey: recoveryKey.did(),
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotationKey.export()).toString('hex'),
    jwtSecret: 'plyr-e2e-jwt-secret',
    adminPassword: 'plyr-e2e-admin',
    serviceHandleDomains: ['.test'],
    inviteRequired: false,
    disableSsrfProtection: true,
    rateLimitsEnabled: false,
    // Audio files are far over the default 5 MB.
    blobUploadLimit: 100 * 1024 * 1024,
    // Never used: no app.bsky calls are made, but the PDS insists on a configured AppView.
    bskyAppViewUrl: 'http://localhost:1',
    bskyAppViewDid: 'did:example:appview',
    modServiceUrl: 'http://localhost:1',
    modServiceDid: 'did:example:mod',
    crawlers: [],
  })
  await pds.start()

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    // A hung shutdown must not outlive the test run.
    setTimeout(() => process.exit(1), 10_000).unref()
    try {
      await pds.destroy()
      await plcServer.destroy()
    } finally {
      process.exit(0)
    }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()

  process.stdout.write(
    JSON.stringify({ pds: `http://localhost:${port}`, plc: plcUrl }) + '\n',
  )
}

main().catch((err) => {
  console.error('start.mjs failed:', err)
  process.exit(1)
})
