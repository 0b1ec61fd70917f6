#!/usr/bin/env bash
# System packages the test suite needs (redis-server and PostgreSQL's server for the store contract
# and cluster tests, chromium for browser tests, firefox-esr for the autopush test, dbus-daemon for
# the UnifiedPush distributor test, mosquitto, nats-server and taskset for the benchmark smoke run
# against peers,
# systemd-analyze to verify deploy/pushwire.service). Idempotent; needs root (CI runs as root).
# Skipped when everything is already present.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
# initdb, postgres and pg_ctl under /usr/lib/postgresql/N/bin (Debian's postgresql package).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/firefox-esr ] || need+=(firefox-esr)
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v taskset >/dev/null || need+=(util-linux)
command -v systemd-analyze >/dev/null || need+=(systemd)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "ci-setup: please install: ${need[*]}" >&2; exit 1; fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
