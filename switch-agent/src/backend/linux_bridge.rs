//! Linux bridge backend: FDB through rtnetlink, MDB through our own netlink codec.
