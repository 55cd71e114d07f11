#!/usr/bin/env bash
# The system parts the tests talk to, installed and started on a fresh
# Debian/Ubuntu machine (run by `make test` through `make system-deps`):
# Mosquitto and its clients, socat, Debian's Chromium, systemd-analyze, and a
# running PostgreSQL with the `test` database the cloud tests use.
# Idempotent: what is already there is left as it is.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  local log
  log="$(mktemp)"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >"$log" 2>&1 || { cat "$log"; exit 1; }; apt_updated=1; fi
  # dpkg is verbose even with -qq: its output is shown only when the install fails.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
  rm -f "$log"
}

missing=""
for t in mosquitto:mosquitto mosquitto_pub:mosquitto-clients socat:socat \
         chromium:chromium systemd-analyze:systemd pg_ctlcluster:postgresql; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  # shellcheck disable=SC2086
  apt_install $missing
fi

# PostgreSQL: the tests use CORESYNC_TEST_PG (default below) on 127.0.0.1.
PG_DSN="${CORESYNC_TEST_PG:-postgresql://postgres:postgres@127.0.0.1:5432/test}"
PG_ADMIN_DSN="${PG_DSN%/*}/postgres"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
  if [ -z "$version" ]; then
    echo "PostgreSQL is installed but has no cluster in /etc/postgresql" >&2
    exit 1
  fi
  echo "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done
  pg_isready -h 127.0.0.1 -p 5432
fi
if ! psql "$PG_ADMIN_DSN" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  # A fresh Debian cluster asks for a password on TCP: give the postgres role
  # the one in the test DSN (a test machine only; never do this on a server).
  echo "setting the test password of the PostgreSQL role postgres"
  password="$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).password or "")' "$PG_DSN")"
  as_root runuser -u postgres -- psql -qc "ALTER ROLE postgres PASSWORD '${password}'"
fi
db="${PG_DSN##*/}"
if [ "$(psql "$PG_ADMIN_DSN" -qAtc "SELECT 1 FROM pg_database WHERE datname = '${db}'")" != 1 ]; then
  echo "creating PostgreSQL database ${db}"
  psql "$PG_ADMIN_DSN" -qc "CREATE DATABASE \"${db}\""
fi
