//! Captures count everything that arrived, also when tcpdump itself did not get
//! the CPU for a while (a busy machine): stopping waits until tcpdump's own
//! counters show every matching packet written, instead of "the file stopped
//! growing for 50 ms" (tcpdump exits on SIGINT without writing what is still in its
//! ring buffer).

use std::time::Duration;

use labs::{Lab, LabOptions, Topology, topology_path};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn a_starved_tcpdump_still_counts_every_datagram() {
    if !labs::lab_tests_enabled() {
        println!("SKIP a_starved_tcpdump_still_counts_every_datagram: needs root");
        return;
    }
    let topo = Topology::from_yaml_file(topology_path("one-switch.yaml")).unwrap();
    let lab = Lab::build(&topo, LabOptions::default()).unwrap();
    let group = "ff05::5c:2:33".parse().unwrap();
    lab.static_group(group, &["H2"]).unwrap();
    let to_h1 = "ff05::5c:2:34".parse().unwrap();
    lab.static_group(to_h1, &["H1"]).unwrap();
    for round in 0..3 {
        let cap = lab.capture("H2", &format!("dst {group}")).unwrap();
        let pid = Pid::from_raw(i32::try_from(cap.pid()).unwrap());
        // tcpdump does not run while the datagrams arrive, nor for 300 ms after.
        kill(pid, Signal::SIGSTOP).unwrap();
        lab.send_multicast("H1", group, 5000, 200, 100).unwrap();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            kill(pid, Signal::SIGCONT).unwrap();
        });
        let c = cap.stop().unwrap();
        waker.join().unwrap();
        assert_eq!(c.kernel_dropped, 0);
        assert_eq!(c.datagrams, 200, "round {round}: {c:?}");
        // The sender's own capture (direction out) counts exactly its datagrams, not
        // what it receives.
        let eg = lab
            .capture_on(&lab.host("H1").netns, "eth0", "out", "")
            .unwrap();
        lab.send_multicast("H2", to_h1, 5000, 10, 100).unwrap();
        lab.send_multicast("H1", group, 5000, 7, 100).unwrap();
        assert_eq!(eg.stop().unwrap().datagrams, 7);
    }
}
