//! Open vSwitch backend: the agent is the OpenFlow 1.3 controller of its bridge.
