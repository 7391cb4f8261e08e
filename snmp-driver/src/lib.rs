//! Q-BRIDGE-MIB static multicast over SNMP v2c/v3, and a pass_persist handler that serves Q-BRIDGE-MIB from a Linux bridge.
