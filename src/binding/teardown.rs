//! What happens to our libuv handles when the Node environment that owns them goes away: a
//! worker thread that used cluster-rs ends, or the process. libuv refuses to close a loop that
//! still has open handles, and Node aborts the whole process when a worker thread's loop does
//! not close, so our handles close with the environment (as Node's own handles do).

use std::cell::Cell;
use std::ffi::c_void;
use std::os::fd::AsFd;
use std::ptr;

use napi::{sys, Env, Result};

use super::callback::check;
use super::{uv, worker_handle};
use crate::core::exit;

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
/// do when a built-in primary's thread ends. The built-in leaves them as zombies then (the
/// thread that would have reaped them is gone); a thread of ours waits for them instead. Not
/// for the main thread: the process is ending, and its children go to init, which reaps them.
unsafe extern "C" fn on_teardown(_arg: *mut c_void) {
  worker_handle::flush_deferred();
  let unreaped = worker_handle::take_unreaped();
  // After this, no poll watches the pidfds any more.
  uv::close_all();
  if !unreaped.is_empty() && !on_main_thread() {
    let reaper = std::thread::Builder::new()
      .name("cluster-rs-reaper".into())
      .spawn(move || {
        for pidfd in unreaped {
          let _ = exit::reap(pidfd.as_fd());
        }
      });
    // Without a thread (out of resources) the pidfds close: zombies, as with the built-in.
    drop(reaper);
  }
}

fn on_main_thread() -> bool {
  // SAFETY: gettid and getpid take no arguments and cannot fail.
  unsafe { libc::gettid() == libc::getpid() }
}
