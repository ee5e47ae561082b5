#!/usr/bin/env bash
# Makes sure the system's Chromium is installed for the dashboard's browser tests (tests/dashboard
# drive it through Playwright, which never downloads a browser of its own). scripts/check.sh runs
# this before the tests; on its own:
#
#   bash scripts/system_chromium.sh
#
# Found on PATH (chromium, chromium-browser or google-chrome): nothing to do. Missing, as root with
# apt-get: `apt-get install -y chromium` (Debian; Ubuntu's package is chromium-browser). Missing
# otherwise: a warning, and the browser tests skip; TUNIX_RT_REQUIRE_BROWSER=1 makes it an error.
set -euo pipefail

found() {
    command -v chromium || command -v chromium-browser || command -v google-chrome
}

if browser="$(found)"; then
    echo "system_chromium: $browser"
    exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "system_chromium: installing chromium with apt-get"
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -q chromium >"$log" 2>&1 ||
        { apt-get update -q >>"$log" 2>&1 && apt-get install -y -q chromium >>"$log" 2>&1; } ||
        apt-get install -y -q chromium-browser >>"$log" 2>&1; then
        echo "system_chromium: $(found)"
        exit 0
    fi
    cat "$log" >&2
fi
message="no system Chromium (install it: apt-get install chromium); the dashboard's browser tests will skip"
if [[ "${TUNIX_RT_REQUIRE_BROWSER:-0}" == 1 ]]; then
    echo "system_chromium: $message" >&2
    exit 1
fi
echo "system_chromium: WARNING: $message" >&2
