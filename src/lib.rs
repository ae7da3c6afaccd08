//! cluster-rs: the primary side of Node's `cluster` module, in Rust.
//!
//! `core` holds everything that can be tested without Node (framing, fd passing, spawning,
//! the handle gate); `binding` only translates between it and JavaScript and drives it from
//! Node's own event loop. See `docs/binding-api.md` for the JS-facing contract.
#![deny(clippy::all)]

#[cfg(target_os = "linux")]
pub mod core;
pub mod error;

#[cfg(target_os = "linux")]
mod binding;
