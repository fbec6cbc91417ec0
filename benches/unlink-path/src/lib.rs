//! The unlink-path bench (`benches/unlink_path.rs`), built by `harness
//! overhead` for each guest arch with `cargo bench --no-run -p
//! unlink-path-bench`; its only dependencies are criterion and nix.
