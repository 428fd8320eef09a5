#!/usr/bin/env bash
# Installs the Debian tools named as arguments when they are missing, so a test never skips
# because a tool is absent. Tests use them as independent peers: oathtool computes TOTP codes
# the suite must accept, nginx fronts the gateway for forward auth, chromium runs the page tests
# (driven by Playwright, never `playwright install`); wrk loads the benchmarks.
# A tool is named by its command; `command=package` when the Debian package is named otherwise.
# redis-server and PostgreSQL (TLS builds) serve the TLS-to-dependencies tests.
set -euo pipefail
missing=()
for spec in "$@"; do
    tool=${spec%%=*}
    package=${spec#*=}
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing test tools: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "installing test tools: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
