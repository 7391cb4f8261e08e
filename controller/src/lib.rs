//! The controller: config, address pool, leases, fan-out to agents, REST API, SQLite.
