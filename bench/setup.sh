#!/usr/bin/env bash
# System packages the benchmarks need: the Mosquitto broker (a peer) and taskset (util-linux, to pin
# server and load generator to separate cores). Idempotent; installs only what is missing (needs root).
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then
  echo "bench setup: mosquitto and taskset present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "bench setup: please install (as root): apt-get install ${need[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian package starts a system broker on 1883; the harness runs its own on a free port.
echo "bench setup: installed ${need[*]}"
