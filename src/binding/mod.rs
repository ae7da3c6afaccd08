//! The only module tree with `#[napi]`: it translates between JavaScript and `core`, and drives
//! `core` from Node's own event loop.

mod callback;
mod reuseport;
mod round_robin;
mod sockets;
mod stats;
mod teardown;
mod uv;
mod worker_handle;
