//! AWS-shaped errors: a code clients map to exception classes, a message, and the HTTP
//! status the service model gives the code (400 for everything a caller got wrong, so SDKs
//! never retry a mistake; 403 for a bad signature).

/// One error answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    /// The error code, e.g. `ValidationError`, `TargetGroupNotFound`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

impl AwsError {
    /// A 400 error with `code`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        AwsError {
            code: code.to_string(),
            message: message.into(),
            status: 400,
        }
    }

    /// `ValidationError` (Query services' catch-all for a bad value).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationError", message)
    }

    /// `MissingParameter`: a required parameter is absent.
    pub fn missing(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    /// `InvalidParameterValue` (EC2's catch-all for a bad value).
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterValue", message)
    }

    /// A 403 error (authentication).
    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status: 403,
            ..Self::new(code, message)
        }
    }

    /// An unexpected failure on our side; 500 makes SDKs retry, which is right for those only.
    pub fn internal(message: impl Into<String>) -> Self {
        AwsError {
            status: 500,
            ..Self::new("InternalFailure", message)
        }
    }
}

/// Results of the API's handlers.
pub type AwsResult<T> = Result<T, AwsError>;
