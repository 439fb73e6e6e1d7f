#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/test_browser.py): Debian's `chromium` package, installed
# only if missing. Needs root (or passwordless sudo) and apt; prints the browser's path on success.
#   workflow/scripts/install-chromium.sh
set -euo pipefail

find_browser() {
    command -v chromium || command -v chromium-browser || command -v google-chrome || true
}

browser="$(find_browser)"
if [[ -n "$browser" ]]; then
    echo "$browser"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "install-chromium: apt-get not found; install Chromium with your system's package manager" >&2
    exit 2
fi
if [[ "$(id -u)" -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "install-chromium: needs root (or passwordless sudo) to apt-get install chromium" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2

browser="$(find_browser)"
if [[ -z "$browser" ]]; then
    echo "install-chromium: apt-get installed chromium but no chromium binary is on PATH" >&2
    exit 1
fi
echo "$browser"
