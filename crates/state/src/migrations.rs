//! Versioned schema migrations: migration `n` (1-based) turns schema version `n - 1` into `n`.
//! Append new migrations at the end; never edit one that has shipped.

use rusqlite::{Connection, OptionalExtension};

use crate::StateError;

/// Every migration, in order.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE activities (
        grp TEXT NOT NULL,
        run_id TEXT NOT NULL,
        activity_id INTEGER NOT NULL,
        time_ms INTEGER NOT NULL,
        cause TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (grp, run_id, activity_id)
    );
    CREATE INDEX activities_by_time ON activities (grp, time_ms);
    CREATE TABLE operator_capacity (
        grp TEXT PRIMARY KEY,
        desired INTEGER NOT NULL
    );
    CREATE TABLE suspended_processes (
        grp TEXT NOT NULL,
        process TEXT NOT NULL,
        PRIMARY KEY (grp, process)
    );
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        grp TEXT NOT NULL,
        zone TEXT NOT NULL,
        pid INTEGER NOT NULL,
        start_time INTEGER NOT NULL,
        address TEXT NOT NULL,
        launch_template_version INTEGER NOT NULL,
        launched_at_ms INTEGER NOT NULL
    );",
    // 2: scale-in protection an operator set on an instance (AWS `SetInstanceProtection`).
    "ALTER TABLE instances ADD COLUMN protected_from_scale_in INTEGER NOT NULL DEFAULT 0;",
    // 3: weights of forward actions shifted by an operator or a canary rollback.
    "CREATE TABLE weight_overrides (
        load_balancer TEXT NOT NULL,
        listener TEXT NOT NULL,
        rule TEXT NOT NULL,
        weights TEXT NOT NULL,
        base TEXT NOT NULL,
        source TEXT NOT NULL,
        cause TEXT NOT NULL,
        PRIMARY KEY (load_balancer, listener, rule)
    );",
    // 4: where the instance is in its life, so a restart puts a warm pool instance back in the
    // pool and holds one waiting for a launch hook out of service.
    "ALTER TABLE instances ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'in_service';",
    // 5: what the AWS API created (launch templates, target groups, load balancers, listeners,
    // rules, auto scaling groups), one JSON document per resource.
    "CREATE TABLE aws_resources (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    );",
    // 6: how the instance was bought (`on-demand` or `spot`), so a restart keeps its price
    // and a Spot instance can still be interrupted.
    "ALTER TABLE instances ADD COLUMN purchase_option TEXT NOT NULL DEFAULT 'on-demand';",
    // 7: each group's load, hour by hour (predictive scaling learns from it; 14 days kept).
    "CREATE TABLE load_history (
        grp TEXT NOT NULL,
        metric TEXT NOT NULL,
        hour INTEGER NOT NULL,
        mean REAL NOT NULL,
        samples INTEGER NOT NULL,
        PRIMARY KEY (grp, metric, hour)
    );",
];

/// The schema version this build writes.
pub(crate) fn latest() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Brings the database to the latest schema, each migration in its own transaction.
pub(crate) fn apply(conn: &mut Connection) -> Result<u32, StateError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: u32 = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| {
            r.get::<_, Option<u32>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    if current > latest() {
        return Err(StateError::TooNew {
            found: current,
            known: latest(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
    }
    Ok(latest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_is_upgraded_keeping_its_rows() {
        let dir = std::env::temp_dir().join(format!("flotilla-migrate-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);
                 INSERT INTO instances VALUES ('i-1', 'web', 'az-a', 42, 7, '127.0.0.1:1', 1, 0);",
            )
            .unwrap();
        }
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(apply(&mut conn).unwrap(), latest());
        let (id, protected): (String, bool) = conn
            .query_row(
                "SELECT id, protected_from_scale_in FROM instances",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((id.as_str(), protected), ("i-1", false));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
