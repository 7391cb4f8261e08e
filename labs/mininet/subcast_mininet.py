#!/usr/bin/python3
"""Run subcast on a Mininet network built from a subcast topology file.

For admins who already use Mininet 2.3 (Debian's python3-mininet): builds the
topology's switches as Linux bridges (`--switch linux-bridge`, the agents use
the Linux bridge backend) or as user-space Open vSwitch bridges of a private
OVS instance (`--switch ovs`, each agent is the OpenFlow 1.3 controller of
its bridge), attaches the hosts, starts one `subcast-agent` per switch and one
`subcast-controller`, asks the controller for a rendezvous
group over its HTTP API, sends datagrams from one host to the group, and
counts what every host receives with tcpdump on its interface (outside the
daemons). Prints a report (or JSON with --json); exits 1 if any target did not
get every datagram or any non-target got one.

Never calls Mininet's global cleanup (it kills processes by name across the
machine): it stops the network it made with net.stop() and ends only the
processes it started, by PID.

    sudo /usr/bin/python3 labs/mininet/subcast_mininet.py \
        labs/topologies/seed-three-switch.yaml --targets X1,X4,X8 --sender X2
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch
from mininet.nodelib import LinuxBridge

POOL = "ff15::5c:1:0/112"
GROUP_BASE = "ff15::5c:0:"
# `family: ipv4`: hosts at 10.92.HI.LO/16, IPv4 groups, IGMP snooping.
POOL_V4 = "239.92.128.0/24"
GROUP_BASE_V4 = "239.92.0."
VLAN = 0  # untagged: Mininet links carry no VLAN tags


def load_topology(path):
    with open(path) as f:
        topo = yaml.safe_load(f)
    for key in ("switches", "hosts"):
        if key not in topo:
            sys.exit(f"{path}: missing '{key}'")
    family = topo.setdefault("family", "ipv6")
    if family not in ("ipv6", "ipv4"):
        sys.exit(f"{path}: family: {family} is not supported by this script (one agent per "
                 "switch serves one family): use `family: ipv6` or `family: ipv4`")
    topo.setdefault("links", [])
    topo.setdefault("negotiating_groups", {})
    return topo


def natural_key(name):
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1)


def find_binary(name, explicit):
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    for profile in ("release", "debug"):
        p = os.path.join(here, "..", "..", "target", profile, name)
        if os.path.exists(p):
            return os.path.abspath(p)
    found = shutil.which(name)
    if not found:
        sys.exit(f"{name} not found: build it with `cargo build --release -p ...` or pass --{name.split('-')[-1]}-bin")
    return found


class Run:
    def __init__(self, args):
        self.args = args
        self.topo = load_topology(args.topology)
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="subcast-mn-")
        self.tag = f"{os.getpid() % 1000}"
        self.net = None

    # --- network -----------------------------------------------------------
    def start_ovs(self):
        """A private ovsdb-server + ovs-vswitchd (user-space datapath) whose
        files live in our temp dir; Mininet's ovs-vsctl calls find it through
        OVS_RUNDIR. Stopped by the PIDs in its pidfiles."""
        d = self.tmp
        os.environ["OVS_RUNDIR"] = d
        os.environ["OVS_DBDIR"] = d
        os.environ["OVS_LOGDIR"] = d
        db = os.path.join(d, "conf.db")
        sh(["ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"])
        sh(["ovsdb-server", db, f"--remote=punix:{d}/db.sock", f"--pidfile={d}/ovsdb-server.pid",
            "--detach", f"--log-file={d}/ovsdb-server.log"])
        self.ovs_pidfiles = [f"{d}/ovsdb-server.pid"]
        sh(["ovs-vsctl", f"--db=unix:{d}/db.sock", "--no-wait", "init"])
        sh(["ovs-vswitchd", f"unix:{d}/db.sock", f"--pidfile={d}/ovs-vswitchd.pid", "--detach",
            f"--log-file={d}/ovs-vswitchd.log"])
        self.ovs_pidfiles.insert(0, f"{d}/ovs-vswitchd.pid")

    def stop_ovs(self):
        for pf in getattr(self, "ovs_pidfiles", []):
            try:
                with open(pf) as f:
                    os.kill(int(f.read().strip()), 15)
            except (OSError, ValueError):
                pass

    def build(self):
        topo = self.topo
        hosts = sorted(topo["hosts"], key=natural_key)
        self.host_index = {h: i + 1 for i, h in enumerate(hosts)}
        switches = sorted(topo["switches"], key=natural_key)
        self.sw_name = {s: f"s{i + 1}x{self.tag}" for i, s in enumerate(switches)}
        cls = LinuxBridge if self.args.switch == "linux-bridge" else OVSSwitch
        if cls is OVSSwitch:
            self.start_ovs()
        self.net = Mininet(controller=None, autoSetMacs=False, build=False)
        for i, s in enumerate(switches):
            if cls is LinuxBridge:
                self.net.addSwitch(self.sw_name[s], cls=LinuxBridge, stp=False, dpid=f"{i + 1:016x}")
            else:
                self.net.addSwitch(self.sw_name[s], cls=OVSSwitch, datapath="user",
                                   failMode="secure", dpid=f"{i + 1:016x}", protocols="OpenFlow13")
        for h in hosts:
            n = self.host_index[h]
            self.net.addHost(h, ip=None, mac=f"02:5c:00:00:00:{n:02x}")
            self.net.addLink(h, self.sw_name[topo["hosts"][h]["switch"]])
        for a, b in topo["links"]:
            self.net.addLink(self.sw_name[a], self.sw_name[b])
        self.net.build()
        self.net.start()
        for h in hosts:
            node = self.net.get(h)
            n = self.host_index[h]
            node.cmd("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0")
            node.cmd(f"sysctl -qw net.ipv6.conf.{h}-eth0.accept_dad=0")
            node.cmd(f"ip -6 addr add fd00:5c::{n:x}/64 dev {h}-eth0 nodad")
            if self.ipv4:
                node.cmd(f"ip addr add {self.ipv4_of(h)}/16 dev {h}-eth0")
                node.cmd(f"ip route add 224.0.0.0/4 dev {h}-eth0")
            node.cmd(f"ethtool -K {h}-eth0 tx off >/dev/null 2>&1")
        if cls is LinuxBridge:
            for i, (s, br) in enumerate(sorted(self.sw_name.items())):
                # The querier needs a usable (not tentative) link-local source
                # address: Mininet's bridges live in the root namespace, where
                # DAD is on, and a querier whose first query fails waits ~31 s
                # for the next one.
                sh(["ip", "-6", "addr", "add", f"fe80::5c:2:{i + 1:x}/64", "dev", br, "nodad"])
                sh(["ip", "link", "set", br, "type", "bridge", "mcast_snooping", "1", "mcast_querier", "0",
                    "mcast_query_response_interval", "100", "mcast_hash_max", "65536"])
                sh(["ip", "link", "set", br, "type", "bridge", "mcast_querier", "1"])
                for intf in self.net.get(br).intfList():
                    if intf.link is None:
                        continue
                    peer = intf.link.intf1 if intf.link.intf2 == intf else intf.link.intf2
                    if peer.node.name in self.sw_name.values():
                        sh(["bridge", "link", "set", "dev", intf.name, "mcast_router", "0"])
        else:
            # Each bridge connects out to its agent (started next); until then
            # fail_mode=secure forwards nothing.
            base = self.port_base()
            for i, (s, br) in enumerate(sorted(self.sw_name.items())):
                sh(["ovs-vsctl", "set-controller", br, f"tcp:127.0.0.1:{base + 100 + i}"])
        time.sleep(1.5 if cls is OVSSwitch else 3.5)  # querier settles (~1-3 s)

    def learn(self):
        """Every switch learns every host MAC: each host pings all nodes once
        (for OVS, after the agents run: they learn from PACKET_IN)."""
        rounds = 1 if self.args.switch == "linux-bridge" else 3
        for _ in range(rounds):  # OVS: the agent learns from PACKET_IN while flows are installed
            for h in sorted(self.host_index, key=natural_key):
                self.net.get(h).cmd(f"ping -6 -c1 -W1 -I {h}-eth0 ff02::1 >/dev/null 2>&1")

    @property
    def ipv4(self):
        return self.topo["family"] == "ipv4"

    def ipv4_of(self, h):
        n = self.host_index[h]
        return f"10.92.{n >> 8}.{n & 0xff}"

    def pool(self):
        return POOL_V4 if self.ipv4 else POOL

    def port_base(self):
        return 20000 + (os.getpid() % 2000) * 10

    # --- daemons -----------------------------------------------------------
    def groups(self):
        out = []
        for i, (name, g) in enumerate(sorted(self.topo["negotiating_groups"].items())):
            if self.ipv4:
                members = [{"name": m, "ipv4": self.ipv4_of(m),
                            "mac": f"02:5c:00:00:00:{self.host_index[m]:02x}"} for m in g["members"]]
                parent = f"{GROUP_BASE_V4}{i + 1}"
            else:
                members = [{"name": m, "ipv6": f"fd00:5c::{self.host_index[m]:x}",
                            "mac": f"02:5c:00:00:00:{self.host_index[m]:02x}"} for m in g["members"]]
                parent = f"{GROUP_BASE}{i + 1:x}"
            out.append({"name": name, "vlan": VLAN, "parent": parent, "members": members})
        return out

    def start_daemons(self):
        key = os.path.join(self.tmp, "lab.key")
        with open(key, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(key, 0o600)
        # Agents seal with their own key: an agent refuses to take
        # instructions under a key it holds itself.
        agent_key = os.path.join(self.tmp, "agent.key")
        with open(agent_key, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(agent_key, 0o600)
        token = os.path.join(self.tmp, "admin.token")
        self.token = os.urandom(16).hex()
        with open(token, "w") as f:
            f.write(self.token + "\n")
        os.chmod(token, 0o600)
        base = self.port_base()
        lo = "127.0.0.1" if self.ipv4 else "[::1]"
        self.api = f"{lo}:{base}"
        ctl_udp = f"{lo}:{base + 1}"
        groups = self.groups()
        switches = []
        for i, (s, br) in enumerate(sorted(self.sw_name.items())):
            sid = i + 1
            agent_addr = f"{lo}:{base + 2 + i}"
            switches.append({"name": s, "id": sid, "vlans": [VLAN],
                             "agent": {"address": agent_addr, "key_id": 1, "agent_key_id": 101}})
            cfg = {
                "switch_id": sid,
                "backend": ({"kind": "linux-bridge", "bridge": br} if self.args.switch == "linux-bridge"
                            else {"kind": "openflow", "listen": f"127.0.0.1:{base + 100 + i}"}),
                "controller": ctl_udp,
                "listen": agent_addr,
                "key": {"id": 101, "file": agent_key},
                "controller_keys": [{"id": 1, "file": key}],
                "rendezvous_range": self.pool(),
                "heartbeat_interval_ms": 500,
                "parent_groups": [{"address": g["parent"], "vlan": VLAN, "members": g["members"]}
                                  for g in groups],
            }
            path = os.path.join(self.tmp, f"agent-{s}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(cfg, f)
            self.spawn([self.args.agent_bin, "run", "--config", path], f"agent-{s}")
        ctl = {
            "controller": {"id": 1, "udp_listen": ctl_udp, "database": ":memory:",
                           "agent_timeout_ms": 3000},
            "keys": [{"id": 1, "file": key}, {"id": 101, "file": agent_key}],
            "vlans": [{"id": VLAN, "name": "lab", "pool": [self.pool()]}],
            "switches": switches,
            "groups": groups,
            "leases": {"default_ms": 10000, "max_ms": 60000},
            "api": {"listen": self.api, "tokens": [{"role": "admin", "name": "mininet", "file": token}]},
        }
        path = os.path.join(self.tmp, "controller.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(ctl, f)
        self.spawn([self.args.controller_bin, "serve", "--config", path], "controller")
        # Wait until every agent is up at the controller.
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                agents = self.http("GET", "/v1/agents")
                items = agents if isinstance(agents, list) else agents.get("agents", [])
                if len(items) == len(switches) and all(a.get("state") == "up" for a in items):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        sys.exit("agents did not come up at the controller within 20 s; logs in " + self.tmp)

    def spawn(self, argv, name):
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info")))
        self.procs.append(p)
        return p

    def http(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{self.api}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None

    # --- scenario ----------------------------------------------------------
    def subset(self):
        groups = self.groups()
        group = groups[0]
        targets = self.args.targets.split(",") if self.args.targets else [m["name"] for m in group["members"][:3]]
        sender = self.args.sender or next(m["name"] for m in group["members"] if m["name"] not in targets)
        t0 = time.monotonic()
        lease = self.http("POST", "/v1/rendezvous", {"parent": group["parent"], "targets": targets})
        ready_ms = (time.monotonic() - t0) * 1000
        x = lease["group"]
        caps = {}
        for h in sorted(self.host_index, key=natural_key):
            pcap = os.path.join(self.tmp, f"{h}.pcap")
            caps[h] = (self.net.get(h).popen(
                ["tcpdump", "--immediate-mode", "-U", "-n", "-s", "256", "-B", "4096", "-Z", "root",
                 "-Q", "in", "-i", f"{h}-eth0", "-w", pcap,
                 f"udp and {'ip' if self.ipv4 else 'ip6'} dst {x}"], stderr=subprocess.PIPE,
                text=True), pcap)
        # tcpdump says "listening on ..." once its capture is active.
        for h, (p, _) in caps.items():
            line = p.stderr.readline()
            if "listening on" not in line:
                raise RuntimeError(f"tcpdump on {h} did not start: {line.strip()}")
        snd = self.net.get(sender)
        if self.ipv4:
            snd.cmd(f"/usr/bin/python3 -c \"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                    f"s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton('{self.ipv4_of(sender)}'));"
                    f"s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_TTL,1);"
                    f"[s.sendto(b'subcast'*20,('{x}',5000)) or __import__('time').sleep(0.001) for _ in range({self.args.count})]\"")
        else:
            snd.cmd(f"/usr/bin/python3 -c \"import socket,struct;s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);"
                    f"s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_IF,socket.if_nametoindex('{sender}-eth0'));"
                    f"s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_HOPS,1);"
                    f"[s.sendto(b'subcast'*20,('{x}',5000)) or __import__('time').sleep(0.001) for _ in range({self.args.count})]\"")
        time.sleep(1.0)
        counts = {}
        dropped = 0
        for h, (p, pcap) in caps.items():
            p.terminate()
            err = p.communicate()[1]
            for line in err.splitlines():
                if "dropped by kernel" in line:
                    dropped += int(line.split()[0])
            out = subprocess.run(["tcpdump", "-n", "-r", pcap], capture_output=True, text=True).stdout
            counts[h] = sum(1 for line in out.splitlines() if line.strip())
        ok = all(counts[h] == self.args.count for h in targets) and all(
            counts[h] == 0 for h in counts if h not in targets)
        self.http("DELETE", f"/v1/rendezvous/{lease['lease_id']}")
        return {"ok": ok, "switch": self.args.switch, "family": self.topo["family"],
                "group": x, "parent": group["parent"],
                "targets": targets, "sender": sender, "sent": self.args.count,
                "grant_ms": round(ready_ms, 2), "deliveries": counts,
                "capture_dropped": dropped}

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.net is not None:
            self.net.stop()
        self.stop_ovs()
        if not self.args.keep_logs:
            shutil.rmtree(self.tmp, ignore_errors=True)


def sh(argv):
    subprocess.run(argv, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("topology")
    ap.add_argument("--switch", choices=["linux-bridge", "ovs"], default="linux-bridge")
    ap.add_argument("--targets", help="comma-separated host names (default: first three members)")
    ap.add_argument("--sender", help="host that sends (default: first non-target member)")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--agent-bin")
    ap.add_argument("--controller-bin")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Mininet creates namespaces and bridges")
    args.agent_bin = find_binary("subcast-agent", args.agent_bin)
    args.controller_bin = find_binary("subcast-controller", args.controller_bin)
    setLogLevel("warning")
    run = Run(args)
    try:
        run.build()
        run.start_daemons()
        run.learn()
        result = run.subset()
    finally:
        run.stop()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"rendezvous group {result['group']} (parent {result['parent']}), granted in {result['grant_ms']} ms")
        print(f"sender {result['sender']} sent {result['sent']} datagrams; targets {', '.join(result['targets'])}")
        for h, n in sorted(result["deliveries"].items(), key=lambda kv: natural_key(kv[0])):
            role = "target" if h in result["targets"] else ("sender" if h == result["sender"] else "-")
            print(f"  {h:6} {role:7} {n:5} datagrams")
        print("OK" if result["ok"] else "FAILED")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
