#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/test_browser.py): Debian's `chromium` package, installed
# only if missing. Needs root (or passwordless sudo) and apt; prints the browser's path on success.
#   tools/install-chromium.sh
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
packages=(chromium fonts-liberation)  # fonts: pages render text as users see it, not as boxes
# apt's output goes to stderr: stdout is only the browser's path. The package lists are refreshed only
# where the install fails without (an image with no lists, or stale ones).
if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}" >&2; then
    "${sudo[@]}" apt-get update -q >&2
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}" >&2
fi

browser="$(find_browser)"
if [[ -z "$browser" ]]; then
    echo "install-chromium: apt-get installed chromium but no chromium binary is on PATH" >&2
    exit 1
fi
echo "$browser"
