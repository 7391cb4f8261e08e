//! Durable state in SQLite: groups, leases, pool marks, agents and the
//! audit log.
//!
//! The engine's writes arrive in batches (everything it produced in one
//! turn of the daemon's loop) and each batch is one transaction, applied
//! by the daemon's task right after it sent that turn's datagrams: the
//! write overlaps the agents' work and no thread hand-off sits on the
//! grant path. WAL with `synchronous = NORMAL`: a commit is a write to the
//! log without fsync (durable across a process crash, which is what
//! restart recovery needs); checkpoints run on their own thread and
//! connection. Reads (the audit log, recovery) run on a blocking thread.
//! A lease inserted and deleted in the same batch is never written.

use crate::engine::{GroupRow, Loaded, StoreOp, StoreWrite};
use crate::leases::{Lease, LeaseState};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database thread has stopped (see earlier errors)")]
    Gone,
    #[error("stored row {0} is unreadable: {1}")]
    Corrupt(String, String),
}

/// Rows the audit log keeps unless the config says otherwise.
pub const AUDIT_MAX_ROWS_DEFAULT: u64 = 1_000_000;
/// The audit log is pruned after this many rows were written since the last
/// prune (so it holds at most the limit plus this many).
pub const AUDIT_PRUNE_EVERY: u64 = 1000;

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// Audit rows kept (0: all) and rows written since the last prune.
    audit_max_rows: u64,
    audit_unpruned: Arc<std::sync::atomic::AtomicU64>,
    /// Dropped with the last handle: stops the checkpoint thread.
    _checkpoint_stop: Option<std::sync::Arc<mpsc::Sender<()>>>,
}

/// Which audit rows to read (every field that is set must match).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub lease: Option<u64>,
    /// Rows at or after this Unix time (ms).
    pub since_ms: Option<u64>,
    pub switch_id: Option<u32>,
    pub group: Option<std::net::Ipv6Addr>,
}

/// One row of the audit log: an instruction to one agent and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at_ms: u64,
    pub txid: u64,
    /// The lease that caused it (0: none, e.g. pre-enumeration).
    pub lease_id: u64,
    pub switch_id: u32,
    /// The rendezvous group it was about ("" in rows written before
    /// this column existed).
    pub group: String,
    /// SET_SUBSET, REFRESH, REPUSH or CLEAR.
    pub instruction: String,
    /// acked, naked, silent.
    pub outcome: String,
    pub sends: u32,
    pub detail: String,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS groups (
    grp TEXT PRIMARY KEY,
    vlan INTEGER NOT NULL,
    parent TEXT NOT NULL,
    targets TEXT NOT NULL,
    switches TEXT NOT NULL,
    hold_until_ms INTEGER NOT NULL,
    pinned INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pool_marks (
    vlan INTEGER PRIMARY KEY,
    upto INTEGER NOT NULL
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

const LEASES: &str = "
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY,
    vlan INTEGER NOT NULL,
    parent TEXT NOT NULL,
    grp TEXT NOT NULL,
    targets TEXT NOT NULL,
    switches TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    requester TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_grp ON leases(grp);
";

/// Schema version 0 had one lease per group (`grp UNIQUE`); version 1
/// allows several and adds groups and pool marks; version 2 adds the
/// group to audit rows.
fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 {
        migrate_v1(c)?;
    }
    if version < 2 {
        let has: bool = c.query_row(
            "SELECT count(*) FROM pragma_table_info('audit') WHERE name = 'grp'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        let tx = c.transaction()?;
        if !has {
            tx.execute_batch("ALTER TABLE audit ADD COLUMN grp TEXT NOT NULL DEFAULT '';")?;
        }
        tx.execute_batch(
            "CREATE INDEX IF NOT EXISTS audit_at ON audit(at_ms);
             CREATE INDEX IF NOT EXISTS audit_grp ON audit(grp);
             PRAGMA user_version = 2;",
        )?;
        tx.commit()?;
    }
    Ok(())
}

fn migrate_v1(c: &mut Connection) -> rusqlite::Result<()> {
    let old: bool = c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'leases'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let tx = c.transaction()?;
    if old {
        tx.execute_batch("ALTER TABLE leases RENAME TO leases_v0;")?;
        tx.execute_batch(LEASES)?;
        tx.execute_batch("INSERT INTO leases SELECT * FROM leases_v0; DROP TABLE leases_v0;")?;
    } else {
        tx.execute_batch(LEASES)?;
    }
    tx.execute_batch("PRAGMA user_version = 1;")?;
    tx.commit()
}

impl Store {
    /// Opens (creating if needed) the database at `path`, or an in-memory
    /// one for `None`.
    pub fn open(path: Option<&Path>) -> Result<Store, StoreError> {
        let mut conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
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
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            audit_max_rows: AUDIT_MAX_ROWS_DEFAULT,
            // Prune once soon after a start: a lower limit takes effect.
            audit_unpruned: Arc::new(AUDIT_PRUNE_EVERY.into()),
            _checkpoint_stop: checkpoint_stop,
        })
    }

    /// Keep at most `rows` audit rows (0: no limit); the oldest go first.
    pub fn with_audit_max_rows(mut self, rows: u64) -> Store {
        self.audit_max_rows = rows;
        self
    }

    /// After every [`AUDIT_PRUNE_EVERY`] rows written, delete all but the
    /// newest `audit_max_rows` (by id: rows are appended in time order).
    fn prune_audit(&self, c: &mut Connection, written: u64) {
        use std::sync::atomic::Ordering;
        if self.audit_max_rows == 0 {
            return;
        }
        let n = self.audit_unpruned.fetch_add(written, Ordering::Relaxed) + written;
        if n < AUDIT_PRUNE_EVERY {
            return;
        }
        self.audit_unpruned.store(0, Ordering::Relaxed);
        let r = c.execute(
            // Ids are AUTOINCREMENT and only the oldest are ever deleted, so
            // they are contiguous: max(id) - limit is exact and O(log n).
            "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?1",
            params![self.audit_max_rows as i64],
        );
        match r {
            Ok(0) => {}
            Ok(gone) => tracing::debug!(gone, keep = self.audit_max_rows, "audit log pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
    }

    /// Runs `f` on a blocking thread with the connection.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|_| StoreError::Gone)?
    }

    /// Applies `writes` in one transaction, here and now; returns the
    /// highest sequence number among them (also when the write failed:
    /// the error is logged, and waiting on it would stop the controller).
    pub fn apply_now(&self, writes: Vec<StoreWrite>) -> u64 {
        let upto = writes.iter().map(|w| w.seq).max().unwrap_or(0);
        let audited: u64 = writes
            .iter()
            .map(|w| match &w.op {
                StoreOp::Audit(rows) => rows.len() as u64,
                _ => 0,
            })
            .sum();
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = apply(&mut c, writes) {
            tracing::error!(error = %e, "database write failed");
        }
        if audited > 0 {
            self.prune_audit(&mut c, audited);
        }
        upto
    }

    /// Everything recovery needs.
    pub async fn load(&self) -> Result<Loaded, StoreError> {
        self.call(|c| {
            let mut out = Loaded::default();
            let mut st = c.prepare(
                "SELECT grp, vlan, parent, targets, switches, hold_until_ms, pinned, created_ms FROM groups",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })?;
            for row in rows {
                let (grp, vlan, parent, targets, switches, hold, pinned, created) = row?;
                let bad = |what: &str| StoreError::Corrupt(grp.clone(), what.to_owned());
                out.groups.push(GroupRow {
                    group: grp.parse().map_err(|_| bad("group"))?,
                    vlan,
                    parent: parent.parse().map_err(|_| bad("parent"))?,
                    targets: serde_json::from_str(&targets).map_err(|_| bad("targets"))?,
                    switches: serde_json::from_str(&switches).map_err(|_| bad("switches"))?,
                    hold_until_ms: hold.max(0) as u64,
                    pinned: pinned != 0,
                    created_ms: created.max(0) as u64,
                });
            }
            drop(st);
            out.leases = read_leases(c)?;
            let mut st = c.prepare("SELECT vlan, upto FROM pool_marks")?;
            out.marks = st
                .query_map([], |r| Ok((r.get::<_, u16>(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect::<Result<_, _>>()?;
            Ok(out)
        })
        .await
    }

    pub async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.call(read_leases).await
    }

    /// The newest `limit` audit rows matching `f`, oldest first.
    pub async fn audit_log(
        &self,
        f: AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT at_ms, txid, lease_id, switch_id, grp, instruction, outcome, sends, detail FROM audit
                 WHERE (?1 IS NULL OR lease_id = ?1) AND (?2 IS NULL OR at_ms >= ?2)
                   AND (?3 IS NULL OR switch_id = ?3) AND (?4 IS NULL OR grp = ?4)
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let args = params![
                f.lease.map(|l| l as i64),
                f.since_ms.map(|l| l as i64),
                f.switch_id,
                f.group.map(|g| g.to_string()),
                limit
            ];
            let rows = st.query_map(args, |r| {
                Ok(AuditEntry {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    txid: r.get::<_, i64>(1)? as u64,
                    lease_id: r.get::<_, i64>(2)? as u64,
                    switch_id: r.get(3)?,
                    group: r.get(4)?,
                    instruction: r.get(5)?,
                    outcome: r.get(6)?,
                    sends: r.get(7)?,
                    detail: r.get(8)?,
                })
            })?;
            let mut v = rows.collect::<Result<Vec<_>, _>>()?;
            v.reverse();
            Ok(v)
        })
        .await
    }

    /// Waits until every write handed over before this call is done
    /// (writes are applied synchronously: this only takes the lock).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|_| Ok(())).await
    }
}

fn read_leases(c: &mut Connection) -> Result<Vec<Lease>, StoreError> {
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
        let (id, vlan, parent, grp, targets, switches, created_ms, expires_ms, state, requester) =
            row?;
        let bad = |what: &str| StoreError::Corrupt(format!("lease {id}"), what.to_owned());
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
            reused: false,
        });
    }
    Ok(out)
}

fn apply(c: &mut Connection, writes: Vec<StoreWrite>) -> Result<(), StoreError> {
    // A lease put and deleted in one batch is never written.
    let puts: HashSet<u64> = writes
        .iter()
        .filter_map(|w| match &w.op {
            StoreOp::PutLease(l) => Some(l.id),
            _ => None,
        })
        .collect();
    let deleted: HashSet<u64> = writes
        .iter()
        .filter_map(|w| match &w.op {
            StoreOp::DeleteLease { id } if puts.contains(id) => Some(*id),
            _ => None,
        })
        .collect();
    let tx = c.transaction()?;
    for w in writes {
        match w.op {
            StoreOp::PutGroup(g) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO groups (grp, vlan, parent, targets, switches, hold_until_ms, pinned, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    g.group.to_string(),
                    g.vlan,
                    g.parent.to_string(),
                    serde_json::to_string(&g.targets).unwrap_or_default(),
                    serde_json::to_string(&g.switches).unwrap_or_default(),
                    g.hold_until_ms as i64,
                    i64::from(g.pinned),
                    g.created_ms as i64,
                ])?;
            }
            StoreOp::HoldGroup {
                group,
                hold_until_ms,
            } => {
                tx.prepare_cached("UPDATE groups SET hold_until_ms = ?2, pinned = pinned AND ?2 > 0 WHERE grp = ?1")?
                    .execute(params![group.to_string(), hold_until_ms as i64])?;
            }
            StoreOp::DeleteGroup { group } => {
                let g = group.to_string();
                tx.prepare_cached("DELETE FROM groups WHERE grp = ?1")?
                    .execute(params![g])?;
                tx.prepare_cached("DELETE FROM leases WHERE grp = ?1")?
                    .execute(params![g])?;
            }
            StoreOp::PutLease(l) => {
                if deleted.contains(&l.id) {
                    continue;
                }
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO leases (id, vlan, parent, grp, targets, switches, created_ms, expires_ms, state, requester)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
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
                ])?;
            }
            StoreOp::DeleteLease { id } => {
                if deleted.contains(&id) {
                    continue;
                }
                tx.prepare_cached("DELETE FROM leases WHERE id = ?1")?
                    .execute(params![id as i64])?;
            }
            StoreOp::PoolMark { vlan, upto } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO pool_marks (vlan, upto) VALUES (?1, ?2)",
                )?
                .execute(params![vlan, upto as i64])?;
            }
            StoreOp::Audit(rows) => {
                let mut st = tx.prepare_cached(
                    "INSERT INTO audit (at_ms, txid, lease_id, switch_id, grp, instruction, outcome, sends, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for e in rows {
                    st.execute(params![
                        e.at_ms as i64,
                        e.txid as i64,
                        e.lease_id as i64,
                        e.switch_id,
                        e.group,
                        e.instruction,
                        e.outcome,
                        e.sends,
                        e.detail
                    ])?;
                }
            }
            StoreOp::AgentHello {
                switch_id,
                address,
                software_version,
                backend,
                at_ms,
            } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO agents (switch_id, address, software_version, backend, last_hello_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![switch_id, address, software_version, backend, at_ms as i64])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::Target;

    fn lease(id: u64, grp: &str) -> Lease {
        Lease {
            id,
            vlan: 10,
            parent: "ff15::1".parse().unwrap(),
            group: grp.parse().unwrap(),
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
            reused: false,
        }
    }

    fn w(seq: u64, op: StoreOp) -> StoreWrite {
        StoreWrite { seq, op }
    }

    #[tokio::test]
    async fn batches_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        {
            let s = Store::open(Some(&path)).unwrap();
            let row = GroupRow {
                group: "ff15::5:1".parse().unwrap(),
                vlan: 10,
                parent: "ff15::1".parse().unwrap(),
                targets: lease(1, "ff15::5:1").targets,
                switches: vec![1, 2],
                hold_until_ms: 99,
                pinned: false,
                created_ms: 1,
            };
            let n = s.apply_now(vec![
                w(1, StoreOp::PutGroup(row)),
                w(2, StoreOp::PutLease(lease(1, "ff15::5:1"))),
                w(3, StoreOp::PutLease(lease(2, "ff15::5:1"))),
                w(4, StoreOp::DeleteLease { id: 2 }),
                w(
                    5,
                    StoreOp::HoldGroup {
                        group: "ff15::5:1".parse().unwrap(),
                        hold_until_ms: 500,
                    },
                ),
                w(
                    6,
                    StoreOp::PoolMark {
                        vlan: 10,
                        upto: 1024,
                    },
                ),
            ]);
            assert_eq!(n, 6);
        }
        let s = Store::open(Some(&path)).unwrap();
        let l = s.load().await.unwrap();
        assert_eq!(l.groups.len(), 1);
        assert_eq!(l.groups[0].hold_until_ms, 500);
        assert_eq!(l.leases, vec![lease(1, "ff15::5:1")]);
        assert_eq!(l.marks, vec![(10, 1024)]);
    }

    #[tokio::test]
    async fn a_version_0_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE leases (id INTEGER PRIMARY KEY, vlan INTEGER NOT NULL, parent TEXT NOT NULL, grp TEXT NOT NULL UNIQUE, targets TEXT NOT NULL, switches TEXT NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, state TEXT NOT NULL, requester TEXT NOT NULL);
                 INSERT INTO leases VALUES (7, 10, 'ff15::1', 'ff15::5:1', '[]', '[1]', 1, 2, 'live', 'ops');",
            )
            .unwrap();
        }
        let s = Store::open(Some(&path)).unwrap();
        let l = s.load().await.unwrap();
        assert_eq!(l.leases.len(), 1);
        assert_eq!(l.leases[0].id, 7);
        // Several leases per group are allowed now.
        s.apply_now(vec![w(1, StoreOp::PutLease(lease(8, "ff15::5:1")))]);
        assert_eq!(s.leases().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_version_1_audit_table_gets_the_group_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, txid INTEGER NOT NULL, lease_id INTEGER NOT NULL, switch_id INTEGER NOT NULL, instruction TEXT NOT NULL, outcome TEXT NOT NULL, sends INTEGER NOT NULL, detail TEXT NOT NULL);
                 INSERT INTO audit (at_ms, txid, lease_id, switch_id, instruction, outcome, sends, detail) VALUES (5, 9, 0, 2, 'CLEAR', 'acked', 1, '');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
            c.execute_batch(LEASES).unwrap();
        }
        let s = Store::open(Some(&path)).unwrap();
        let row = AuditEntry {
            at_ms: 7,
            txid: 10,
            lease_id: 3,
            switch_id: 1,
            group: "ff15::5:1".into(),
            instruction: "SET_SUBSET".into(),
            outcome: "acked".into(),
            sends: 1,
            detail: "2 ports".into(),
        };
        s.apply_now(vec![w(1, StoreOp::Audit(vec![row.clone()]))]);
        let all = s.audit_log(AuditFilter::default(), 10).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].group, "", "old rows have no group");
        assert_eq!(all[1], row);
        let f = AuditFilter {
            group: Some("ff15::5:1".parse().unwrap()),
            since_ms: Some(6),
            switch_id: Some(1),
            lease: Some(3),
        };
        assert_eq!(s.audit_log(f, 10).await.unwrap(), vec![row]);
        let f = AuditFilter {
            since_ms: Some(8),
            ..AuditFilter::default()
        };
        assert!(s.audit_log(f, 10).await.unwrap().is_empty());
    }

    fn audit(txid: u64) -> AuditEntry {
        AuditEntry {
            at_ms: txid,
            txid,
            lease_id: 1,
            switch_id: 1,
            group: "ff15::5:1".into(),
            instruction: "SET_SUBSET".into(),
            outcome: "acked".into(),
            sends: 1,
            detail: String::new(),
        }
    }

    async fn audit_count(s: &Store) -> i64 {
        s.call(|c| Ok(c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    /// The soak found the audit log growing without end (~7 rows per grant):
    /// with a limit it holds at most limit + AUDIT_PRUNE_EVERY rows, the newest.
    #[tokio::test]
    async fn the_audit_log_keeps_only_the_newest_rows() {
        let keep = AUDIT_PRUNE_EVERY;
        let s = Store::open(None).unwrap().with_audit_max_rows(keep);
        for batch in 0..10u64 {
            let rows = (0..500).map(|i| audit(batch * 500 + i)).collect();
            s.apply_now(vec![w(batch, StoreOp::Audit(rows))]);
            let n = audit_count(&s).await as u64;
            assert!(
                n <= keep + AUDIT_PRUNE_EVERY,
                "{n} rows after batch {batch}"
            );
        }
        let newest = s.audit_log(AuditFilter::default(), 1).await.unwrap();
        assert_eq!(newest[0].txid, 4999, "the newest row is kept");
        let n = audit_count(&s).await as u64;
        assert!(n >= keep, "at least the limit is kept: {n}");
        let oldest: i64 = s
            .call(|c| Ok(c.query_row("SELECT min(txid) FROM audit", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(
            oldest as u64,
            5000 - n,
            "what is kept is the newest, contiguous"
        );
        // 0: no limit.
        let all = Store::open(None).unwrap().with_audit_max_rows(0);
        for batch in 0..5u64 {
            let rows = (0..1000).map(|i| audit(batch * 1000 + i)).collect();
            all.apply_now(vec![w(batch, StoreOp::Audit(rows))]);
        }
        assert_eq!(audit_count(&all).await, 5000);
    }
}
