//! SNMP backend: Q-BRIDGE-MIB static multicast through `subcast-snmp`.
