#!/usr/bin/env bash
# Web client (chatserver/web): build, test, screenshots.
#   hack/web.sh build        npm ci when needed, then vite build (skipped when dist is up to date)
#   hack/web.sh test         Vitest unit tests, then the browser tests (Chromium + a real chat server)
#   hack/web.sh screenshots  regenerate docs/images/*.png
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/chatserver/web"
cd "$WEB"
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

ensure_node() {
  command -v node >/dev/null || { echo "web.sh: node is not installed (Node.js 20+ and npm 11 are needed)" >&2; exit 1; }
}

# npm ci when node_modules is missing or older than package-lock.json.
ensure_modules() {
  ensure_node
  local stamp=node_modules/.package-lock.json
  if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    echo "web.sh: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$stamp"
  fi
}

# True when dist/index.html is newer than every source file of the client.
up_to_date() {
  [ -f dist/index.html ] || return 1
  local newer
  newer="$(find src index.html public vite.config.ts tsconfig.json package.json package-lock.json -newer dist/index.html -print -quit 2>/dev/null)"
  [ -z "$newer" ]
}

build() {
  if up_to_date && [ "${1:-}" != "--force" ]; then
    return 0
  fi
  ensure_modules
  echo "web.sh: building the web client"
  npx --no-install tsc --noEmit -p .
  npx --no-install vite build --logLevel warn
  touch dist/.keep
  # The server's CSP allows no inline script or style: refuse a build that has any.
  if grep -Eq '<script>|<script [^>]*>[^<]|<style|style=' dist/index.html; then
    echo "web.sh: dist/index.html has inline script or style (forbidden by the CSP)" >&2
    exit 1
  fi
}

case "${1:-}" in
  build)
    build "${2:-}"
    ;;
  test)
    ensure_modules
    build
    echo "web.sh: unit tests (Vitest)"
    npx --no-install vitest run
    echo "web.sh: browser tests (Chromium)"
    # Build (or reuse) bin/chatserver first, outside the per-test time limits.
    node -e "import('./e2e/harness.mjs').then((m) => m.ensureServerBinary())"
    node --test --test-concurrency=1 --test-timeout=240000 e2e/*.test.mjs
    ;;
  screenshots)
    ensure_modules
    # Emoji in the pictures (reactions, the picker): without a colour emoji
    # font headless Chromium draws empty boxes. Only the screenshots need it.
    if [ ! -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
      if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-color-emoji
      else
        echo "web.sh: install fonts-noto-color-emoji for emoji in the screenshots" >&2
      fi
    fi
    build
    node e2e/screenshots.mjs "$ROOT/docs/images"
    ;;
  *)
    echo "usage: hack/web.sh build|test|screenshots" >&2
    exit 2
    ;;
esac
