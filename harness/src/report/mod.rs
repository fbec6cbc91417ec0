//! The report directory: the matrix's files, the overhead's, the chart.

pub mod chart;
pub mod matrix;
pub mod overhead;
