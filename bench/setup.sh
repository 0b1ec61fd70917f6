#!/usr/bin/env bash
# System packages the benchmarks need: the Mosquitto and NATS brokers (peers), redis-server (Pushwire
# on Redis) and taskset (util-linux, to pin server and load generator to separate cores).
# Idempotent; installs only what is missing (needs root).
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v redis-server >/dev/null || need+=(redis-server)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then
  echo "bench setup: mosquitto, nats-server, redis-server and taskset present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "bench setup: please install (as root): apt-get install ${need[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian packages may start system services (mosquitto on 1883, redis on 6379); the harness runs
# its own of each on a free port.
echo "bench setup: installed ${need[*]}"
