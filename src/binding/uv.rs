//! libuv's poll handle, on the loop that runs Node.
//!
//! The functions are looked up in the running process (`dlsym(RTLD_DEFAULT, ..)`), never linked:
//! the `.node` must use the very libuv that runs Node's loop, and `cargo test` must link
//! without Node. Handle memory is sized at run time with `uv_handle_size`, so no struct layout
//! is copied from libuv's headers.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_int, c_void, CStr};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::OnceLock;

pub const READABLE: c_int = 1;
pub const WRITABLE: c_int = 2;
pub const DISCONNECT: c_int = 4;
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;

pub type PollCb = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
pub type TimerCb = unsafe extern "C" fn(handle: *mut c_void);
type CloseCb = unsafe extern "C" fn(handle: *mut c_void);

struct Uv {
  handle_size: unsafe extern "C" fn(c_int) -> usize,
  poll_init: unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int,
  poll_start: unsafe extern "C" fn(*mut c_void, c_int, PollCb) -> c_int,
  poll_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
  timer_init: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
  timer_start: unsafe extern "C" fn(*mut c_void, TimerCb, u64, u64) -> c_int,
  close: unsafe extern "C" fn(*mut c_void, Option<CloseCb>),
  uv_ref: unsafe extern "C" fn(*mut c_void),
  uv_unref: unsafe extern "C" fn(*mut c_void),
  set_data: unsafe extern "C" fn(*mut c_void, *mut c_void),
  get_data: unsafe extern "C" fn(*const c_void) -> *mut c_void,
}

fn sym(name: &CStr) -> *mut c_void {
  // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads the symbol tables.
  let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
  assert!(
    !p.is_null(),
    "libuv symbol {name:?} not found in this process"
  );
  p
}

/// # Safety
/// `F` must be the function-pointer type of the C function called `name`.
unsafe fn load<F: Copy>(name: &CStr) -> F {
  let p = sym(name);
  // SAFETY: per the contract, `p` points to a function of type `F` (pointer-sized).
  unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}

fn uv() -> &'static Uv {
  static UV: OnceLock<Uv> = OnceLock::new();
  // SAFETY: each pointer is the named libuv function, whose C signature is the one declared in
  // the field it is transmuted to (libuv's public, ABI-stable API).
  UV.get_or_init(|| unsafe {
    Uv {
      handle_size: load(c"uv_handle_size"),
      poll_init: load(c"uv_poll_init"),
      poll_start: load(c"uv_poll_start"),
      poll_stop: load(c"uv_poll_stop"),
      timer_init: load(c"uv_timer_init"),
      timer_start: load(c"uv_timer_start"),
      close: load(c"uv_close"),
      uv_ref: load(c"uv_ref"),
      uv_unref: load(c"uv_unref"),
      set_data: load(c"uv_handle_set_data"),
      get_data: load(c"uv_handle_get_data"),
    }
  })
}

/// What a handle carries: the owner's context (taken out by [`close_all`]), and the fd to
/// close once libuv lets go.
struct Slot<T> {
  data: Option<T>,
  fd_to_close: Option<OwnedFd>,
}

/// Closes one open handle at teardown and hands back its context, to be dropped by the caller.
type Teardown = unsafe fn(*mut c_void) -> Box<dyn Any>;

thread_local! {
  /// This thread's handles that their owners have not closed yet (see [`close_all`]).
  static OPEN: RefCell<Vec<(*mut c_void, Teardown)>> = const { RefCell::new(Vec::new()) };
}

/// Forgets `handle` as open; false when it was not (already closed by [`close_all`]).
fn unregister(handle: *mut c_void) -> bool {
  OPEN.with(|open| {
    let mut open = open.borrow_mut();
    let found = open.iter().position(|(h, _)| *h == handle);
    found.map(|i| open.swap_remove(i)).is_some()
  })
}

/// Closes every handle of this thread that its owner has not closed: the Node environment is
/// going away (a worker thread ends, or the process), and libuv cannot close a loop that still
/// has open handles (Node aborts). The owners' contexts are dropped only after every handle is
/// closed, so no fd they own is closed while a handle still watches it. Nothing may use a
/// `Poll`/`Timer` of this thread afterwards but `close` (a no-op then): no callback of ours
/// runs once the environment is torn down.
pub fn close_all() {
  let open = OPEN.with(|open| std::mem::take(&mut *open.borrow_mut()));
  let contexts: Vec<Box<dyn Any>> = open
    .into_iter()
    // SAFETY: each entry is a live handle with the teardown function of its own `T`.
    .map(|(handle, teardown)| unsafe { teardown(handle) })
    .collect();
  drop(contexts);
}

/// The [`Teardown`] for a handle carrying a `T`.
///
/// # Safety
/// `handle` must come from `new_handle::<T>` and not be closed yet.
unsafe fn teardown<T: 'static>(handle: *mut c_void) -> Box<dyn Any> {
  let uv = uv();
  // SAFETY: per the contract, the data pointer is a live `Slot<T>`; `on_close` frees it later.
  unsafe {
    let slot = (uv.get_data)(handle) as *mut Slot<T>;
    let data = (*slot).data.take();
    (uv.close)(handle, Some(on_close::<T>));
    Box::new(data)
  }
}

/// Allocates a handle of `kind`, initialises it with `init`, and attaches `data`.
///
/// # Safety
/// `init` must be the libuv init function for `kind`, called on the current thread's loop.
unsafe fn new_handle<T: 'static>(
  kind: c_int,
  init: impl FnOnce(*mut c_void) -> c_int,
  data: T,
) -> io::Result<*mut c_void> {
  let uv = uv();
  // SAFETY: allocating the size libuv asks for; freed in `on_close`.
  let handle = unsafe { libc::calloc(1, (uv.handle_size)(kind)) };
  if handle.is_null() {
    return Err(io::ErrorKind::OutOfMemory.into());
  }
  let rc = init(handle);
  if rc != 0 {
    // SAFETY: init failed, so libuv never saw the handle: it is ours to free.
    unsafe { libc::free(handle) };
    return Err(io::Error::from_raw_os_error(-rc));
  }
  let slot = Box::into_raw(Box::new(Slot {
    data: Some(data),
    fd_to_close: None,
  }));
  // SAFETY: the handle is initialised; the data pointer stays valid until `on_close`.
  unsafe { (uv.set_data)(handle, slot.cast()) };
  OPEN.with(|open| open.borrow_mut().push((handle, teardown::<T> as Teardown)));
  Ok(handle)
}

/// The `T` attached to `handle` by `new_handle`.
///
/// # Safety
/// `handle` must come from `new_handle::<T>` with this same `T` and not be closed yet.
unsafe fn data_of<'a, T>(handle: *mut c_void) -> &'a T {
  // SAFETY: per the contract, the data pointer is a live `Slot<T>`.
  let data = unsafe { &(*((uv().get_data)(handle) as *const Slot<T>)).data };
  // Taken only by `close_all`, after which no callback reaches a handle of ours.
  data
    .as_ref()
    .expect("a handle used after its environment was torn down")
}

/// A `uv_poll_t` watching one fd, carrying a `T` that its callback can reach.
/// Dropping a `Poll` without `close` would leak it; `close` is the only way out.
pub struct Poll<T> {
  handle: *mut c_void,
  _marker: std::marker::PhantomData<T>,
}

impl<T: 'static> Poll<T> {
  /// # Safety
  /// `uv_loop` must be the loop of the calling thread (from `napi_get_uv_event_loop`).
  pub unsafe fn new(uv_loop: *mut c_void, fd: RawFd, data: T) -> io::Result<Self> {
    // SAFETY: fresh zeroed memory of the right size, on this thread's loop.
    let init = |h| unsafe { (uv().poll_init)(uv_loop, h, fd) };
    // SAFETY: `init` is uv_poll_init for a UV_POLL handle.
    let handle = unsafe { new_handle(UV_POLL, init, data)? };
    Ok(Poll {
      handle,
      _marker: std::marker::PhantomData,
    })
  }

  /// (Re)starts watching for `events` (READABLE | WRITABLE | DISCONNECT).
  pub fn start(&self, events: c_int, cb: PollCb) -> io::Result<()> {
    // SAFETY: `self.handle` is an initialised, not yet closed poll handle.
    let rc = unsafe { (uv().poll_start)(self.handle, events, cb) };
    if rc != 0 {
      return Err(io::Error::from_raw_os_error(-rc));
    }
    Ok(())
  }

  /// Stops watching until the next `start`.
  pub fn stop(&self) {
    // SAFETY: `self.handle` is an initialised, not yet closed poll handle.
    unsafe { (uv().poll_stop)(self.handle) };
  }

  /// Whether this handle keeps the loop alive.
  pub fn set_ref(&self, keep_alive: bool) {
    // SAFETY: as in `start`.
    unsafe {
      if keep_alive {
        (uv().uv_ref)(self.handle)
      } else {
        (uv().uv_unref)(self.handle)
      }
    }
  }

  /// Stops watching at once and frees the handle when libuv is done with it; `fd` (the watched
  /// fd, if the caller owned it) is closed only then, so libuv never polls a closed fd number.
  pub fn close(self, fd: Option<OwnedFd>) {
    if !unregister(self.handle) {
      // Closed by `close_all` already; `fd` closes here.
      return;
    }
    let uv = uv();
    // SAFETY: the data pointer was set in `new` and is still ours until `on_close` runs.
    unsafe {
      let slot = (uv.get_data)(self.handle) as *mut Slot<T>;
      (*slot).fd_to_close = fd;
      (uv.close)(self.handle, Some(on_close::<T>));
    }
  }

  /// The `T` given to `new`, from inside a poll callback.
  ///
  /// # Safety
  /// `handle` must be the handle passed to a callback of a `Poll<T>` with this same `T`.
  pub unsafe fn data<'a>(handle: *mut c_void) -> &'a T {
    // SAFETY: the same contract as `data_of`.
    unsafe { data_of(handle) }
  }
}

unsafe extern "C" fn on_close<T>(handle: *mut c_void) {
  // SAFETY: libuv is done with the handle; the slot was boxed in `new` and is dropped once here
  // (closing the fd it holds), then the handle memory from calloc is freed.
  unsafe {
    let slot = (uv().get_data)(handle) as *mut Slot<T>;
    drop(Box::from_raw(slot));
    libc::free(handle);
  }
}

/// A one-shot `uv_timer_t` carrying a `T`; it never keeps the loop alive by itself.
pub struct Timer<T> {
  handle: *mut c_void,
  _marker: std::marker::PhantomData<T>,
}

impl<T: 'static> Timer<T> {
  /// # Safety
  /// `uv_loop` must be the loop of the calling thread (from `napi_get_uv_event_loop`).
  pub unsafe fn new(uv_loop: *mut c_void, data: T) -> io::Result<Self> {
    // SAFETY: fresh zeroed memory of the right size, on this thread's loop.
    let init = |h| unsafe { (uv().timer_init)(uv_loop, h) };
    // SAFETY: `init` is uv_timer_init for a UV_TIMER handle.
    let handle = unsafe { new_handle(UV_TIMER, init, data)? };
    // SAFETY: initialised handle: unref so that a pending retry never holds the primary open.
    unsafe { (uv().uv_unref)(handle) };
    Ok(Timer {
      handle,
      _marker: std::marker::PhantomData,
    })
  }

  /// Fires `cb` once after `ms` (restarting it if already armed).
  pub fn start(&self, ms: u64, cb: TimerCb) {
    // SAFETY: an initialised, not yet closed timer handle.
    unsafe { (uv().timer_start)(self.handle, cb, ms, 0) };
  }

  pub fn close(self) {
    if !unregister(self.handle) {
      return; // closed by `close_all` already
    }
    // SAFETY: the handle is initialised; `on_close` frees it and its slot once.
    unsafe { (uv().close)(self.handle, Some(on_close::<T>)) };
  }

  /// # Safety
  /// `handle` must be the handle passed to a callback of a `Timer<T>` with this same `T`.
  pub unsafe fn data<'a>(handle: *mut c_void) -> &'a T {
    // SAFETY: the same contract as `data_of`.
    unsafe { data_of(handle) }
  }
}
