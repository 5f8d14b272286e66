#!/usr/bin/env bash
# Starts what Motcua's tests and benchmarks need on a development or CI machine, when it is not up:
#   rabbitmq    RabbitMQ on 127.0.0.1:5672 with its management plugin (API on 15672)
#   postgresql  PostgreSQL on 127.0.0.1:5432 (Debian's cluster)
#   chromium    Debian's /usr/bin/chromium for the browser tests (never a downloaded browser; their
#               accessibility pass uses the axe-core vendored in tests/browser/axe)
#   promtool    Prometheus's rule checker and tester (Debian's prometheus package) for the rules' tests
#   wrk         the HTTP load generator of the tracking bench
#   postgresql-connections  PostgreSQL taking 300 connections (100 by default): `make bench` (its two
#               sides) and `make test` (its two lanes) run two platforms at once, each pooling up to
#               ~100 (ALTER SYSTEM, then the cluster restarted)
# Idempotent: quiet when everything is up; one line for each thing it starts, installs or cannot.
# Exits non-zero when something asked for is still missing.
#   deploy/dev/ensure-services.sh [rabbitmq] [postgresql] [chromium] [promtool] [wrk] [postgresql-connections]
#   (default: the first four)
set -uo pipefail

missing=0
say() { echo "ensure-services: $*" >&2; }
cannot() { say "cannot $*"; missing=1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
management_up() { curl -sf -o /dev/null -u guest:guest http://127.0.0.1:15672/api/overview; }
wait_until() {  # seconds, command…
  local seconds=$1; shift
  for _ in $(seq 1 "$seconds"); do "$@" && return 0; sleep 1; done
  "$@"
}

rabbitmq() {
  port_open 5672 && management_up && return
  if ! port_open 5672; then
    command -v rabbitmq-server >/dev/null || { cannot "start RabbitMQ: rabbitmq-server is not installed (README: compose.yaml or apt-get install rabbitmq-server)"; return; }
    say "starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1
    wait_until 60 rabbitmqctl -q await_startup >/dev/null 2>&1 || { cannot "start RabbitMQ (rabbitmqctl await_startup failed)"; return; }
  fi
  if ! management_up; then
    say "enabling RabbitMQ's management plugin"
    rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
    wait_until 60 management_up || cannot "reach RabbitMQ's management API on 127.0.0.1:15672"
  fi
}

postgresql() {
  port_open 5432 && return
  command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] || { cannot "start PostgreSQL: no Debian cluster (README: compose.yaml or apt-get install postgresql)"; return; }
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1
  wait_until 30 pg_isready -h 127.0.0.1 -q || cannot "start PostgreSQL (pg_isready says no)"
}

CONNECTIONS=300  # two platforms at once: the bench's two sides, the suite's two lanes
postgresql_connections() {
  postgresql
  local now
  now=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SHOW max_connections" 2>/dev/null) || { cannot "ask PostgreSQL its max_connections"; return; }
  [ "$now" -ge "$CONNECTIONS" ] && return
  say "raising PostgreSQL's max_connections from $now to $CONNECTIONS (restarts it)"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "ALTER SYSTEM SET max_connections = $CONNECTIONS" >/dev/null \
    && pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main restart >/dev/null 2>&1 \
    && wait_until 30 pg_isready -h 127.0.0.1 -q || cannot "raise PostgreSQL's max_connections to $CONNECTIONS"
}

install_package() {  # command, package, apt-get options…
  command -v "$1" >/dev/null && return
  local package=$2; shift 2
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    cannot "install $package: needs root and apt-get (apt-get install -y $* $package)"; return
  fi
  say "installing $package (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" "$package"; } >/dev/null 2>&1 \
    || cannot "install $package (apt-get install -y $* $package failed)"
}

[ $# -gt 0 ] || set -- rabbitmq postgresql chromium promtool
for wanted in "$@"; do
  case "$wanted" in
    rabbitmq) rabbitmq ;;
    postgresql) postgresql ;;
    postgresql-connections) postgresql_connections ;;
    chromium) install_package /usr/bin/chromium chromium ;;
    # Debian's prometheus package for its promtool; without its recommended node exporter (port 9100).
    promtool) install_package promtool prometheus --no-install-recommends ;;
    wrk) install_package wrk wrk ;;
    *) cannot "ensure '$wanted': unknown (rabbitmq, postgresql, chromium, promtool, wrk, postgresql-connections)" ;;
  esac
done
exit $missing
