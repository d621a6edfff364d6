#!/usr/bin/env bash
# The demo, on a lab of network namespaces on this machine (root):
#   - `neutrino lab up`: 3 servers, 3 chassis, 1 gateway, each a namespace
#     with its own agent (and OVS on chassis), on the 10.250.0.0/24 underlay
#   - a VXLAN network, a subnet and two ports through the API, a VM per port
#     on two chassis, and a ping between them across the tunnel
#   - failover: a network created through a follower, the leader killed
#     (SIGKILL), the network still there, traffic still flowing, the dead
#     server restarted and catching up from its data dir
#
#   scenarios/demo/cluster.sh        run the demo; the lab keeps running
#   scenarios/demo/cluster.sh stop   take the lab down (neutrino lab down)
#
# The lab lives in NEUTRINO_DIR (default /run/neutrino-lab) with namespaces
# prefixed NEUTRINO_PREFIX (default nl-): every `neutrino lab` command
# reads both from the environment, so the hints printed at the end work.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/neutrino}
BIN=$(realpath "$BIN")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "neutrino $*"; "$BIN" "$@"; }

# wait_for DESC SECONDS CMD...: poll CMD until it succeeds or time is up.
wait_for() {
  local desc=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $desc" >&2; return 1; fi
    sleep 0.2
  done
}

if [ "${1:-}" = stop ]; then "$BIN" lab down; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "the demo builds network namespaces: run it as root" >&2; exit 1; }
for t in curl jq; do
  command -v "$t" >/dev/null || { echo "the demo needs $t (apt-get install $t)" >&2; exit 1; }
done

say "Removing a previous demo lab, if any"
"$BIN" lab down

say "Bringing up the lab: 3 servers, 3 chassis, 1 gateway"
"$BIN" lab up --servers 3 --chassis 3 --gateways 1 >/dev/null
run lab status

status() { "$BIN" lab status -o json; }
EP=$(status | jq -r '.endpoints[0]')
# The lab runs TLS by default: every command and curl verifies with its CA
# (flags also come from the environment: NEUTRINO_CA is --ca).
CA=$(status | jq -r '.ca // empty')
[ -z "$CA" ] || export NEUTRINO_CA="$CA"
endpoint_of() { status | jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .api'; }
api() { curl -sS -f ${CA:+--cacert "$CA"} -X "$1" -H 'Content-Type: application/json' "$EP/v2.0/$2" ${3:+-d "$3"}; }
has_api() { [ "$(curl -s ${CA:+--cacert "$CA"} -o /dev/null -w '%{http_code}' "$EP/v2.0/$1")" = 200 ]; }

say "Cluster and gossip members, through $EP"
run --endpoint "$EP" cluster status
run --endpoint "$EP" cluster members

say "Creating network demo-net (VXLAN)"
run --endpoint "$EP" network create demo-net --provider-network-type vxlan
NET=$("$BIN" --endpoint "$EP" network show demo-net -o json | jq -r .id)

VMS=
if has_api subnets && has_api ports; then
  say "Creating subnet 192.168.100.0/24 and two ports (POST /v2.0/subnets, /v2.0/ports)"
  api POST subnets "{\"subnet\": {\"name\": \"demo-subnet\", \"network_id\": \"$NET\", \"ip_version\": 4, \"cidr\": \"192.168.100.0/24\"}}" |
    jq -c '.subnet | {id, cidr, gateway_ip, allocation_pools}'
  P1=$(api POST ports "{\"port\": {\"name\": \"vm1-port\", \"network_id\": \"$NET\"}}" | jq -r .port.id)
  P2=$(api POST ports "{\"port\": {\"name\": \"vm2-port\", \"network_id\": \"$NET\"}}" | jq -r .port.id)
  IP2=$(api GET "ports/$P2" | jq -r '.port.fixed_ips[0].ip_address')

  say "Plugging vm1 into chassis-1 and vm2 into chassis-2 (MAC, IP, gateway, MTU from the ports)"
  run lab vm add vm1 --port "$P1" --chassis chassis-1
  run lab vm add vm2 --port "$P2" --chassis chassis-2

  say "vm1 pings vm2 ($IP2) across the VXLAN tunnel chassis-1 -> chassis-2"
  wait_for "vm1 to reach vm2" 30 "$BIN" lab exec vm1 -- ping -c1 -W1 "$IP2"
  run lab exec vm1 -- ping -c3 "$IP2"
  VMS=1
else
  say "This build has no subnets/ports API yet: skipping the VMs and the ping"
fi

leader=$("$BIN" --endpoint "$EP" cluster status -o json | jq -r .leader)
follower=$(status | jq -r --arg l "$leader" '[.nodes[] | select(.kind == "server" and .name != $l)][0].name')
FEP=$(endpoint_of "$follower")

say "Creating network failover-net through follower $follower (leader is $leader)"
run --endpoint "$FEP" network create failover-net --provider-network-type geneve

say "Killing the leader $leader with SIGKILL"
run lab agent kill "$leader"
newleader_elected() {
  l=$("$BIN" --endpoint "$FEP" cluster status -o json | jq -r .leader)
  [ -n "$l" ] && [ "$l" != "$leader" ]
}
wait_for "a new leader" 30 newleader_elected
run --endpoint "$FEP" cluster status

say "The networks are still there (listed through $follower)"
run --endpoint "$FEP" network list

if [ -n "$VMS" ]; then
  say "vm1 still reaches vm2: the data path does not go through the controller"
  run lab exec vm1 -- ping -c2 "$IP2"
fi

say "Restarting $leader: it rejoins from its data dir"
run lab agent start "$leader"
LEP=$(endpoint_of "$leader")
wait_for "$leader to catch up" 30 "$BIN" --endpoint "$LEP" --stale network show failover-net
run --endpoint "$LEP" --stale network show failover-net
run --endpoint "$LEP" cluster status

DIR=$(status | jq -r .dir)
N=$(realpath --relative-to=. "$BIN")
say "Done. The lab keeps running. Explore it:"
cat <<EOF
  $N lab status                                   nodes, namespaces, IPs, API endpoints
  $N --endpoint $EP${CA:+ --ca $CA} network list
  $N lab exec vm1 -- ping ${IP2:-<ip>}                  a VM (any command, in its namespace)
  $N lab exec chassis-1 -- ovs-vsctl show          a chassis' OVS (OVS_RUNDIR is set)
  $N lab exec chassis-1 -- ovs-ofctl -O OpenFlow13 dump-flows br-int
  $N lab agent kill|start server-2                failover experiments
  less $DIR/server-1/agent.log     logs (OVS: $DIR/chassis-1/ovs/)
Tear it down:
  $N lab down        (or: make demo-stop)
EOF
