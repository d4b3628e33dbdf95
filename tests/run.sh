#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with the Rust toolchain.
# It installs what the tests need when it is missing (Mosquitto, NATS Server, docker-compose for its
# static check, Python's aiosmtpd SMTP server,
# the Sparkplug interop test's pinned pysparkplug in a virtual environment,
# Chromium and ChromeDriver for the dashboard's browser tests),
# then runs formatting and lint checks and every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
[ -x /usr/bin/mosquitto_pub ] && [ -x /usr/bin/mosquitto_sub ] || need+=(mosquitto-clients)
# The three-node cluster of deploy/nats (tests/tests/e2e/nats_*.rs).
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
# Validates docker-compose.yml (and its nats profile) without an engine (tests/cli/compose.rs).
[ -x /usr/bin/docker-compose ] || need+=(docker-compose)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing test dependencies: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Sparkplug interop test's third-party edge node library (tests/sparkplug/requirements.txt,
# pinned) in a virtual environment; reinstalled only when the pins change.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/dtwin-sparkplug-venv"
if ! cmp -s tests/sparkplug/requirements.txt "$venv/requirements.txt" \
  || ! "$venv/bin/python" -c 'import pysparkplug' >/dev/null 2>&1; then
  echo "== installing pysparkplug into $venv"
  if ! python3 -m venv --clear "$venv" >/dev/null 2>&1; then
    # Debian's own python3 has venv in a package of its own.
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/sparkplug/requirements.txt
  cp tests/sparkplug/requirements.txt "$venv/requirements.txt"
fi
export DTWIN_SPARKPLUG_PYTHON="$venv/bin/python"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --quiet --no-fail-fast 2>&1 | tee /tmp/dtwin-test.log
