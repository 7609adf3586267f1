//! The AWS Query protocol as botocore speaks it: form parameters, SigV4, XML answers, errors.

pub mod error;
pub mod form;
pub mod sigv4;
pub mod xml;

pub use error::{AwsError, AwsResult};
pub use form::Params;
