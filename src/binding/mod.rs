//! The only module tree with `#[napi]`: it translates between JavaScript and `core`, and drives
//! `core` from Node's own event loop.

mod callback;
mod round_robin;
mod sockets;
mod uv;
mod worker_handle;
