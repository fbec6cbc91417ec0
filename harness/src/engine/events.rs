//! What the engine reports while it works.

use std::sync::mpsc::Sender;

use serde::Serialize;

use crate::model::{CellId, CellResult};

/// Where a cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Fetching,
    BuildingRoot,
    Booting,
    Tracing,
    /// Running the overhead benches.
    Measuring,
    /// Running a user's command (`harness run`).
    Running,
    Checking,
}

/// What the engine reports while it works.
#[derive(Debug, Clone)]
pub enum MatrixEvent {
    Stage {
        cell: CellId,
        stage: Stage,
    },
    Note {
        cell: CellId,
        text: String,
    },
    /// A line the command of `harness run` wrote in the guest.
    Output {
        cell: CellId,
        line: String,
    },
    Done(Box<CellResult>),
}

/// One cell's events on the channel (a closed channel is ignored: the
/// engine goes on without its audience).
#[derive(Clone, Copy)]
pub(super) struct CellEvents<'a> {
    pub cell: &'a CellId,
    pub tx: &'a Sender<MatrixEvent>,
}

impl CellEvents<'_> {
    pub fn stage(&self, stage: Stage) {
        let _ = self.tx.send(MatrixEvent::Stage {
            cell: self.cell.clone(),
            stage,
        });
    }

    pub fn note(&self, text: &str) {
        let _ = self.tx.send(MatrixEvent::Note {
            cell: self.cell.clone(),
            text: text.to_string(),
        });
    }
}
