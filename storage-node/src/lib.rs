//! Replicast storage node and client: chunks by BLAKE3, put over rendezvous groups, objects by name.
