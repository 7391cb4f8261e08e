#!/usr/bin/env bash
# Regenerates the OpenFlow 1.3 captures in this directory from a private Open vSwitch.
# Needs root, openvswitch-switch, socat, python3. Everything runs in a private network
# namespace with a private OVS instance; both are removed on exit.
# Usage: sudo ofp13/tests/captures/generate.sh
#        sudo ONLY="bundle bundle-fail" ofp13/tests/captures/generate.sh   # just these files
set -euo pipefail
OUT="$(cd "$(dirname "$0")" && pwd)"
NS="ofcap$$"
DIR="$(mktemp -d /tmp/ofcap.XXXXXX)"
export OVS_RUNDIR="$DIR" OVS_LOGDIR="$DIR" OVS_DBDIR="$DIR" OVS_SYSCONFDIR="$DIR"
in_ns() { ip netns exec "$NS" "$@"; }
cleanup() {
    for p in ovs-vswitchd ovsdb-server; do
        [ -f "$DIR/$p.pid" ] && kill "$(cat "$DIR/$p.pid")" 2>/dev/null || true
    done
    sleep 0.2
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

ip netns add "$NS"
in_ns ip link set lo up
in_ns ip link add p1 type veth peer name h1
in_ns ip link add p2 type veth peer name h2
for l in p1 h1 p2 h2; do in_ns ip link set "$l" up; done
ovsdb-tool create "$DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
in_ns ovsdb-server "$DIR/conf.db" --remote="punix:$DIR/db.sock" --pidfile --detach --log-file
in_ns ovs-vsctl --no-wait init
in_ns ovs-vswitchd "unix:$DIR/db.sock" --pidfile --detach --log-file
in_ns ovs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev protocols=OpenFlow13 \
    fail_mode=secure other-config:datapath-id=00000000000000aa \
    -- add-port br0 p1 -- set interface p1 ofport_request=1 \
    -- add-port br0 p2 -- set interface p2 ofport_request=2
in_ns ovs-vsctl set-controller br0 ptcp:6653:127.0.0.1
for _ in $(seq 50); do in_ns ovs-ofctl -O OpenFlow13 probe tcp:127.0.0.1:6653 2>/dev/null && break; sleep 0.1; done

wait_listen() {
    for _ in $(seq 100); do
        in_ns ss -ltnH "sport = :$1" | grep -q . && return 0
        sleep 0.05
    done
    echo "socat relay on port $1 did not start" >&2
    return 1
}
PKT=333300000001020000000001""86dd""6000000000081101""fd000000000000000000000000000001""ff3e0000000000000000000080000001""1f901f9000080000

# Runs one ovs-ofctl command through a socat relay that records both directions.
N=0
capture() {
    local name="$1"; shift
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
    N=$((N + 1))
    local port=$((7000 + N))
    ip netns exec "$NS" socat -r "$DIR/$name.c2s" -R "$DIR/$name.s2c" \
        "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" TCP:127.0.0.1:6653 &
    local relay=$!
    wait_listen "$port"
    local args=()
    for a in "$@"; do args+=("${a//@SW@/tcp:127.0.0.1:$port}"); done
    in_ns ovs-ofctl -O OpenFlow13 "${args[@]}" || true
    sleep 0.2
    kill "$relay" 2>/dev/null || true
    wait "$relay" 2>/dev/null || true
    python3 - "$DIR/$name" "$OUT/$name.hex" "$name" "$*" <<'PY'
import sys
base, out, name, cmd = sys.argv[1:5]
names = {0:"HELLO",1:"ERROR",2:"ECHO_REQUEST",3:"ECHO_REPLY",4:"EXPERIMENTER",5:"FEATURES_REQUEST",
         6:"FEATURES_REPLY",9:"SET_CONFIG",10:"PACKET_IN",12:"PORT_STATUS",13:"PACKET_OUT",
         14:"FLOW_MOD",15:"GROUP_MOD",18:"MULTIPART_REQUEST",19:"MULTIPART_REPLY",
         20:"BARRIER_REQUEST",21:"BARRIER_REPLY"}
lines = [f"# {name}: ovs-ofctl -O OpenFlow13 {cmd}",
         "# one OpenFlow message per line; c2s = ovs-ofctl -> ovs-vswitchd, s2c = back"]
for d in ("c2s", "s2c"):
    try:
        b = open(f"{base}.{d}", "rb").read()
    except FileNotFoundError:
        b = b""
    i = 0
    while i + 8 <= len(b):
        n = int.from_bytes(b[i+2:i+4], "big")
        if n < 8 or i + n > len(b):
            break
        m = b[i:i+n]
        if n > 8192:
            # TABLE_FEATURES replies (~60 KB each) are left out to keep the files small.
            lines.append(f"# {d} {names.get(m[1], 'type ' + str(m[1]))} ({n} bytes) omitted: over 8192 bytes")
            i += n
            continue
        lines.append(f"# {d} {names.get(m[1], 'type ' + str(m[1]))} ({n} bytes)")
        lines.append(f"{d} {m.hex()}")
        i += n
open(out, "w").write("\n".join(lines) + "\n")
PY
}

capture add-group add-group @SW@ 'group_id=7,type=all,bucket=output:1,bucket=output:2'
capture add-group-exists add-group @SW@ 'group_id=7,type=all,bucket=output:1'
capture mod-group mod-group @SW@ 'group_id=7,type=all,bucket=output:2'
capture add-flow add-flow @SW@ 'cookie=0x5c0000000000000a,priority=100,ipv6,ipv6_dst=ff3e::8000:1,actions=group:7'
capture add-flow-mac add-flow @SW@ 'priority=10,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,actions=output:2'
capture add-flow-miss add-flow @SW@ 'priority=0,actions=CONTROLLER:65535'
capture add-flow-vlan add-flow @SW@ 'priority=20,dl_vlan=10,actions=goto_table:1'
capture dump-groups dump-groups @SW@
capture dump-flows dump-flows @SW@
capture dump-ports-desc dump-ports-desc @SW@
capture del-groups del-groups @SW@ group_id=7
capture probe probe @SW@
capture packet-out packet-out @SW@ 1 output:2 "$PKT"
# Bundles (ONF extension 230 on OpenFlow 1.3): a group and its flow committed
# atomically, and a bundle the switch refuses (MODIFY of an unknown group), which
# discards every message in it.
printf '%s\n' 'group add group_id=0x5c000001,type=all,bucket=output:1,bucket=output:2' \
    'flow add table=1,cookie=0x5c00000000000001,priority=100,ipv6,ipv6_dst=ff05::5c:2:1,actions=group:0x5c000001' \
    > "$DIR/bundle.txt"
capture bundle bundle @SW@ "$DIR/bundle.txt"
printf '%s\n' 'group add group_id=0x5c000002,type=all,bucket=output:1' \
    'group mod group_id=0x5c0000ff,type=all,bucket=output:2' > "$DIR/bundle-fail.txt"
capture bundle-fail bundle @SW@ "$DIR/bundle-fail.txt"
capture group-features dump-group-features @SW@
if [ -n "${ONLY:-}" ]; then exit 0; fi
# Packet-in and port status to a monitoring connection.
capture_monitor() {
    N=$((N + 1))
    local port=$((7000 + N)) name=monitor
    ip netns exec "$NS" socat -r "$DIR/$name.c2s" -R "$DIR/$name.s2c" \
        "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" TCP:127.0.0.1:6653 &
    local relay=$!
    wait_listen "$port"
    ip netns exec "$NS" timeout 2 ovs-ofctl -O OpenFlow13 monitor "tcp:127.0.0.1:$port" 65534 >/dev/null 2>&1 &
    sleep 0.5
    in_ns ovs-ofctl -O OpenFlow13 packet-out tcp:127.0.0.1:6653 1 controller "$PKT"
    in_ns ip link add p3 type veth peer name h3
    in_ns ovs-vsctl add-port br0 p3 -- set interface p3 ofport_request=3
    sleep 1.8
    kill "$relay" 2>/dev/null || true
    wait 2>/dev/null || true
}
capture_monitor
python3 - "$DIR/monitor" "$OUT/monitor.hex" monitor "monitor SWITCH 65534 (plus a packet-out with action controller and ovs-vsctl add-port p3)" <<'PY'
import sys
base, out, name, cmd = sys.argv[1:5]
lines = [f"# {name}: ovs-ofctl -O OpenFlow13 {cmd}",
         "# one OpenFlow message per line; c2s = ovs-ofctl -> ovs-vswitchd, s2c = back"]
for d in ("c2s", "s2c"):
    b = open(f"{base}.{d}", "rb").read()
    i = 0
    while i + 8 <= len(b):
        n = int.from_bytes(b[i+2:i+4], "big")
        if n < 8 or i + n > len(b):
            break
        lines.append(f"# {d} type {b[i+1]} ({n} bytes)")
        lines.append(f"{d} {b[i:i+n].hex()}")
        i += n
open(out, "w").write("\n".join(lines) + "\n")
PY
# A minimal controller (Python) that the bridge connects to: it sends HELLO,
# FEATURES_REQUEST, PORT_DESC request and BARRIER_REQUEST and records 3 s of what
# the switch sends (standard OF1.3 PACKET_IN from a packet-out with action
# controller, PORT_STATUS from adding port p4).
cat > "$DIR/ctl.py" <<'PY'
import socket, sys, time
base, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
open(base + ".ready", "w").close()
c, _ = srv.accept()
msgs = [bytes.fromhex(h) for h in (
    "04000010000000010001000800000010",  # HELLO, bitmap = 1.3
    "0405000800000002",                  # FEATURES_REQUEST
    "0412001000000003000d000000000000",  # MULTIPART_REQUEST PORT_DESC
    "0414000800000004",                  # BARRIER_REQUEST
)]
c.sendall(b"".join(msgs))
open(base + ".c2s", "wb").write(b"".join(msgs))
c.settimeout(0.2)
got = b""
end = time.time() + 3
while time.time() < end:
    try:
        d = c.recv(65536)
        if not d:
            break
        got += d
    except socket.timeout:
        pass
open(base + ".s2c", "wb").write(got)
c.close()
PY
N=$((N + 1))
CPORT=$((7000 + N))
ip netns exec "$NS" python3 "$DIR/ctl.py" "$DIR/controller" "$CPORT" &
CTL=$!
for _ in $(seq 100); do [ -f "$DIR/controller.ready" ] && break; sleep 0.05; done
in_ns ovs-vsctl set-controller br0 ptcp:6653:127.0.0.1 "tcp:127.0.0.1:$CPORT"
sleep 1.2
in_ns ovs-ofctl -O OpenFlow13 packet-out tcp:127.0.0.1:6653 1 controller "$PKT"
in_ns ip link add p4 type veth peer name h4
in_ns ovs-vsctl add-port br0 p4 -- set interface p4 ofport_request=4
wait "$CTL" || true
python3 - "$DIR/controller" "$OUT/controller.hex" controller "(none: ovs-vswitchd connects to a Python controller, see generate.sh)" <<'PY'
import sys
base, out, name, cmd = sys.argv[1:5]
lines = [f"# {name}: {cmd}",
         "# one OpenFlow message per line; c2s = controller -> ovs-vswitchd, s2c = back"]
for d in ("c2s", "s2c"):
    b = open(f"{base}.{d}", "rb").read()
    i = 0
    while i + 8 <= len(b):
        n = int.from_bytes(b[i+2:i+4], "big")
        if n < 8 or i + n > len(b):
            break
        lines.append(f"# {d} type {b[i+1]} ({n} bytes)")
        lines.append(f"{d} {b[i:i+n].hex()}")
        i += n
open(out, "w").write("\n".join(lines) + "\n")
PY
ls -l "$OUT"
