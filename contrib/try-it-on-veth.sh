#!/usr/bin/env bash
# xlb in front of two web servers, everything on veth in network namespaces,
# set up with the README's own commands: the block between the README markers
# below is the README's "Trying it on veth" section, word for word (a test
# checks that they are equal, and runs this script).
#
# Usage (as root, from the repository, after `cargo build --release`):
#   contrib/try-it-on-veth.sh [PREFIX]
# PREFIX names everything it creates: namespaces PREFIX-sw, PREFIX-c0,
# PREFIX-lb, PREFIX-b0, PREFIX-b1, the xlb instance PREFIX (pins under
# /sys/fs/bpf/xlb/PREFIX), the decap instances decap-PREFIX-b0/-b1 and the
# API socket /run/xlb/PREFIX.sock. Default: xlb-try-<this shell's pid>.
# XLB=path/to/xlb picks the binary (default target/release/xlb). Everything
# is removed when the script ends, also when a step fails.
set -euo pipefail

P=${1:-xlb-try-$$}
XLB=${XLB:-target/release/xlb}
[ -x "$XLB" ] || { echo "no xlb binary at $XLB: run cargo build --release (or set XLB)" >&2; exit 1; }
# As `install target/release/xlb /usr/local/bin/` would, without touching the host.
PATH="$(cd "$(dirname "$XLB")" && pwd):$PATH"
DIR=$(mktemp -d "/tmp/$P.XXXXXX")

cleanup() {
    status=$?
    set +e
    if [ $status -ne 0 ] && [ -s "$DIR/xlb.log" ]; then
        echo "--- xlb run's log:" >&2
        cat "$DIR/xlb.log" >&2
    fi
    jobs -p | xargs -r kill 2>/dev/null
    wait 2>/dev/null
    xlb --instance "$P" --socket "/run/xlb/$P.sock" down >/dev/null 2>&1
    for b in b0 b1; do
        nsenter --net="/var/run/netns/$P-$b" xlb --instance "decap-$P-$b" decap detach >/dev/null 2>&1
    done
    for h in c0 lb b0 b1 sw; do ip netns del "$P-$h" 2>/dev/null; done
    rm -rf "$DIR"
    exit $status
}
trap cleanup EXIT

mkdir -p "$DIR/b0" "$DIR/b1"
echo "backend b0" >"$DIR/b0/index.html"
echo "backend b1" >"$DIR/b1/index.html"
cat >"$DIR/xlb.toml" <<TOML
[global]
instance = "$P"
interfaces = ["eth0"]
outer_source_v4 = "10.77.0.2"
api_socket = "/run/xlb/$P.sock"

[[vip]]
name = "web"
address = "10.100.0.1"
port = 80
  [vip.health_check]
  kind = "http"
  path = "/"
  interval = "2s"
  [[vip.backend]]
  address = "10.77.0.11"
  [[vip.backend]]
  address = "10.77.0.12"
TOML

# >>> README "Trying it on veth"
# A bridge (the "switch") and four namespaces on it: a client, the balancer
# and two backends, each with an eth0.
ip netns add $P-sw
ip -n $P-sw link add br0 mtu 1600 type bridge
ip -n $P-sw link set br0 up
for h in c0 lb b0 b1; do
  ip netns add $P-$h
  ip -n $P-sw link add $h mtu 1600 type veth peer name eth0 mtu 1600 netns $P-$h
  ip -n $P-sw link set $h master br0 up
  ip -n $P-$h link set lo up
  ip -n $P-$h link set eth0 up
done
ip -n $P-c0 addr add 10.77.0.10/24 dev eth0
ip -n $P-lb addr add 10.77.0.2/24 dev eth0
ip -n $P-b0 addr add 10.77.0.11/24 dev eth0
ip -n $P-b1 addr add 10.77.0.12/24 dev eth0
ip -n $P-c0 route add 10.100.0.1/32 via 10.77.0.2
# A veth leaves checksums to the receiver ("partial"); once XDP has rewritten
# the packet nobody completes them: the sender computes them itself.
ip netns exec $P-c0 ethtool -K eth0 tx off >/dev/null
ip netns exec $P-lb sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.eth0.forwarding=1

# Backends: the VIP on lo, xlb_decap strips the outer header, and the web
# server listens on every address: clients reach it through the VIP, health
# checks at the backend's own address.
for b in b0 b1; do
  ip -n $P-$b addr add 10.100.0.1/32 dev lo
  ip netns exec $P-$b sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
done
nsenter --net=/var/run/netns/$P-b0 xlb --instance decap-$P-b0 decap attach --interface eth0 --address 10.77.0.11 --allow-source 10.77.0.2 --vip 10.100.0.1
nsenter --net=/var/run/netns/$P-b1 xlb --instance decap-$P-b1 decap attach --interface eth0 --address 10.77.0.12 --allow-source 10.77.0.2 --vip 10.100.0.1
nsenter --net=/var/run/netns/$P-b0 python3 -m http.server -b 0.0.0.0 -d $DIR/b0 80 >/dev/null 2>&1 &
nsenter --net=/var/run/netns/$P-b1 python3 -m http.server -b 0.0.0.0 -d $DIR/b1 80 >/dev/null 2>&1 &
# Wait until both answer: a client arriving earlier gets a reset, which
# the backend sends straight back to it (DSR), not a retry.
for b in b0 b1; do for i in $(seq 50); do ip netns exec $P-$b curl -s -o /dev/null http://127.0.0.1/ && break; sleep 0.1; done; done

# The balancer. Its eth0 is a veth: the frames it sends back out (XDP_TX)
# reach the switch only if the peer ("lb" in the switch) runs a native XDP
# program. xlb says so when it starts; `xlb pass attach` puts one there
# (or start it with `--veth-peer attach`).
nsenter --net=/var/run/netns/$P-lb xlb run --config $DIR/xlb.toml 2>$DIR/xlb.log &
export XLB_SOCKET=/run/xlb/$P.sock
for i in $(seq 50); do xlb vip list >/dev/null 2>&1 && break; sleep 0.2; done
xlb vip list
grep -o "has no native XDP program" $DIR/xlb.log
nsenter --net=/var/run/netns/$P-sw xlb --instance $P pass attach --interface lb

# Traffic through the VIP, answered by both backends directly (DSR).
for i in $(seq 20); do ip netns exec $P-c0 curl -s --max-time 2 http://10.100.0.1/; done | sort | uniq -c
xlb stats
xlb --instance $P down
# <<< README

# Beyond the README: what the steps above must have shown.
if ip netns exec "$P-c0" curl -s --max-time 2 http://10.100.0.1/; then
    echo "FAIL: the VIP still answered after xlb down" >&2
    exit 1
fi
if [ -e "/sys/fs/bpf/xlb/$P" ]; then
    echo "FAIL: xlb down left /sys/fs/bpf/xlb/$P" >&2
    exit 1
fi
echo "try-it-on-veth: OK"
