#!/usr/bin/env bash
# Install a pinned anvil (Foundry's local Ethereum node) from the npm registry, for the tests
# that need a real JSON-RPC node (tests/anvil_fixture.py). Idempotent: does nothing when the
# pinned version is already installed. Prints the binary's path on stdout.
#
#   scripts/install-anvil.sh            # installs into <repo>/.tools/anvil
#   ANVIL_DIR=/opt/anvil scripts/install-anvil.sh
#
# Only linux-amd64 is packaged here (the platform of every machine this project runs on);
# the npm package ships the prebuilt binary, so no other download happens.
set -euo pipefail

ANVIL_VERSION="1.7.1"
PACKAGE="@foundry-rs/anvil-linux-amd64"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${ANVIL_DIR:-$REPO_ROOT/.tools/anvil}"
BIN="$DIR/node_modules/$PACKAGE/bin/anvil"

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    echo "install-anvil.sh: only linux-amd64 is supported (this is $(uname -s)-$(uname -m))" >&2
    exit 1
fi

installed_version() {
    "$BIN" --version 2>/dev/null | sed -n 's/^anvil Version: \([0-9][0-9.]*\).*/\1/p' | head -n1
}

if [[ ! -x "$BIN" || "$(installed_version)" != "$ANVIL_VERSION" ]]; then
    command -v npm >/dev/null || { echo "install-anvil.sh: npm is required" >&2; exit 1; }
    mkdir -p "$DIR"
    # --no-save/--no-package-lock: keep $DIR free of a package.json that would drift.
    npm install --prefix "$DIR" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error "$PACKAGE@$ANVIL_VERSION" >&2
    chmod +x "$BIN"
fi

echo "$BIN"
