//! OpenFlow 1.3 codec (nom parser, bytes writer, tokio codec) for the Open vSwitch backend.
