//! The shared harness (`flotilla-testbed`: namespaces, bridge, etcd members) plus what only
//! these tests need: election candidates as separate processes.
#![allow(dead_code, unused_imports)]

pub mod probe;

pub use flotilla_testbed::*;
pub use probe::Probe;
