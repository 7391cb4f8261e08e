//! The reusable test switch (`testlab::TestSnmpd`) as a lab uses it: snmpd inside the
//! switch's namespace, reached from a client in that namespace (as an agent there would).
//! Needs root. Run: `cargo test -p subcast-snmp --test test_switch`.

use std::path::PathBuf;
use std::time::Duration;
use subcast_snmp::passpersist::netns;
use subcast_snmp::testlab::{Lab, SnmpdError, TestSnmpd, V3User};
use subcast_snmp::{PortSet, SnmpConfig, SnmpSwitch};

fn handler() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_subcast-qbridge-passpersist"))
}

/// Runs `f` on a thread inside namespace `ns` with its own tokio runtime.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        netns::enter(&ns).expect("enter the switch namespace");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
    .join()
    .expect("client thread")
}

#[test]
fn snmpd_inside_the_switch_namespace_serves_its_bridge_over_v2c_and_v3() {
    // The lab gives a bridge br0 with two ports in its own namespace; no snmpd yet.
    let lab = Lab::new(2);
    let snmpd = TestSnmpd::builder(handler(), lab.dir.join("ts"))
        .netns(&lab.bridge_ns)
        .v3(V3User::new("labuser", "lab-auth-pass", "lab-priv-pass"))
        .start()
        .expect("start the test switch");
    assert!(snmpd.runs_in_netns());
    assert_eq!(snmpd.address().to_string(), "127.0.0.1:1161");
    let v3 = snmpd.v3_config().expect("v3 user");
    // The credentials file for an agent says the same.
    let from_file = SnmpConfig::from_yaml(&snmpd.credentials_yaml()).expect("credentials yaml");
    assert_eq!(from_file, v3);
    let v2 = snmpd.v2c_config();
    let p1 = lab.port_no(&lab.hosts[0]);
    let g: std::net::Ipv6Addr = "ff3e::a:1".parse().unwrap();

    let ports = in_netns(&lab.bridge_ns, move || {
        Box::pin(async move {
            let sw3 = SnmpSwitch::connect(v3).await.expect("v3 connect");
            let sw2 = SnmpSwitch::connect(v2).await.expect("v2c connect");
            sw3.install(g, &PortSet::from([p1])).await.expect("install");
            let ports = sw2.port_ifindexes().await.expect("port list");
            (ports, sw2.parent_ports(1, g).await.expect("read back"))
        })
    });
    assert_eq!(ports.0.len(), 2);
    assert_eq!(ports.1, Some(PortSet::from([p1])));
    assert_eq!(
        lab.static_mdb(),
        vec![("ff3e::a:1".to_string(), lab.hosts[0].bridge_if.clone())]
    );
    assert!(snmpd.handler_log().contains("row programmed"));
}

#[test]
fn a_missing_bridge_is_reported_with_the_handler_log() {
    let lab = Lab::new(1);
    let e = TestSnmpd::builder(handler(), lab.dir.join("ts"))
        .netns(&lab.bridge_ns)
        .bridge("nosuchbr")
        .ready_timeout(Duration::from_secs(2))
        .start()
        .unwrap_err();
    assert!(matches!(e, SnmpdError::NotReady { .. }), "{e}");
    assert!(e.to_string().contains("no bridge `nosuchbr`"), "{e}");
}
