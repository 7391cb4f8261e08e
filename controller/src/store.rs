//! Durable state in SQLite: leases, agents and the audit log.
//!
//! One connection lives on a dedicated thread; async callers send it
//! closures and await the answer. Writes that need not delay a grant
//! (audit rows, agent liveness) are sent without waiting; the single
//! thread keeps them in order.

use crate::leases::{Lease, LeaseState};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::path::Path;
use std::sync::mpsc;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database thread has stopped (see earlier errors)")]
    Gone,
    #[error("stored lease {0} is unreadable: {1}")]
    Corrupt(u64, String),
}

/// Handle to the database thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    /// Dropped with the last handle: stops the checkpoint thread.
    _checkpoint_stop: Option<std::sync::Arc<mpsc::Sender<()>>>,
}

/// One row of the audit log: an instruction to one agent and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at_ms: u64,
    pub txid: u64,
    pub lease_id: u64,
    pub switch_id: u32,
    /// SET_SUBSET or CLEAR.
    pub instruction: String,
    /// acked, naked, silent, abandoned.
    pub outcome: String,
    pub sends: u32,
    pub detail: String,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY,
    vlan INTEGER NOT NULL,
    parent TEXT NOT NULL,
    grp TEXT NOT NULL UNIQUE,
    targets TEXT NOT NULL,
    switches TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    requester TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    switch_id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    software_version TEXT NOT NULL,
    backend TEXT NOT NULL,
    last_hello_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    txid INTEGER NOT NULL,
    lease_id INTEGER NOT NULL,
    switch_id INTEGER NOT NULL,
    instruction TEXT NOT NULL,
    outcome TEXT NOT NULL,
    sends INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_lease ON audit(lease_id);
";

impl Store {
    /// Opens (creating if needed) the database at `path`, or an in-memory
    /// one for `None`.
    pub fn open(path: Option<&Path>) -> Result<Store, StoreError> {
        let mut conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(SCHEMA)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL checkpoints (the only fsyncs with synchronous=NORMAL) run on
        // their own connection and thread, off the grant path.
        let checkpoint_stop = match path {
            Some(p) => {
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                let ck = Connection::open(p)?;
                ck.busy_timeout(std::time::Duration::from_secs(5))?;
                let (stop_tx, stop_rx) = mpsc::channel::<()>();
                std::thread::Builder::new()
                    .name("sqlite-checkpoint".into())
                    .spawn(move || {
                        while let Err(mpsc::RecvTimeoutError::Timeout) =
                            stop_rx.recv_timeout(std::time::Duration::from_millis(500))
                        {
                            if let Err(e) =
                                ck.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                            {
                                tracing::warn!(error = %e, "WAL checkpoint failed");
                            }
                        }
                    })
                    .map_err(|_| StoreError::Gone)?;
                Some(std::sync::Arc::new(stop_tx))
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|_| StoreError::Gone)?;
        Ok(Store {
            tx,
            _checkpoint_stop: checkpoint_stop,
        })
    }

    /// Runs `f` on the database thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| StoreError::Gone)?;
        rx.await.map_err(|_| StoreError::Gone)?
    }

    /// Runs `f` on the database thread without waiting; errors are logged.
    pub fn submit<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&mut Connection) -> Result<(), StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |c| {
            if let Err(e) = f(c) {
                tracing::error!(error = %e, "database write ({what}) failed");
            }
        });
        if self.tx.send(job).is_err() {
            tracing::error!("database thread gone; {what} not recorded");
        }
    }

    pub async fn put_lease(&self, l: &Lease) -> Result<(), StoreError> {
        let l = l.clone();
        self.call(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO leases (id, vlan, parent, grp, targets, switches, created_ms, expires_ms, state, requester)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    l.id as i64,
                    l.vlan,
                    l.parent.to_string(),
                    l.group.to_string(),
                    serde_json::to_string(&l.targets).unwrap_or_default(),
                    serde_json::to_string(&l.switches).unwrap_or_default(),
                    l.created_ms as i64,
                    l.expires_ms as i64,
                    l.state.name(),
                    l.requester,
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub fn set_lease_state(&self, id: u64, state: LeaseState, expires_ms: u64) {
        self.submit("lease state", move |c| {
            c.execute(
                "UPDATE leases SET state = ?2, expires_ms = ?3 WHERE id = ?1",
                params![id as i64, state.name(), expires_ms as i64],
            )?;
            Ok(())
        });
    }

    pub async fn delete_lease(&self, id: u64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute("DELETE FROM leases WHERE id = ?1", params![id as i64])?;
            Ok(())
        })
        .await
    }

    pub async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.call(|c| {
            let mut st = c.prepare(
                "SELECT id, vlan, parent, grp, targets, switches, created_ms, expires_ms, state, requester FROM leases ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, u16>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)? as u64,
                    r.get::<_, i64>(7)? as u64,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, vlan, parent, grp, targets, switches, created_ms, expires_ms, state, requester) = row?;
                let bad = |what: &str| StoreError::Corrupt(id, what.to_owned());
                out.push(Lease {
                    id,
                    vlan,
                    parent: parent.parse().map_err(|_| bad("parent"))?,
                    group: grp.parse().map_err(|_| bad("group"))?,
                    targets: serde_json::from_str(&targets).map_err(|_| bad("targets"))?,
                    switches: serde_json::from_str(&switches).map_err(|_| bad("switches"))?,
                    created_ms,
                    expires_ms,
                    state: LeaseState::parse(&state).ok_or_else(|| bad("state"))?,
                    requester,
                });
            }
            Ok(out)
        })
        .await
    }

    pub fn audit(&self, entries: Vec<AuditEntry>) {
        if entries.is_empty() {
            return;
        }
        self.submit("audit", move |c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO audit (at_ms, txid, lease_id, switch_id, instruction, outcome, sends, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for e in entries {
                    st.execute(params![
                        e.at_ms as i64,
                        e.txid as i64,
                        e.lease_id as i64,
                        e.switch_id,
                        e.instruction,
                        e.outcome,
                        e.sends,
                        e.detail
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        });
    }

    /// Audit rows, newest last; of one lease if `lease_id` is given.
    pub async fn audit_log(
        &self,
        lease_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT at_ms, txid, lease_id, switch_id, instruction, outcome, sends, detail FROM audit
                 WHERE ?1 IS NULL OR lease_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![lease_id.map(|l| l as i64), limit], |r| {
                Ok(AuditEntry {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    txid: r.get::<_, i64>(1)? as u64,
                    lease_id: r.get::<_, i64>(2)? as u64,
                    switch_id: r.get(3)?,
                    instruction: r.get(4)?,
                    outcome: r.get(5)?,
                    sends: r.get(6)?,
                    detail: r.get(7)?,
                })
            })?;
            let mut v = rows.collect::<Result<Vec<_>, _>>()?;
            v.reverse();
            Ok(v)
        })
        .await
    }

    pub fn agent_hello(
        &self,
        switch_id: u32,
        address: String,
        software_version: String,
        backend: &'static str,
        at_ms: u64,
    ) {
        self.submit("agent hello", move |c| {
            c.execute(
                "INSERT OR REPLACE INTO agents (switch_id, address, software_version, backend, last_hello_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![switch_id, address, software_version, backend, at_ms as i64],
            )?;
            Ok(())
        });
    }

    /// Waits until every write sent before this call is done.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|_| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::Target;

    fn lease(id: u64) -> Lease {
        Lease {
            id,
            vlan: 10,
            parent: "ff15::1".parse().unwrap(),
            group: format!("ff15::5:{id}").parse().unwrap(),
            targets: vec![Target {
                name: "h1".into(),
                ipv6: "fd00::1".parse().unwrap(),
                mac: "02:00:00:00:00:01".parse().unwrap(),
            }],
            switches: vec![1, 2],
            created_ms: 5,
            expires_ms: 10,
            state: LeaseState::Pending,
            requester: "test".into(),
        }
    }

    #[tokio::test]
    async fn leases_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        {
            let s = Store::open(Some(&path)).unwrap();
            s.put_lease(&lease(1)).await.unwrap();
            s.put_lease(&lease(2)).await.unwrap();
            s.set_lease_state(2, LeaseState::Live, 99);
            s.delete_lease(1).await.unwrap();
            s.audit(vec![AuditEntry {
                at_ms: 1,
                txid: 2,
                lease_id: 2,
                switch_id: 3,
                instruction: "SET_SUBSET".into(),
                outcome: "acked".into(),
                sends: 1,
                detail: String::new(),
            }]);
            s.flush().await.unwrap();
        }
        let s = Store::open(Some(&path)).unwrap();
        let mut want = lease(2);
        want.state = LeaseState::Live;
        want.expires_ms = 99;
        assert_eq!(s.leases().await.unwrap(), vec![want]);
        let log = s.audit_log(Some(2), 10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].outcome, "acked");
        assert!(s.audit_log(Some(1), 10).await.unwrap().is_empty());
    }
}
