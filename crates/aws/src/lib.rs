//! Flotilla speaks AWS: one endpoint serving the ELBv2, EC2 Auto Scaling and EC2
//! launch-template Query APIs, so boto3 and the aws CLI create real load balancers, target
//! groups and auto scaling groups here.
//!
//! An operator surface like the admin API, and built the same way: this crate owns the
//! protocol — form decoding (`protocol/form.rs`), SigV4 (`protocol/sigv4.rs`), dispatch on
//! `Version` and `Action` (`server.rs`), XML answers and AWS-shaped errors
//! (`protocol/xml.rs`), pagination, request ids — and the API's resources in AWS's terms
//! (`model/`); it reaches the runtime only through [`AwsBackend`]. What the API creates is an
//! overlay merged with the file's config and applied like a reload, so it is real: listeners
//! bind and serve, groups launch instances.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod autoscaling;
mod backend;
mod call;
mod ec2;
mod ec2_network;
mod elbv2;
pub mod model;
pub mod protocol;
mod server;
mod views;

pub use backend::{
    ActivityLive, AwsBackend, CommandResult, GroupLive, InstanceLive, RefreshLive, TargetLive,
};
pub use model::{Overlay, Record, Registry};
pub use server::{serve, Settings};
