//! Replicast messages between storage nodes (owned by the storage-node work; see storage-node/).
