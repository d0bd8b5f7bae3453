#!/usr/bin/env bash
# Install the system packages sparkrun's tests, benches, local test cluster and documentation check need
# (Debian/Ubuntu, as root; chromium + chromium-driver: the headless browser check of the site, `make docs-check`).
# Idempotent: installs only what is missing. Without root it lists what is missing and exits 0, so unit tests
# still run (the end-to-end tests then skip with a one-line reason).
set -euo pipefail

# sudo, python3-yaml, docker-registry: the test cluster's host states (sudo on the hosts, the netplan stand-in) and
# its image registry
packages=(openssh-server openssh-client docker.io rsync busybox-static iproute2 iptables shellcheck hyperfine time curl git
  python3 python3-yaml util-linux procps sudo docker-registry chromium chromium-driver fonts-dejavu-core)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: not root; missing system packages: ${missing[*]} (end-to-end tests will skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}" >&2
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The package's own service (all interfaces, port 5000) is not wanted: scripts/testbed.sh runs its own registry
# on the testbed's address, only while the testbed is up.
if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
