//! The agent's state store: one SQLite database under `[agent].data_dir` for everything that must
//! survive a restart: file checkpoints, incidents, the model cache and the node registry. The
//! schema of all four is created and migrated here; checkpoints are read and written here, the
//! others by their owners (`remediation::incident`, `remediation::model::service`, `nodes`).
//!
//! WAL mode with `synchronous = NORMAL`: a commit is durable against a crash of the process
//! (`kill -9`) without an fsync per commit; only a power loss may lose the last commits, and the
//! sources then replay a little rather than lose. The store holds data, not policy.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::time::Timestamp;

/// File name of the database inside `data_dir`.
pub const DATABASE_FILE: &str = "tailfix.db";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// A file source's position in one file, keyed by the file's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The file's identity (`crc:…` of its first line, or `ino:…` while it is shorter).
    pub key: String,
    /// The path it was last seen at (informational).
    pub path: String,
    /// Bytes of the file delivered to every sink.
    pub offset: u64,
    pub updated_at: Timestamp,
}

/// A handle on the database; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct StateStore {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Never edit
/// one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE file_checkpoints (
        source      TEXT    NOT NULL,
        file_key    TEXT    NOT NULL,
        path        TEXT    NOT NULL,
        offset      INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (source, file_key)
    );
    ",
    "
    CREATE TABLE incidents (
        fingerprint         TEXT PRIMARY KEY,
        title               TEXT NOT NULL,
        state               TEXT NOT NULL,
        count               INTEGER NOT NULL,
        first_seen          INTEGER NOT NULL,
        last_seen           INTEGER NOT NULL,
        nodes               TEXT NOT NULL,
        exception           TEXT,
        top_frame           TEXT,
        sample              TEXT NOT NULL,
        solution            TEXT,
        reason              TEXT,
        change_request_id   TEXT,
        change_request_url  TEXT,
        attempts            INTEGER NOT NULL DEFAULT 0,
        last_action_at      INTEGER,
        next_attempt_at     INTEGER,
        updated_at          INTEGER NOT NULL
    );
    CREATE INDEX incidents_state ON incidents (state);
    CREATE TABLE model_cache (
        key         TEXT PRIMARY KEY,
        provider    TEXT NOT NULL,
        response    TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    ",
    "
    CREATE TABLE nodes (
        id             TEXT PRIMARY KEY,
        version        TEXT NOT NULL,
        labels         TEXT NOT NULL,
        registered_at  INTEGER NOT NULL,
        last_seen      INTEGER NOT NULL
    );
    ",
    "
    ALTER TABLE incidents ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
    ",
];

impl StateStore {
    /// Opens (creating if needed) `data_dir/tailfix.db` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<StateStore, StateError> {
        let path = data_dir.join(DATABASE_FILE);
        let connection = Connection::open(&path).map_err(|source| sqlite_error(&path, source))?;
        Self::prepare(connection, path)
    }

    /// A private in-memory database, for tests and for `validate`.
    pub fn in_memory() -> Result<StateStore, StateError> {
        let path = PathBuf::from(":memory:");
        let connection =
            Connection::open_in_memory().map_err(|source| sqlite_error(&path, source))?;
        Self::prepare(connection, path)
    }

    fn prepare(connection: Connection, path: PathBuf) -> Result<StateStore, StateError> {
        let wrap = |source| sqlite_error(&path, source);
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(wrap)?;
        let applied: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(wrap)?;
        let applied = usize::try_from(applied).unwrap_or(0);
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            connection
                .execute_batch(&format!(
                    "BEGIN; {migration} PRAGMA user_version = {}; COMMIT;",
                    index + 1
                ))
                .map_err(wrap)?;
        }
        Ok(StateStore {
            connection: Arc::new(Mutex::new(connection)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-statement leaves SQLite consistent (it rolls back); the lock stays usable.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wrap(&self, source: rusqlite::Error) -> StateError {
        sqlite_error(&self.path, source)
    }

    /// Runs `work` on the connection: for modules that keep their own tables here.
    pub fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let mut connection = self.lock();
        work(&mut connection).map_err(|e| self.wrap(e))
    }

    /// Every checkpoint of one source.
    pub fn load_checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StateError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT file_key, path, offset, updated_at FROM file_checkpoints WHERE source = ?1",
            )
            .map_err(|e| self.wrap(e))?;
        let rows = statement
            .query_map(params![source], |row| {
                Ok(Checkpoint {
                    key: row.get(0)?,
                    path: row.get(1)?,
                    offset: row.get::<_, i64>(2)?.max(0) as u64,
                    updated_at: Timestamp(row.get(3)?),
                })
            })
            .map_err(|e| self.wrap(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.wrap(e))
    }

    pub fn checkpoint(&self, source: &str, key: &str) -> Result<Option<Checkpoint>, StateError> {
        let connection = self.lock();
        connection
            .query_row(
                "SELECT file_key, path, offset, updated_at FROM file_checkpoints
                 WHERE source = ?1 AND file_key = ?2",
                params![source, key],
                |row| {
                    Ok(Checkpoint {
                        key: row.get(0)?,
                        path: row.get(1)?,
                        offset: row.get::<_, i64>(2)?.max(0) as u64,
                        updated_at: Timestamp(row.get(3)?),
                    })
                },
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Writes checkpoints and removes others in one transaction: all or nothing.
    pub fn update_checkpoints(
        &self,
        source: &str,
        save: &[Checkpoint],
        remove: &[String],
    ) -> Result<(), StateError> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(|e| self.wrap(e))?;
        {
            let mut upsert = transaction
                .prepare_cached(
                    "INSERT INTO file_checkpoints (source, file_key, path, offset, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (source, file_key) DO UPDATE SET
                         path = excluded.path, offset = excluded.offset, updated_at = excluded.updated_at",
                )
                .map_err(|e| self.wrap(e))?;
            for checkpoint in save {
                upsert
                    .execute(params![
                        source,
                        checkpoint.key,
                        checkpoint.path,
                        checkpoint.offset as i64,
                        checkpoint.updated_at.0
                    ])
                    .map_err(|e| self.wrap(e))?;
            }
            let mut delete = transaction
                .prepare_cached("DELETE FROM file_checkpoints WHERE source = ?1 AND file_key = ?2")
                .map_err(|e| self.wrap(e))?;
            for key in remove {
                delete
                    .execute(params![source, key])
                    .map_err(|e| self.wrap(e))?;
            }
        }
        transaction.commit().map_err(|e| self.wrap(e))
    }

    /// Removes a source's checkpoints not updated since `before`; returns how many.
    pub fn expire_checkpoints(&self, source: &str, before: Timestamp) -> Result<usize, StateError> {
        self.lock()
            .execute(
                "DELETE FROM file_checkpoints WHERE source = ?1 AND updated_at < ?2",
                params![source, before.0],
            )
            .map_err(|e| self.wrap(e))
    }
}

fn sqlite_error(path: &Path, source: rusqlite::Error) -> StateError {
    StateError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(key: &str, offset: u64, at: i64) -> Checkpoint {
        Checkpoint {
            key: key.to_string(),
            path: format!("/var/log/{key}.log"),
            offset,
            updated_at: Timestamp(at),
        }
    }

    #[test]
    fn checkpoints_survive_reopening_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            store
                .update_checkpoints(
                    "app",
                    &[checkpoint("a", 10, 1), checkpoint("b", 20, 5)],
                    &[],
                )
                .unwrap();
            store
                .update_checkpoints("other", &[checkpoint("a", 99, 1)], &[])
                .unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        let mut loaded = store.load_checkpoints("app").unwrap();
        loaded.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(loaded, vec![checkpoint("a", 10, 1), checkpoint("b", 20, 5)]);
        store
            .update_checkpoints("app", &[checkpoint("b", 30, 6)], &["a".to_string()])
            .unwrap();
        assert_eq!(
            store.load_checkpoints("app").unwrap(),
            vec![checkpoint("b", 30, 6)]
        );
        assert_eq!(store.expire_checkpoints("app", Timestamp(7)).unwrap(), 1);
        assert!(store.load_checkpoints("app").unwrap().is_empty());
        assert_eq!(
            store.checkpoint("other", "a").unwrap().map(|c| c.offset),
            Some(99)
        );
    }
}
