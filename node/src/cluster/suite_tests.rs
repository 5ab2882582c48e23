//! openraft's own storage test suite against the sled stores, each built in a fresh
//! temporary directory.

use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::types::{StorageError, TypeConfig};
use super::{LogStore, StateMachineStore};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (log, sm) = super::open(dir.path()).expect("opening the raft stores");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    let started = std::time::Instant::now();
    Suite::test_all(SledBuilder).expect("openraft storage suite");
    eprintln!("openraft storage suite passed in {:?}", started.elapsed());
}
