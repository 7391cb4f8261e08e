//! Network-namespace labs: topology builder, packet counting from outside, demo and benchmarks.
