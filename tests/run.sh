#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with the Rust toolchain.
# It installs what the tests need when it is missing (Mosquitto, Python's aiosmtpd SMTP server,
# Chromium and ChromeDriver for the dashboard's browser tests),
# then runs formatting and lint checks and every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
[ -x /usr/bin/mosquitto_pub ] && [ -x /usr/bin/mosquitto_sub ] || need+=(mosquitto-clients)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing test dependencies: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --quiet --no-fail-fast 2>&1 | tee /tmp/dtwin-test.log
