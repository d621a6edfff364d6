#!/usr/bin/env bash
# Starts dockerd if it is not answering (nothing starts it on this machine
# kind), with its own pidfile and log, and fails loudly if it cannot.
# Docker gets no iptables rules, no IP forwarding and no masquerading on
# the host, and its default bridge and address pools sit in 10.213.128.0/17,
# away from the namespace lab (10.250.0.0/24) and the Vagrant cluster's
# networks (10.213.0-3.0/24), which the Vagrantfile sets explicitly.
set -euo pipefail

pidfile=${NEUTRINO_DOCKERD_PIDFILE:-/run/neutrino-dockerd.pid}
log=${NEUTRINO_DOCKERD_LOG:-/var/log/neutrino-dockerd.log}

if docker info >/dev/null 2>&1; then
  echo "dockerd: running"
  exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd: not installed (run .ci/deps-vagrant)" >&2; exit 1; }

# A pidfile left by a dockerd that died makes the next one refuse to start.
if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  rm -f "$pidfile"
fi
setsid dockerd --pidfile "$pidfile" \
  --bip 10.213.255.1/24 --default-address-pool base=10.213.128.0/17,size=24 \
  --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  </dev/null >>"$log" 2>&1 &

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd: started (pid $(cat "$pidfile"), log $log)"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd: did not answer within 60 s; last lines of $log:" >&2
tail -n 30 "$log" >&2
exit 1
