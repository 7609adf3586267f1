//! The embedded store: one SQLite file under `state_dir`.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::{
    history, migrations, ActivityRecord, AwsResourceRecord, InstanceRecord, LoadHourRecord,
    StateError, StateStore, WeightOverrideRecord,
};

/// How many activities a group keeps on disk; older ones are deleted so the file stays bounded.
const MAX_ACTIVITIES_PER_GROUP: i64 = 10_000;

/// [`StateStore`] on a SQLite file (WAL journal, so a crash loses at most the last write).
pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let open_err = |source| StateError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        // WAL with NORMAL sync: durable against a Flotilla crash, cheap enough per write.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        migrations::apply(&mut conn)?;
        Ok(Self { conn })
    }

    /// The schema version of the open database (the newest this build knows).
    pub fn schema_version(&self) -> Result<u32, StateError> {
        Ok(self
            .conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl StateStore for SqliteStore {
    fn put_activity(&mut self, a: &ActivityRecord) -> Result<(), StateError> {
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO activities (grp, run_id, activity_id, time_ms, cause, description, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (grp, run_id, activity_id) DO UPDATE SET
                cause = excluded.cause, description = excluded.description,
                status = excluded.status",
            params![
                a.group,
                a.run_id,
                to_i64(a.activity_id),
                a.time_ms,
                a.cause,
                a.description,
                a.status
            ],
        )?;
        if inserted > 0 {
            tx.execute(
                "DELETE FROM activities WHERE grp = ?1 AND rowid NOT IN
                   (SELECT rowid FROM activities WHERE grp = ?1
                    ORDER BY time_ms DESC, rowid DESC LIMIT ?2)",
                params![a.group, MAX_ACTIVITIES_PER_GROUP],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn activities(&self, group: &str, limit: usize) -> Result<Vec<ActivityRecord>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_id, activity_id, time_ms, cause, description, status FROM activities
             WHERE grp = ?1 ORDER BY time_ms DESC, rowid DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![group, limit], |r| {
            Ok(ActivityRecord {
                group: group.to_string(),
                run_id: r.get(0)?,
                activity_id: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                time_ms: r.get(2)?,
                cause: r.get(3)?,
                description: r.get(4)?,
                status: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_desired_capacity(&mut self, group: &str, desired: u32) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO operator_capacity (grp, desired) VALUES (?1, ?2)
             ON CONFLICT (grp) DO UPDATE SET desired = excluded.desired",
            params![group, desired],
        )?;
        Ok(())
    }

    fn desired_capacity(&self, group: &str) -> Result<Option<u32>, StateError> {
        Ok(self
            .conn
            .query_row(
                "SELECT desired FROM operator_capacity WHERE grp = ?1",
                [group],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn clear_desired_capacity(&mut self, group: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM operator_capacity WHERE grp = ?1", [group])?;
        Ok(())
    }

    fn set_suspended_processes(
        &mut self,
        group: &str,
        processes: &[String],
    ) -> Result<(), StateError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM suspended_processes WHERE grp = ?1", [group])?;
        for p in processes {
            tx.execute(
                "INSERT OR IGNORE INTO suspended_processes (grp, process) VALUES (?1, ?2)",
                params![group, p],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn suspended_processes(&self, group: &str) -> Result<Vec<String>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT process FROM suspended_processes WHERE grp = ?1 ORDER BY process",
        )?;
        let rows = stmt.query_map([group], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_instance(&mut self, i: &InstanceRecord) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO instances
               (id, grp, zone, pid, start_time, address, launch_template_version, launched_at_ms,
                protected_from_scale_in, lifecycle, purchase_option)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                i.id,
                i.group,
                i.zone,
                i.pid,
                to_i64(i.start_time),
                i.address,
                to_i64(i.launch_template_version),
                i.launched_at_ms,
                i.protected_from_scale_in,
                i.lifecycle,
                i.purchase_option
            ],
        )?;
        Ok(())
    }

    fn set_instance_protection(&mut self, id: &str, protected: bool) -> Result<(), StateError> {
        self.conn.execute(
            "UPDATE instances SET protected_from_scale_in = ?2 WHERE id = ?1",
            params![id, protected],
        )?;
        Ok(())
    }

    fn set_instance_lifecycle(&mut self, id: &str, lifecycle: &str) -> Result<(), StateError> {
        self.conn.execute(
            "UPDATE instances SET lifecycle = ?2 WHERE id = ?1",
            params![id, lifecycle],
        )?;
        Ok(())
    }

    fn remove_instance(&mut self, id: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM instances WHERE id = ?1", [id])?;
        Ok(())
    }

    fn instances(&self) -> Result<Vec<InstanceRecord>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, grp, zone, pid, start_time, address, launch_template_version,
                    launched_at_ms, protected_from_scale_in, lifecycle, purchase_option
             FROM instances ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(InstanceRecord {
                id: r.get(0)?,
                group: r.get(1)?,
                zone: r.get(2)?,
                pid: r.get(3)?,
                start_time: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                address: r.get(5)?,
                launch_template_version: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                launched_at_ms: r.get(7)?,
                protected_from_scale_in: r.get(8)?,
                lifecycle: r.get(9)?,
                purchase_option: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_weight_override(&mut self, o: &WeightOverrideRecord) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO weight_overrides
               (load_balancer, listener, rule, weights, base, source, cause)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                o.load_balancer,
                o.listener,
                o.rule,
                o.weights,
                o.base,
                o.source,
                o.cause
            ],
        )?;
        Ok(())
    }

    fn remove_weight_override(
        &mut self,
        load_balancer: &str,
        listener: &str,
        rule: &str,
    ) -> Result<(), StateError> {
        self.conn.execute(
            "DELETE FROM weight_overrides WHERE load_balancer = ?1 AND listener = ?2 AND rule = ?3",
            params![load_balancer, listener, rule],
        )?;
        Ok(())
    }

    fn weight_overrides(&self) -> Result<Vec<WeightOverrideRecord>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT load_balancer, listener, rule, weights, base, source, cause
             FROM weight_overrides ORDER BY load_balancer, listener, rule",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(WeightOverrideRecord {
                load_balancer: r.get(0)?,
                listener: r.get(1)?,
                rule: r.get(2)?,
                weights: r.get(3)?,
                base: r.get(4)?,
                source: r.get(5)?,
                cause: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn replace_aws_resources(&mut self, resources: &[AwsResourceRecord]) -> Result<(), StateError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM aws_resources", [])?;
        for (kind, key, body) in resources {
            tx.execute(
                "INSERT INTO aws_resources (kind, key, body) VALUES (?1, ?2, ?3)",
                params![kind, key, body],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn aws_resources(&self) -> Result<Vec<AwsResourceRecord>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, key, body FROM aws_resources ORDER BY kind, key")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_load_hour(&mut self, h: &LoadHourRecord) -> Result<(), StateError> {
        history::put(&mut self.conn, h)
    }

    fn load_history(&self, group: &str) -> Result<Vec<LoadHourRecord>, StateError> {
        history::of_group(&self.conn, group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_resources_are_replaced_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("flotilla-aws-res-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = SqliteStore::open(&dir.join("state.db")).unwrap();
        let r = |k: &str, n: &str| {
            (
                k.to_string(),
                n.to_string(),
                format!("{{\"name\":\"{n}\"}}"),
            )
        };
        store
            .replace_aws_resources(&[r("target_group", "web"), r("target_group", "api")])
            .unwrap();
        store
            .replace_aws_resources(&[r("target_group", "web")])
            .unwrap();
        drop(store);
        let store = SqliteStore::open(&dir.join("state.db")).unwrap();
        assert_eq!(
            store.aws_resources().unwrap(),
            vec![r("target_group", "web")]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn weight_overrides_round_trip() {
        let dir = std::env::temp_dir().join(format!("flotilla-weights-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = SqliteStore::open(&dir.join("state.db")).unwrap();
        let o = WeightOverrideRecord {
            load_balancer: "front".into(),
            listener: "127.0.0.1:8080".into(),
            rule: "10".into(),
            weights: "web=0,canary=100".into(),
            base: "web=90,canary=10".into(),
            source: "operator".into(),
            cause: String::new(),
        };
        store.put_weight_override(&o).unwrap();
        let newer = WeightOverrideRecord {
            weights: "web=100,canary=0".into(),
            ..o.clone()
        };
        store.put_weight_override(&newer).unwrap();
        assert_eq!(store.weight_overrides().unwrap(), [newer]);
        store
            .remove_weight_override("front", "127.0.0.1:8080", "10")
            .unwrap();
        assert!(store.weight_overrides().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn temp_db(name: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "flotilla-state-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.db")
    }

    fn activity(group: &str, run: &str, id: u64, time_ms: i64, status: &str) -> ActivityRecord {
        ActivityRecord {
            group: group.into(),
            run_id: run.into(),
            activity_id: id,
            time_ms,
            cause: format!("cause {id}"),
            description: format!("did {id}"),
            status: status.into(),
        }
    }

    fn instance(id: &str, pid: u32) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            group: "web".into(),
            zone: "az-a".into(),
            pid,
            start_time: 123_456,
            address: "127.0.0.1:4000".into(),
            launch_template_version: 2,
            launched_at_ms: 1_700_000_000_000,
            protected_from_scale_in: false,
            lifecycle: "in_service".into(),
            purchase_option: "spot".into(),
        }
    }

    #[test]
    fn migrations_run_once_and_record_the_version() {
        let path = temp_db("migrate");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrations::latest());
        drop(store);
        // Reopening applies nothing twice (a second CREATE TABLE would fail).
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrations::latest());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let path = temp_db("newer");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE schema_version SET version = 999", [])
            .unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StateError::TooNew { found: 999, .. }),
            "{err}"
        );
    }

    #[test]
    fn activities_are_newest_first_per_group_and_survive_reopen() {
        let path = temp_db("activities");
        let mut store = SqliteStore::open(&path).unwrap();
        store
            .put_activity(&activity("web", "r1", 0, 1000, "in_progress"))
            .unwrap();
        store
            .put_activity(&activity("web", "r1", 1, 2000, "successful"))
            .unwrap();
        store
            .put_activity(&activity("api", "r1", 0, 1500, "successful"))
            .unwrap();
        // A status change updates the same row instead of adding one.
        store
            .put_activity(&activity("web", "r1", 0, 1000, "successful"))
            .unwrap();
        // Same id in a later run is a different activity.
        store
            .put_activity(&activity("web", "r2", 0, 3000, "failed"))
            .unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let web = store.activities("web", 10).unwrap();
        let keys: Vec<_> = web
            .iter()
            .map(|a| (a.run_id.as_str(), a.activity_id, a.status.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("r2", 0, "failed"),
                ("r1", 1, "successful"),
                ("r1", 0, "successful")
            ]
        );
        assert_eq!(store.activities("web", 1).unwrap().len(), 1);
        assert_eq!(store.activities("api", 10).unwrap().len(), 1);
        assert!(store.activities("nope", 10).unwrap().is_empty());
    }

    #[test]
    fn operator_capacity_and_suspensions_round_trip() {
        let path = temp_db("capacity");
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.desired_capacity("web").unwrap(), None);
        store.set_desired_capacity("web", 4).unwrap();
        store.set_desired_capacity("web", 5).unwrap();
        store.set_desired_capacity("api", 1).unwrap();
        store
            .set_suspended_processes("web", &["Terminate".into(), "Launch".into()])
            .unwrap();
        drop(store);
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.desired_capacity("web").unwrap(), Some(5));
        assert_eq!(store.desired_capacity("api").unwrap(), Some(1));
        assert_eq!(
            store.suspended_processes("web").unwrap(),
            vec!["Launch".to_string(), "Terminate".to_string()]
        );
        store.clear_desired_capacity("web").unwrap();
        store.set_suspended_processes("web", &[]).unwrap();
        assert_eq!(store.desired_capacity("web").unwrap(), None);
        assert!(store.suspended_processes("web").unwrap().is_empty());
    }

    #[test]
    fn instance_records_are_written_and_removed() {
        let path = temp_db("instances");
        let mut store = SqliteStore::open(&path).unwrap();
        store.put_instance(&instance("i-b", 20)).unwrap();
        store.put_instance(&instance("i-a", 10)).unwrap();
        store.put_instance(&instance("i-a", 11)).unwrap();
        drop(store);
        let mut store = SqliteStore::open(&path).unwrap();
        let all = store.instances().unwrap();
        assert_eq!(all, vec![instance("i-a", 11), instance("i-b", 20)]);
        store.remove_instance("i-a").unwrap();
        store.remove_instance("i-unknown").unwrap();
        assert_eq!(store.instances().unwrap(), vec![instance("i-b", 20)]);
        store.set_instance_protection("i-b", true).unwrap();
        store.set_instance_protection("i-unknown", true).unwrap();
        store
            .set_instance_lifecycle("i-b", "warmed:running")
            .unwrap();
        store
            .set_instance_lifecycle("i-unknown", "pending:wait")
            .unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let protected = InstanceRecord {
            protected_from_scale_in: true,
            lifecycle: "warmed:running".into(),
            ..instance("i-b", 20)
        };
        assert_eq!(store.instances().unwrap(), vec![protected]);
    }
}
