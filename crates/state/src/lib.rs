//! Flotilla's durable state: what must survive a restart so that nothing an operator did is
//! forgotten and no instance is orphaned or doubled.
//!
//! [`StateStore`] is the seam (a later etcd-backed store can replace the embedded one);
//! [`SqliteStore`] keeps everything in one SQLite file under `state_dir`, with versioned schema
//! migrations applied in order when the file is opened.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod history;
mod migrations;
mod sqlite;
mod store;

pub use error::StateError;
pub use sqlite::SqliteStore;
pub use store::{
    ActivityRecord, AwsResourceRecord, InstanceRecord, LoadHourRecord, StateStore,
    WeightOverrideRecord, LOAD_HISTORY_HOURS,
};
