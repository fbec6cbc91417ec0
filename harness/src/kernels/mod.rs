//! The kernels of the matrix: the manifest, the lock file, apt, and the
//! fetch of each kernel into the cache.

pub mod apt;
pub mod facts;
pub mod kernel;
pub mod lock;
pub mod manifest;
