//! Linux primitives of the primary, with no Node-API in sight (a CI grep keeps `napi` out).

pub mod accept;
pub mod channel;
pub mod diag;
pub mod exit;
pub mod fdpass;
pub mod framing;
pub mod listen;
pub mod outbox;
pub mod protocol;
pub mod reuseport;
pub mod sched;
pub mod spawn;
#[cfg(test)]
mod testutil;
