//! This machine: provisioning (`setup`), its check-up (`doctor`) and the
//! choice of KVM or TCG (`accel`).

pub mod accel;
pub mod doctor;
pub mod setup;
pub mod virtiofs;
