#!/usr/bin/env bash
# `make demo`: start the daemon on the example secrets, mount the example SPC the way
# the driver would, show the volume, then keep re-mounting so edits show up.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CSIPROVIDER_BIN:-.venv/bin/csiprovider}
DEMO=${DEMO_DIR:-.demo}
WATCH=${DEMO_WATCH_SECONDS:-2}
rm -rf "$DEMO"
mkdir -p "$DEMO/providers" "$DEMO/mnt"
head -c 32 /dev/urandom | base64 > "$DEMO/hmac.key"

"$BIN" serve --providers-dir "$DEMO/providers" --file-root examples/secrets \
  --hmac-key-file "$DEMO/hmac.key" --log-format text --log-level warning --health-addr "" &
daemon=$!
stop() { trap - EXIT INT TERM; kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; echo "demo stopped"; }
trap stop EXIT INT TERM

for _ in $(seq 100); do [ -S "$DEMO/providers/csiprovider.sock" ] && break; sleep 0.1; done

"$BIN" mount --spc examples/spc-file.yaml --target "$DEMO/mnt" --providers-dir "$DEMO/providers" \
  --sync-secret-out "$DEMO/synced-secrets.yaml"
echo
echo "== the pod's volume ($DEMO/mnt): top-level names are symlinks through ..data"
ls -la "$DEMO/mnt"
echo
echo "== config.yaml (an example file, so showing it is fine)"
cat "$DEMO/mnt/config.yaml"
echo
echo "== Secret the driver's sync would create ($DEMO/synced-secrets.yaml)"
cat "$DEMO/synced-secrets.yaml"
echo
echo "== re-mounting every ${WATCH}s; edit examples/secrets/default/... to see a rotation; Ctrl-C stops"
"$BIN" mount --spc examples/spc-file.yaml --target "$DEMO/mnt" --providers-dir "$DEMO/providers" \
  --sync-secret-out "$DEMO/synced-secrets.yaml" --watch "$WATCH" &
watcher=$!
trap 'kill -INT $watcher 2>/dev/null || true; wait $watcher 2>/dev/null || true; stop' EXIT INT TERM
wait "$watcher"
