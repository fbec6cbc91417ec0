//! The report directory: the matrix's files, the overhead's, the chart,
//! the mutation run's.

pub mod chart;
pub mod matrix;
pub mod mutants;
pub mod overhead;
