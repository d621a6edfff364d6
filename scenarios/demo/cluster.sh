#!/usr/bin/env bash
# The demo: a 3-server cluster on 127.0.0.1, a network created through a
# follower, the leader killed (SIGKILL), the network still there, the dead
# server restarted and rejoining from its data dir.
#
#   scenarios/demo/cluster.sh        run the demo; servers keep running
#   scenarios/demo/cluster.sh stop   stop the servers the demo started
#
# State (data dirs, logs, pid files) lives in ./demo (DEMO_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/neutrino}
DIR=${DEMO_DIR:-demo}
NODES=(s1 s2 s3)
declare -A BIND=([s1]=127.0.0.1:7301 [s2]=127.0.0.1:7311 [s3]=127.0.0.1:7321)
declare -A HTTP=([s1]=127.0.0.1:9601 [s2]=127.0.0.1:9602 [s3]=127.0.0.1:9603)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_all() {
  for n in "${NODES[@]}"; do
    f="$DIR/$n.pid"
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # Only a pid that is still our agent: pids get reused.
    if kill -0 "$pid" 2>/dev/null && grep -q "neutrino" "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

start() {
  local n=$1
  mkdir -p "$DIR/$n"
  setsid "$BIN" agent --server --node "$n" --data-dir "$DIR/$n" \
    --bind "${BIND[$n]}" --http "${HTTP[$n]}" --bootstrap-expect 3 \
    --join "${BIND[s1]}" --join "${BIND[s2]}" --join "${BIND[s3]}" \
    >>"$DIR/$n.log" 2>&1 </dev/null &
  echo $! >"$DIR/$n.pid"
  disown $!  # its death (the demo kills one) is not the shell's business
}

# wait_for DESC SECONDS CMD...: poll CMD until it succeeds or time is up.
wait_for() {
  local desc=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $desc" >&2; return 1; fi
    sleep 0.2
  done
}

leader_of() { "$BIN" --endpoint "http://${HTTP[$1]}" cluster status -o json | sed -n 's/.*"leader": *"\([^"]*\)".*/\1/p' | head -1; }
has_leader() { [ -n "$(leader_of "$1")" ]; }

if [ "${1:-}" = stop ]; then stop_all; echo "demo servers stopped"; exit 0; fi

stop_all
rm -rf "$DIR"; mkdir -p "$DIR"

say "Starting 3 servers (gossip 7301/7311/7321, Raft +1, API 9601-9603)"
for n in "${NODES[@]}"; do start "$n"; done
wait_for "a leader" 30 has_leader s1
"$BIN" --endpoint "http://${HTTP[s1]}" cluster status

leader=$(leader_of s1)
follower=s1; [ "$leader" = s1 ] && follower=s2
say "Creating network 'demo-net' through follower $follower (leader is $leader)"
"$BIN" --endpoint "http://${HTTP[$follower]}" network create demo-net --provider-network-type vxlan

say "Killing the leader $leader with SIGKILL"
kill -9 "$(cat "$DIR/$leader.pid")"
rm -f "$DIR/$leader.pid"
survivor=$follower
newleader_elected() { l=$(leader_of "$survivor"); [ -n "$l" ] && [ "$l" != "$leader" ]; }
wait_for "a new leader" 30 newleader_elected
"$BIN" --endpoint "http://${HTTP[$survivor]}" cluster status

say "The network is still there (listed through $survivor)"
"$BIN" --endpoint "http://${HTTP[$survivor]}" network list

say "Restarting $leader: it rejoins from its data dir"
start "$leader"
caught_up() { "$BIN" --endpoint "http://${HTTP[$leader]}" --stale network show demo-net; }
wait_for "$leader to catch up" 30 caught_up
"$BIN" --endpoint "http://${HTTP[$leader]}" --stale network show demo-net
"$BIN" --endpoint "http://${HTTP[$leader]}" cluster status

say "Done. The servers keep running; logs in $DIR/. Stop them with: make demo-stop"
