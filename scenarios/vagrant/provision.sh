#!/usr/bin/env bash
# Provisions one host of the Vagrant cluster (see the Vagrantfile) and
# starts its Neutrino agent with the flags README "Running a cluster" gives.
#
#   provision.sh boot          docker provider: the container's main process
#                              (under docker's init): set up, start the
#                              agent, then stay as the container's life
#   provision.sh install       VMs (libvirt): set up, install and start the
#                              agent as the systemd unit neutrino-agent
#   provision.sh agent-start   start the agent again (after agent-kill)
#   provision.sh agent-kill    SIGKILL the agent, as a crash would
#   provision.sh agent-args    print the agent's command line, one a line
#   provision.sh underlay-down take the underlay NIC down (a partition)
#   provision.sh underlay-up   and up again
#   provision.sh ovs-restart   kill OVS and start it again on its database
#   provision.sh blackhole-add|blackhole-del IP...   routes to nowhere
#   provision.sh outside-vlan VID CIDR   the outside host's address on a VLAN
#
# Everything it needs comes from the environment the Vagrantfile sets:
#   NV_NAME NV_KIND             node name; server, chassis, gateway, outside
#   NV_UNDERLAY_IP NV_PREFIX    underlay (tunnel, gossip, Raft) address/len
#   NV_MGMT_IP                  management address (servers' API there too)
#   NV_SERVERS                  servers' underlay IPs (space separated)
#   NV_PEERS                    chassis' and gateways' underlay IPs
#   NV_EXTERNAL_IP              address Docker/libvirt gave this host's NIC
#                               on the external network ("" if none)
#   NV_EXTERNAL_CIDR            the external subnet (outside: its router)
#   NV_VLAN_IP                  address given to this host's NIC on the
#                               external-vlan network ("" if none)
#   NV_BINARY                   the built neutrino binary to install
#   NV_TLS_DIR                  the cluster's `neutrino tls` files (CA,
#                               NAME-server|chassis.pem and key,
#                               gossip.key): TLS on every channel; unset
#                               or empty runs plaintext
# It is idempotent: a restarted container runs it again on the state its
# disk kept (OVS database, agent data dir).
set -euo pipefail

mode=${1:-}
mtu=1600                  # the underlay leaves room for 1500-byte inner frames
run=/run/neutrino
log_dir=/var/log/neutrino
data_dir=/var/lib/neutrino
pidfile=$run/agent.pid
gossip_port=7301
http_port=9696
ovsdb_port=6640

tls_dir=${NV_TLS_DIR:-}

say() { echo "provision[$NV_NAME]: $*" >&2; }

# tls_on: this host has its TLS files (NV_TLS_DIR).
tls_on() { [ -n "$tls_dir" ]; }

# tls_files ROLE prints this node's key, certificate and the CA, in the
# order ovs-vsctl set-ssl takes them, failing loudly when one is missing.
tls_files() {
  local f
  for f in "$tls_dir/$NV_NAME-$1-key.pem" "$tls_dir/$NV_NAME-$1.pem" "$tls_dir/neutrino-ca.pem"; do
    [ -r "$f" ] || die "TLS: no $f (made by the Vagrantfile's neutrino tls trigger)"
    echo "$f"
  done
}
die() { say "$*"; exit 1; }

# wait_for CMD... polls CMD for up to 30 s.
wait_for() {
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "timed out waiting for: $*"
}

# nic_of IP prints the interface that carries IP (Docker names NICs by
# connect order, so addresses, not names, identify them).
nic_of() {
  ip -o -4 addr show | awk -v ip="$1" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}'
}

# has_addr IP succeeds once some interface carries IP.
has_addr() { [ -n "$(nic_of "$1")" ]; }

# wait_nics waits for this host's addresses: Vagrant's docker provider
# starts the container first and connects its networks after.
wait_nics() {
  [ "$mode" = boot ] || return 0
  local ips=("${NV_MGMT_IP:-}" "${NV_UNDERLAY_IP:-}" "${NV_EXTERNAL_IP:-}" "${NV_VLAN_IP:-}")
  for ip in "${ips[@]}"; do
    [ -n "$ip" ] || continue
    for _ in $(seq 1 600); do has_addr "$ip" && break; sleep 0.1; done
    has_addr "$ip" || die "no interface got $ip within 60 s"
  done
}

# phy_mac IP is the fixed br-phy MAC of the chassis at IP: every chassis
# can pre-load its peers' tunnel MACs (lab-notes: the first packet to an
# unresolved peer is lost).
phy_mac() {
  local IFS=.; set -- $1
  printf '02:6e:76:%02x:%02x:%02x' "$2" "$3" "$4"
}

# ensure_sysctl sets a sysctl unless it has the value already: a container
# gets it from `docker run --sysctl` (its /proc/sys is read-only).
ensure_sysctl() {
  [ "$(sysctl -n "$1")" = "$2" ] || sysctl -qw "$1=$2"
}

docker_mode() { [ "$mode" = boot ] || [ -f "$run/docker" ]; }

install_binary() {
  [ -x "$NV_BINARY" ] || die "no neutrino binary at $NV_BINARY (make build)"
  if ! cmp -s "$NV_BINARY" /usr/local/bin/neutrino 2>/dev/null; then
    install -m 0755 "$NV_BINARY" /usr/local/bin/neutrino
  fi
}

# no_offload turns TX checksum offload off: the netdev datapath never
# completes partial checksums (lab-notes), so TCP across it would fail.
no_offload() { ethtool -K "$1" tx off >/dev/null 2>&1 || true; }

start_ovs() {
  mkdir -p /etc/openvswitch /var/run/openvswitch /var/log/openvswitch
  [ -f /etc/openvswitch/conf.db ] ||
    ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
  if docker_mode; then
    # The leader manages this chassis' OVSDB over the underlay; the address
    # moves to br-phy below, so bind it before it is there.
    ensure_sysctl net.ipv4.ip_nonlocal_bind 1
    local remotes=(--remote=punix:/var/run/openvswitch/db.sock)
    # Only a chassis serves its OVSDB to the leader (the outside host's
    # OVS, for its VLAN trunk, has no underlay address and no certificate).
    if tls_on && [ -n "${NV_UNDERLAY_IP:-}" ]; then
      # Mutual TLS with the chassis certificate: the leader checks it
      # names this chassis, ovsdb-server that the leader's is of the CA.
      local f
      mapfile -t f < <(tls_files chassis)
      [ "${#f[@]}" = 3 ] || die "TLS: chassis files missing in $tls_dir"
      remotes+=(--remote="pssl:$ovsdb_port:$NV_UNDERLAY_IP" --private-key="${f[0]}" --certificate="${f[1]}" --ca-cert="${f[2]}")
    elif [ -n "${NV_UNDERLAY_IP:-}" ]; then
      remotes+=(--remote="ptcp:$ovsdb_port:$NV_UNDERLAY_IP")
    fi
    ovsdb-server /etc/openvswitch/conf.db "${remotes[@]}" --pidfile --detach --log-file
    ovs-vsctl --no-wait init
    ovs-vsctl --no-wait set Open_vSwitch . external_ids:system-id="$NV_NAME"
    # No kernel module here: userspace datapath only.
    ovs-vswitchd --pidfile --detach --log-file --disable-system
  else
    systemctl enable --now openvswitch-switch
    ovs-vsctl set Open_vSwitch . external_ids:system-id="$NV_NAME"
    [ -z "${NV_UNDERLAY_IP:-}" ] || ovs-vsctl set-manager "ptcp:$ovsdb_port:$NV_UNDERLAY_IP"
  fi
  wait_for ovs-vsctl --timeout=5 show
}

# tunnel_endpoint puts the tunnel IP on br-phy, a netdev bridge with the
# underlay NIC as its port (lab-notes: userspace tunnels need it there).
# The kernel datapath (VMs) keeps the address on the NIC.
tunnel_endpoint() {
  docker_mode || return 0
  local nic
  nic=$(nic_of "$NV_UNDERLAY_IP")
  if [ "$nic" = br-phy ] || [ -z "$nic" ]; then
    nic=$(ovs-vsctl list-ports br-phy | head -n1)
  fi
  [ -n "$nic" ] || die "no NIC carries $NV_UNDERLAY_IP"
  no_offload "$nic"
  drop_stale_nics br-phy "$nic"
  ovs-vsctl --may-exist add-br br-phy -- set Bridge br-phy datapath_type=netdev \
    other-config:hwaddr="\"$(phy_mac "$NV_UNDERLAY_IP")\"" \
    -- set Interface br-phy mtu_request=$mtu -- --may-exist add-port br-phy "$nic"
  wait_for ip link show br-phy
  ip addr flush dev "$nic"
  ip link set "$nic" up
  ip addr replace "$NV_UNDERLAY_IP/$NV_PREFIX" dev br-phy
  ip link set br-phy mtu $mtu up
  no_offload br-phy
  for p in ${NV_PEERS:-}; do
    [ "$p" = "$NV_UNDERLAY_IP" ] || ovs-appctl tnl/arp/set br-phy "$p" "$(phy_mac "$p")" >/dev/null
  done
}

# drop_stale_nics BRIDGE NIC removes the NICs other than NIC that an
# earlier boot made ports of BRIDGE: a restarted container's NICs may be
# named in another order, and a stale port would take another network's NIC.
drop_stale_nics() {
  local p
  for p in $(ovs-vsctl list-ports "$1" 2>/dev/null); do
    case "$p" in eth*) [ "$p" = "$2" ] || ovs-vsctl del-port "$1" "$p" ;; esac
  done
}

# phys_bridge IP BRIDGE makes BRIDGE a standalone (learning) bridge with
# the NIC that Docker/libvirt gave IP as its port: the host itself has no
# address there. The controller patches br-int to the chassis' bridges.
phys_bridge() {
  [ -n "$1" ] || return 0
  local nic dp=system
  docker_mode && dp=netdev
  nic=$(nic_of "$1")
  if [ -z "$nic" ]; then
    nic=$(ovs-vsctl list-ports "$2" 2>/dev/null | grep '^eth' | head -n1 || true)
  fi
  [ -n "$nic" ] || die "no NIC carries $1"
  no_offload "$nic"
  drop_stale_nics "$2" "$nic"
  ip addr flush dev "$nic"
  ip link set "$nic" up
  ovs-vsctl --may-exist add-br "$2" -- set Bridge "$2" datapath_type=$dp fail_mode=standalone \
    -- --may-exist add-port "$2" "$nic"
}

# external_bridge plugs the chassis into the physical networks: br-ex
# (external, flat) and br-vlan (external-vlan, a trunk).
external_bridge() {
  phys_bridge "${NV_EXTERNAL_IP:-}" br-ex
  phys_bridge "${NV_VLAN_IP:-}" br-vlan
}

# outside_vlan VID CIDR gives the outside host CIDR on VLAN VID: an
# internal port vlanVID with tag=VID on br-out (OVS tags what leaves on the
# trunk NIC and untags what comes in; no 802.1Q module here). Again for
# the same VID, the address becomes CIDR.
outside_vlan() {
  local vid=$1 cidr=$2 port=vlan$1
  [[ "$vid" =~ ^[0-9]+$ ]] && [ "$vid" -ge 1 ] && [ "$vid" -le 4094 ] || die "VLAN id $vid out of 1-4094"
  ovs-vsctl --may-exist add-port br-out "$port" -- set Port "$port" tag="$vid" \
    -- set Interface "$port" type=internal
  wait_for ip link show "$port"
  no_offload "$port"
  ip addr flush dev "$port"
  ip addr add "$cidr" dev "$port"
  ip link set "$port" up
}

agent_args() {
  local a=(agent --node "$NV_NAME" --data-dir "$data_dir" --bind "$NV_UNDERLAY_IP:$gossip_port")
  for s in $NV_SERVERS; do a+=(--join "$s:$gossip_port"); done
  if tls_on; then
    local role=chassis f
    [ "$NV_KIND" = server ] && role=server
    mapfile -t f < <(tls_files "$role")
    [ "${#f[@]}" = 3 ] || die "TLS: $role files missing in $tls_dir"
    a+=(--tls-key "${f[0]}" --tls-cert "${f[1]}" --tls-ca "${f[2]}" --gossip-key "$(cat "$tls_dir/gossip.key")")
  fi
  case "$NV_KIND" in
    server)
      a+=(--server --bootstrap-expect "$(wc -w <<<"$NV_SERVERS")"
        --http "$NV_UNDERLAY_IP:$http_port" --http-also "$NV_MGMT_IP:$http_port"
        --flat-networks external --vlan-ranges external-vlan:100:199)
      ;;
    chassis|gateway)
      local role=compute dp=system
      [ "$NV_KIND" = gateway ] && role=gateway
      docker_mode && dp=netdev
      a+=(--http "$NV_UNDERLAY_IP:$http_port" --tunnel-ip "$NV_UNDERLAY_IP")
      if tls_on; then
        a+=(--ovsdb "ssl:$NV_UNDERLAY_IP:$ovsdb_port" --ovsdb-local unix:/var/run/openvswitch/db.sock)
      else
        a+=(--ovsdb "tcp:$NV_UNDERLAY_IP:$ovsdb_port")
      fi
      a+=(--chassis-roles "$role" --datapath-type "$dp")
      [ -n "${NV_EXTERNAL_IP:-}" ] && a+=(--bridge-mappings external:br-ex)
      [ -n "${NV_VLAN_IP:-}" ] && a+=(--bridge-mappings external-vlan:br-vlan)
      ;;
  esac
  printf '%s\n' "${a[@]}"
}

# alive PID: the process runs (a zombie is dead).
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat")" != Z ]; }

agent_running() { [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; }

agent_start() {
  mkdir -p "$run" "$log_dir" "$data_dir"
  if docker_mode; then
    agent_running && die "the agent is running (pid $(cat "$pidfile"))"
    mapfile -t args < <(agent_args)
    # Started from a subshell that exits at once: the agent is docker's
    # init's child, which reaps it when it dies (this script becomes
    # `sleep`, which would leave it a zombie).
    (setsid /usr/local/bin/neutrino "${args[@]}" </dev/null >>"$log_dir/agent.log" 2>&1 & echo $! >"$pidfile")
    say "agent started (pid $(cat "$pidfile"))"
  else
    systemctl start neutrino-agent
  fi
}

agent_kill() {
  if docker_mode; then
    agent_running || die "the agent is not running"
    local pid
    pid=$(cat "$pidfile")
    kill -KILL "$pid"
    for _ in $(seq 1 100); do alive "$pid" || { rm -f "$pidfile"; return 0; }; sleep 0.05; done
    die "the agent (pid $pid) did not exit"
  else
    systemctl kill --signal=SIGKILL neutrino-agent
  fi
}

systemd_unit() {
  mapfile -t args < <(agent_args)
  printf '%q ' "${args[@]}" >/etc/neutrino-agent.args
  cat >/etc/systemd/system/neutrino-agent.service <<EOF
[Unit]
Description=Neutrino agent ($NV_KIND $NV_NAME)
After=network-online.target openvswitch-switch.service
Wants=network-online.target

[Service]
ExecStart=/bin/sh -c 'exec /usr/local/bin/neutrino $(cat /etc/neutrino-agent.args)'
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable neutrino-agent
}

# underlay_nic prints the NIC on the underlay: br-phy's port on a
# docker chassis, else the NIC with the underlay address.
underlay_nic() {
  local nic
  nic=$(nic_of "$NV_UNDERLAY_IP")
  if [ "$nic" = br-phy ]; then
    nic=$(ovs-vsctl list-ports br-phy | grep '^eth' | head -n1)
  fi
  [ -n "$nic" ] || die "no underlay NIC"
  echo "$nic"
}

# ovs_restart kills ovsdb-server and ovs-vswitchd at once, as a crash
# would, and starts them again on the database: bridges and ports come
# back from it, flows do not (the controller puts them back).
ovs_restart() {
  docker_mode || { systemctl restart openvswitch-switch; return; }
  local pids=() p
  for f in /var/run/openvswitch/ovsdb-server.pid /var/run/openvswitch/ovs-vswitchd.pid; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  [ ${#pids[@]} -gt 0 ] && kill -KILL "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do alive "$p" || break; sleep 0.05; done
    ! alive "$p" || die "OVS process $p did not exit"
  done
  start_ovs
  tunnel_endpoint
  external_bridge
}

# blackhole ADD|DEL IP... routes the addresses into a blackhole (a server
# cut off from the other servers only) or removes those routes.
blackhole() {
  local op=$1 ip
  shift
  for ip in "$@"; do
    if [ "$op" = add ]; then
      ip route replace blackhole "$ip/32"
    else
      ip route del blackhole "$ip/32" 2>/dev/null || true
    fi
  done
}

outside() {
  # The upstream router of the external network: its gateway address
  # (given by Docker/libvirt) and forwarding.
  local nic
  nic=$(nic_of "$NV_EXTERNAL_IP")
  [ -n "$nic" ] || die "no NIC carries $NV_EXTERNAL_IP"
  no_offload "$nic"
  ensure_sysctl net.ipv4.ip_forward 1
  # The VLAN trunk ends on an OVS bridge of the outside host's own.
  if [ -n "${NV_VLAN_IP:-}" ]; then
    start_ovs
    phys_bridge "$NV_VLAN_IP" br-out
  fi
}

setup() {
  [ -n "${NV_NAME:-}" ] && [ -n "${NV_KIND:-}" ] || die "NV_NAME and NV_KIND must be set"
  mkdir -p "$run"
  if [ "$mode" = boot ]; then
    # A restarted container keeps its disk, /run included: what the last
    # boot wrote there names processes that died with it.
    rm -f "$pidfile" "$run/provisioned"
    touch "$run/docker"
  fi
  wait_nics
  if [ "$NV_KIND" = outside ]; then
    outside
    return
  fi
  install_binary
  for ip in "$NV_UNDERLAY_IP" "${NV_MGMT_IP:-}"; do
    [ -n "$ip" ] || continue
    nic=$(nic_of "$ip")
    [ -n "$nic" ] && no_offload "$nic"
  done
  case "$NV_KIND" in
    chassis|gateway)
      start_ovs
      tunnel_endpoint
      external_bridge
      ;;
  esac
}

case "$mode" in
  boot)
    setup
    [ "$NV_KIND" = outside ] || agent_start
    echo ready >"$run/provisioned"
    # The container lives as long as this; docker's init reaps the rest.
    exec sleep infinity
    ;;
  install)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openvswitch-switch iproute2 ethtool \
      iputils-ping netcat-openbsd busybox-static haproxy strongswan-charon strongswan-swanctl \
      libcharon-extra-plugins curl tcpdump >/dev/null
    setup
    if [ "$NV_KIND" != outside ]; then
      systemd_unit
      systemctl restart neutrino-agent
    fi
    ;;
  agent-start) agent_start ;;
  agent-args) agent_args ;;
  # A partition: the underlay NIC down (processes keep running; the
  # management and external NICs stay up), and back.
  underlay-down) ip link set "$(underlay_nic)" down ;;
  underlay-up) ip link set "$(underlay_nic)" up ;;
  ovs-restart) ovs_restart ;;
  outside-vlan) outside_vlan "$2" "$3" ;;
  blackhole-add) shift; blackhole add "$@" ;;
  blackhole-del) shift; blackhole del "$@" ;;
  agent-kill) agent_kill ;;
  *) echo "usage: $0 boot|install|agent-start|agent-kill|agent-args|underlay-down|underlay-up|ovs-restart|outside-vlan|blackhole-add|blackhole-del" >&2; exit 2 ;;
esac
