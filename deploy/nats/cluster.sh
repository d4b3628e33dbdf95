#!/usr/bin/env bash
# A three-node NATS cluster (MQTT + JetStream, deploy/nats/node.conf) on this machine's
# loopback, for trying dtwin past one broker and for the tests that prove it
# (tests/tests/e2e/nats_cluster.rs). Needs `nats-server` (Debian: apt-get install nats-server).
#
#   cluster.sh start        start the three nodes in the background, wait until they serve
#   cluster.sh stop         stop them (SIGTERM), keep their data
#   cluster.sh kill N       SIGKILL node N (1-3): a crash, for trying failover
#   cluster.sh node N       run node N in the foreground (restart a killed node: `... node N &`)
#   cluster.sh wait         wait until every node answers /healthz (JetStream ready)
#   cluster.sh urls         the --broker value for dtwin: the three MQTT URLs, comma-separated
#
# Ports and folders come from the environment (defaults in brackets):
#   NATS_HOST [127.0.0.1]           NATS_DIR [./nats-cluster] (data, logs, pid files)
#   NATS_MQTT_PORTS [1883 1884 1885]    NATS_CLIENT_PORTS [4222 4223 4224]
#   NATS_CLUSTER_PORTS [6222 6223 6224] NATS_HTTP_PORTS [8222 8223 8224]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
host="${NATS_HOST:-127.0.0.1}"
dir="${NATS_DIR:-./nats-cluster}"
read -r -a mqtt <<<"${NATS_MQTT_PORTS:-1883 1884 1885}"
read -r -a client <<<"${NATS_CLIENT_PORTS:-4222 4223 4224}"
read -r -a route <<<"${NATS_CLUSTER_PORTS:-6222 6223 6224}"
read -r -a http <<<"${NATS_HTTP_PORTS:-8222 8223 8224}"

die() { echo "cluster.sh: $*" >&2; exit 2; }
for list in mqtt client route http; do
  n="$list[@]"; n=(${!n}); [ "${#n[@]}" -eq 3 ] || die "NATS_${list^^}_PORTS needs three ports"
done
bin="$(command -v nats-server || true)"
[ -n "$bin" ] || { [ -x /usr/sbin/nats-server ] && bin=/usr/sbin/nats-server; } \
  || die "nats-server is not installed (Debian: apt-get install nats-server)"

node_index() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "node is 1, 2 or 3, not '${1:-}'"
  echo $(($1 - 1))
}

# The environment node.conf reads, for node index $1 (0-2).
node_env() {
  local i=$1 routes="["
  for p in "${route[@]}"; do routes+="\"nats://$host:$p\","; done
  routes="${routes%,}]"
  export NATS_NAME="n$((i + 1))" NATS_CLIENT="$host:${client[$i]}" NATS_HTTP="$host:${http[$i]}" \
    NATS_MQTT="$host:${mqtt[$i]}" NATS_CLUSTER="$host:${route[$i]}" NATS_ROUTES="$routes" \
    NATS_STORE="$dir/n$((i + 1))/jetstream"
  mkdir -p "$dir/n$((i + 1))"
}

# GET http://$host:$1/healthz; true on 200. Bash's /dev/tcp: the image and CI need no curl.
healthy() {
  local reply
  { exec 3<>"/dev/tcp/$host/$1"; } 2>/dev/null || return 1
  printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [[ "$reply" == *" 200 "* ]]
}

wait_healthy() {
  local deadline=$((SECONDS + ${NATS_WAIT_S:-30}))
  for i in 0 1 2; do
    until healthy "${http[$i]}"; do
      [ $SECONDS -lt $deadline ] || die "node n$((i + 1)) not healthy after ${NATS_WAIT_S:-30} s (log: $dir/n$((i + 1))/nats.log)"
      sleep 0.2
    done
  done
}

case "${1:-}" in
  node)
    i=$(node_index "${2:-}")
    node_env "$i"
    exec "$bin" -c "$here/node.conf"
    ;;
  start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    for i in 0 1 2; do
      node_env "$i"
      nohup "$bin" -c "$here/node.conf" -l "$dir/n$((i + 1))/nats.log" >/dev/null 2>&1 &
      echo $! >"$dir/n$((i + 1))/pid"
    done
    wait_healthy
    echo "NATS cluster up; dtwin --broker $("$0" urls)"
    ;;
  stop)
    for i in 1 2 3; do
      f="$dir/n$i/pid"
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
    ;;
  kill)
    i=$(node_index "${2:-}")
    f="$dir/n$((i + 1))/pid"
    [ -f "$f" ] || die "no pid file $f"
    kill -KILL "$(cat "$f")"
    rm -f "$f"
    ;;
  wait) wait_healthy ;;
  urls)
    urls=()
    for p in "${mqtt[@]}"; do urls+=("mqtt://$host:$p"); done
    (IFS=,; echo "${urls[*]}")
    ;;
  *)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
