//! Where a node decides how much work it takes: receives (count, buffered
//! octets, per sender, free space), fetches served (count, per requester,
//! datagram size), disk reads in flight and queued answers. Every limit
//! comes from the config's `node:` section; every refusal is counted by
//! reason and, for a PUT_ACCEPT, answered with a PUT_ACK saying why.

use subcast_proto::replicast::AckStatus;

/// A node's resource limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Receives in progress at most (bids say "busy" beyond).
    pub max_concurrent: usize,
    /// Octets of chunk buffers held for receives and for writes not yet
    /// done, at most.
    pub max_receive_bytes: u64,
    /// Receives from one sender at most.
    pub max_receives_per_peer: usize,
    /// Largest chunk accepted.
    pub max_chunk_size: usize,
    /// Disk octets kept free.
    pub reserve_bytes: u64,
    /// Fetches served at once at most.
    pub max_serves: usize,
    /// Fetches served to one requester at once at most.
    pub max_serves_per_peer: usize,
    /// Disk reads in flight (offers and fetches) at most.
    pub max_reads: usize,
    /// Smallest payload per DATA datagram a fetch may ask for (a smaller
    /// chunk is sent whole).
    pub min_fetch_payload: usize,
    /// Answers queued for sending at most.
    pub max_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 16,
            max_receive_bytes: 256 << 20,
            max_receives_per_peer: 8,
            max_chunk_size: 16 << 20,
            reserve_bytes: 64 << 20,
            max_serves: 32,
            max_serves_per_peer: 4,
            max_reads: 32,
            min_fetch_payload: 512,
            max_queue: 4096,
        }
    }
}

/// What a node has taken on when a PUT_ACCEPT arrives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub receives: usize,
    pub receives_of_sender: usize,
    /// Octets buffered for receives.
    pub receive_bytes: u64,
    /// Octets handed to the disk and not yet written.
    pub storing_bytes: u64,
    pub free_bytes: u64,
}

impl Limits {
    /// Whether a transfer of `size` octets may start; the refusal is the
    /// PUT_ACK status that says why.
    pub fn admit_receive(&self, size: u64, l: &Load) -> Result<(), AckStatus> {
        if size > self.max_chunk_size as u64 {
            return Err(AckStatus::TooLarge);
        }
        let committed = l.receive_bytes + l.storing_bytes;
        if l.free_bytes
            < size
                .saturating_add(committed)
                .saturating_add(self.reserve_bytes)
        {
            return Err(AckStatus::Full);
        }
        // Chunks waiting for the disk hold their buffers too: a slow disk
        // makes the node busy instead of growing its memory.
        if l.receives >= self.max_concurrent
            || l.receives_of_sender >= self.max_receives_per_peer
            || committed.saturating_add(size) > self.max_receive_bytes
        {
            return Err(AckStatus::Busy);
        }
        Ok(())
    }

    /// Whether a fetch of a `chunk`-octet chunk in datagrams of `per`
    /// octets may be served; the refusal reason (counted, not answered).
    pub fn admit_fetch(
        &self,
        chunk: usize,
        per: usize,
        serves: usize,
        serves_of_peer: usize,
    ) -> Result<(), &'static str> {
        if per < self.min_fetch_payload.min(chunk.max(1)) {
            return Err("fetch-datagrams-too-small");
        }
        if serves >= self.max_serves || serves_of_peer >= self.max_serves_per_peer {
            return Err("busy-serving");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_refused_by_reason() {
        let l = Limits {
            max_concurrent: 2,
            max_receive_bytes: 1000,
            max_receives_per_peer: 1,
            max_chunk_size: 600,
            reserve_bytes: 100,
            ..Limits::default()
        };
        let free = Load {
            free_bytes: 10_000,
            ..Load::default()
        };
        assert_eq!(l.admit_receive(500, &free), Ok(()));
        assert_eq!(l.admit_receive(601, &free), Err(AckStatus::TooLarge));
        let full = Load {
            free_bytes: 650,
            storing_bytes: 100,
            ..free
        };
        assert_eq!(l.admit_receive(500, &full), Err(AckStatus::Full));
        for busy in [
            Load {
                receives: 2,
                ..free
            },
            Load {
                receives_of_sender: 1,
                ..free
            },
            Load {
                receive_bytes: 600,
                ..free
            },
            Load {
                storing_bytes: 600,
                ..free
            },
        ] {
            assert_eq!(l.admit_receive(500, &busy), Err(AckStatus::Busy));
        }
    }

    #[test]
    fn fetches_refused_by_reason() {
        let l = Limits::default();
        assert_eq!(
            l.admit_fetch(1 << 20, 1, 0, 0),
            Err("fetch-datagrams-too-small")
        );
        assert_eq!(l.admit_fetch(100, 100, 0, 0), Ok(()), "a small chunk whole");
        assert_eq!(l.admit_fetch(1 << 20, 1372, 32, 0), Err("busy-serving"));
        assert_eq!(l.admit_fetch(1 << 20, 1372, 3, 4), Err("busy-serving"));
        assert_eq!(l.admit_fetch(1 << 20, 1372, 3, 3), Ok(()));
    }
}
