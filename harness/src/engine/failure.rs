//! Why a cell stopped: the one value every stage of a cell returns when it
//! cannot go on (a leaf of the engine: it uses no other engine file).

use crate::model::Status;

/// Why a cell did not pass: its status (Fail, Timeout or Error, never a
/// passing one) and what went wrong.
#[derive(Debug)]
pub struct CellFailure {
    pub status: Status,
    pub error: anyhow::Error,
}

impl CellFailure {
    pub fn new(status: Status, error: anyhow::Error) -> Self {
        debug_assert!(!status.is_ok(), "a failure with a passing status");
        CellFailure { status, error }
    }

    /// The harness, or the guest's plumbing, failed (Status::Error).
    pub fn error(error: anyhow::Error) -> Self {
        CellFailure::new(Status::Error, error)
    }
}

/// Any plain error of a stage is an Error.
impl From<anyhow::Error> for CellFailure {
    fn from(error: anyhow::Error) -> Self {
        CellFailure::error(error)
    }
}
