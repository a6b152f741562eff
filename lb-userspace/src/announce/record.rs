//! What `xlb down` needs to withdraw an instance's routes when no daemon
//! answers (it crashed, or was stopped for a restart that never came): the
//! table and the drain time, recorded by `xlb run` in
//! `/run/xlb/<instance>.announce`. /run is cleared at boot, like the routes.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::AnnounceConfig;

/// Where records live.
pub const RECORD_DIR: &str = "/run/xlb";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub table: u32,
    #[serde(with = "crate::config::humantime_text")]
    pub drain_on_stop: Duration,
}

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not an announce record: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Record {
    pub fn of(a: &AnnounceConfig) -> Self {
        Self {
            table: a.table,
            drain_on_stop: a.drain_on_stop,
        }
    }
}

/// The record file of `instance` under `dir`.
pub fn path_in(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}.announce"))
}

pub fn write(path: &Path, record: &Record) -> Result<(), RecordError> {
    let write_error = |source| RecordError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    let text = format!(
        "# written by `xlb run`: the routes `xlb down` withdraws\n{}",
        toml::to_string(record).map_err(|e| write_error(io::Error::other(e)))?
    );
    std::fs::write(path, text).map_err(write_error)
}

/// The record at `path`, `None` when there is none.
pub fn read(path: &Path) -> Result<Option<Record>, RecordError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RecordError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| RecordError::Invalid {
            path: path.to_path_buf(),
            message: e.message().trim().to_string(),
        })
}

/// Removes the record at `path` (none is fine).
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = path_in(dir.path(), "edge");
        assert_eq!(
            p.file_name().and_then(|n| n.to_str()),
            Some("edge.announce")
        );
        assert_eq!(read(&p).ok(), Some(None));
        let r = Record {
            table: 4242,
            drain_on_stop: Duration::from_millis(2500),
        };
        write(&p, &r).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&p).ok(), Some(Some(r)));
        remove(&p).unwrap_or_else(|e| panic!("{e}"));
        remove(&p).unwrap_or_else(|e| panic!("a second removal is fine: {e}"));
        std::fs::write(&p, "table = \"x\"").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(read(&p), Err(RecordError::Invalid { .. })));
    }
}
