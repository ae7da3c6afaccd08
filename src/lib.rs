//! cluster-rs: the primary side of Node's `cluster` module, in Rust.
//!
//! `core` holds everything that can be tested without Node (framing, fd passing, spawning,
//! the handle gate); `binding` only translates between it and JavaScript and drives it from
//! Node's own event loop. See `docs/binding-api.md` for the JS-facing contract.
#![deny(clippy::all)]

#[cfg(target_os = "linux")]
pub mod core;
pub mod error;

// `#[napi]` items expand to nothing under `cargo test`, which would make the whole binding
// look dead; it is exercised by the node:test suite instead.
#[cfg(all(target_os = "linux", not(test)))]
mod binding;
