//! What happens to our libuv handles when the Node environment that owns them goes away: a
//! worker thread that used cluster-rs ends, or the process. libuv refuses to close a loop that
//! still has open handles, and Node aborts the whole process when a worker thread's loop does
//! not close, so our handles close with the environment (as Node's own handles do).

use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;

use napi::{sys, Env, Result};

use super::callback::check;
use super::{uv, worker_handle};

thread_local! {
  /// One Node environment per thread: the hook is added once.
  static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// Adds the teardown hook to this thread's environment, once. Called before a handle is made.
pub fn ensure_hook(env: &Env) -> Result<()> {
  if HOOKED.with(Cell::get) {
    return Ok(());
  }
  // SAFETY: `env` is the live environment of this call; the hook takes no data.
  check(unsafe { sys::napi_add_env_cleanup_hook(env.raw(), Some(on_teardown), ptr::null_mut()) })?;
  HOOKED.with(|h| h.set(true));
  Ok(())
}

/// Writes what is still deferred (as at a process exit), then closes every handle. Dropping the
/// handles' contexts closes the channels, so workers see their channel end and leave, as they
/// do when a built-in primary's thread ends.
unsafe extern "C" fn on_teardown(_arg: *mut c_void) {
  worker_handle::flush_deferred();
  uv::close_all();
}
