//! The `load_history` table: each group's load hour by hour, 14 days kept.

use rusqlite::{params, Connection};

use crate::{LoadHourRecord, StateError, LOAD_HISTORY_HOURS};

pub(crate) fn put(conn: &mut Connection, h: &LoadHourRecord) -> Result<(), StateError> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT OR REPLACE INTO load_history (grp, metric, hour, mean, samples)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![h.group, h.metric, h.hour, h.mean, h.samples],
    )?;
    tx.execute(
        "DELETE FROM load_history WHERE grp = ?1 AND metric = ?2 AND hour <= ?3",
        params![h.group, h.metric, h.hour - LOAD_HISTORY_HOURS],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn of_group(conn: &Connection, group: &str) -> Result<Vec<LoadHourRecord>, StateError> {
    let mut stmt = conn.prepare_cached(
        "SELECT metric, hour, mean, samples FROM load_history WHERE grp = ?1
         ORDER BY metric, hour",
    )?;
    let rows = stmt.query_map([group], |r| {
        Ok(LoadHourRecord {
            group: group.to_string(),
            metric: r.get(0)?,
            hour: r.get(1)?,
            mean: r.get(2)?,
            samples: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use crate::{LoadHourRecord, SqliteStore, StateStore, LOAD_HISTORY_HOURS};

    #[test]
    fn hours_round_trip_and_two_weeks_are_kept() {
        let dir = std::env::temp_dir().join(format!("flotilla-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        let h = |hour: i64| LoadHourRecord {
            group: "web".into(),
            metric: "request_count".into(),
            hour,
            mean: hour as f64 * 1.5,
            samples: 3600,
        };
        {
            let mut store = SqliteStore::open(&path).unwrap();
            for hour in 0..(LOAD_HISTORY_HOURS + 5) {
                store.put_load_hour(&h(hour)).unwrap();
            }
            store.put_load_hour(&h(LOAD_HISTORY_HOURS + 4)).unwrap(); // replaced, not added
        }
        let store = SqliteStore::open(&path).unwrap();
        let got = store.load_history("web").unwrap();
        assert_eq!(got.len() as i64, LOAD_HISTORY_HOURS);
        assert_eq!(got.first(), Some(&h(5)));
        assert_eq!(got.last(), Some(&h(LOAD_HISTORY_HOURS + 4)));
        assert!(store.load_history("other").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
