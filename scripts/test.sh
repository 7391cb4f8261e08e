#!/usr/bin/env bash
# Runs every test of the workspace, as CI does. Installs what the tests need
# (Debian packages, xml2rfc) when missing. Needs root for the network
# namespace, Open vSwitch and snmpd tests; as a normal user those tests
# print a skip line and the rest still runs.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh --quick    # skip clippy, draft rendering and the fuzz build
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

step() { printf '\n==> %s\n' "$*"; }

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need_pkgs+=(iproute2)
have bridge || need_pkgs+=(iproute2)
have nft || need_pkgs+=(nftables)
have tcpdump || need_pkgs+=(tcpdump)
have tshark || need_pkgs+=(tshark)
have ethtool || need_pkgs+=(ethtool)
have ping || need_pkgs+=(iputils-ping)
have socat || need_pkgs+=(socat)
have ovs-vswitchd || need_pkgs+=(openvswitch-switch openvswitch-common)
have snmpd || need_pkgs+=(snmpd)
have snmpget || need_pkgs+=(snmp)
have brctl || need_pkgs+=(bridge-utils)
have mn || need_pkgs+=(mininet)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || need_pkgs+=(python3-yaml)  # the Mininet script
have tc || need_pkgs+=(iproute2)
have glusterd || need_pkgs+=(glusterfs-server)  # the GlusterFS peer (labs::gluster)
have glusterfs || need_pkgs+=(glusterfs-client)
have python3 || need_pkgs+=(python3)  # the peer's bench client (libgfapi via ctypes)
have iperf3 || need_pkgs+=(iperf3)                 # labs: rate_mbit shaping test
have chromium || need_pkgs+=(chromium)             # labs: status page in headless Chromium
have prometheus || need_pkgs+=(prometheus)         # labs/tests/metrics.rs (prometheus, promtool)
have kramdown-rfc2629 || need_pkgs+=(ruby-kramdown-rfc2629)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
  else
    echo "missing packages (run as root to install): ${need_pkgs[*]}" >&2
  fi
fi
if ! have xml2rfc && [ $quick = 0 ]; then
  step "installing xml2rfc (PyPI)"
  python3 -m pip install -q xml2rfc || echo "xml2rfc could not be installed; the draft will not be rendered" >&2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

if [ $quick = 0 ]; then
  step "cargo clippy --all-targets -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
fi

if [ "$(id -u)" = 0 ]; then export SUBCAST_LABS_REQUIRED=1; fi  # lab tests must not skip as root

step "cargo test (workspace)"
cargo test --workspace --no-fail-fast -- --test-threads="${SUBCAST_TEST_THREADS:-2}"

if [ $quick = 0 ]; then
  step "fuzz targets compile"
  cargo check --manifest-path fuzz/Cargo.toml --bins

  step "render the Internet-Draft"
  ./draft-spec/render.sh
fi

step "all tests passed"
