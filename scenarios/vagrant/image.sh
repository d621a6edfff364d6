#!/usr/bin/env bash
# Builds the Vagrant docker provider's base image without a registry: a
# Debian bookworm rootfs from this machine's apt sources (mmdebstrap) with
# the packages a Neutrino host needs, `docker import`ed as
# neutrino-base:<hash>, where the hash covers this script (the package
# list) and the apt sources. A build is skipped when that tag exists; the
# tag is also aliased neutrino-base:current, which the Vagrantfile runs.
# Older neutrino-base tags are removed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=neutrino-base
pkgs=(
  openvswitch-switch                       # ovsdb-server, ovs-vswitchd (netdev datapath), ovs-vsctl
  iproute2 ethtool iputils-ping netcat-openbsd procps iptables conntrack tcpdump
  busybox-static                           # workload VMs: udhcpc, httpd
  haproxy                                  # gateways: load balancers
  strongswan-charon strongswan-swanctl libcharon-extra-plugins  # gateways, the VPN site: IPsec (kernel-libipsec)
  curl                                     # workload VMs and outside: HTTP clients
  iperf3                                   # workload VMs: the QoS bandwidth-limit scenario
  mount                                    # charon's private /run (mount --bind), not in the essential set
  ca-certificates
)
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list

hash=$( { cat "$0"; cat "$sources"; } | sha256sum | cut -c1-12)
tag=$repo:$hash

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image: $tag cached"
else
  command -v mmdebstrap >/dev/null || { echo "image: mmdebstrap missing (run .ci/deps-vagrant)" >&2; exit 1; }
  start=$(date +%s)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  include=$(IFS=,; echo "${pkgs[*]}")
  # The package's init scripts must not start OVS in the build chroot.
  mmdebstrap --variant=apt --include="$include" \
    --customize-hook='rm -f "$1"/etc/machine-id; rm -rf "$1"/var/lib/apt/lists/*' \
    bookworm "$tmp/rootfs.tar" "$sources"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sleep", "infinity"]' \
    "$tmp/rootfs.tar" "$tag" >/dev/null
  echo "image: built $tag in $(( $(date +%s) - start )) s"
fi
docker tag "$tag" "$repo:current"
for old in $(docker images --format '{{.Repository}}:{{.Tag}}' "$repo"); do
  # A tag a running container still uses (another run's) stays.
  [ "$old" = "$tag" ] || [ "$old" = "$repo:current" ] || docker rmi "$old" >/dev/null 2>&1 || echo "image: $old in use, kept"
done
