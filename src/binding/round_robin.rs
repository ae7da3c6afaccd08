//! `RoundRobinHandle`: a listening socket in the primary whose connections Rust accepts and
//! hands to workers with `newconn`, on Node's loop, with no JavaScript per connection.
//!
//! Write ownership: the `newconn` frames go through the worker's own `Channel` outbox, the same
//! queue as every JavaScript send, so the one-fd-in-flight rule holds across both (§3.4).
//!
//! Accepting on demand: the listener is watched only while the scheduler wants a connection
//! (`Distributor::wants_connection`: an idle worker). Under load every worker has a `newconn`
//! in flight, so a new connection could only wait in a queue; it waits in the kernel's accept
//! queue, in the same order, and costs the primary no wake-up of its own. When an answer
//! leaves a worker idle with our queue empty, `pump` takes the kernel's whole queue (bounded)
//! into ours, in the same loop turn as the read that carried the answer.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::{Rc, Weak};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::binding::uv::{self, Poll, Timer};
use crate::binding::worker_handle::{send_internal, State as WorkerState, WorkerHandle};
use crate::core::accept::{self, Accepted, Reserve};
use crate::core::protocol::{encode_newconn, RUST_SEQ_BASE};
use crate::core::sched::round_robin::RoundRobin;
use crate::core::sched::{Distributor, Handoff, WorkerId};
use crate::error::{js, ClusterError};

/// Accepts per loop turn at most this many, then lets the loop run other work.
const ACCEPTS_PER_TURN: usize = 64;
/// Back-off for asking workers that refused again (all at maxConnections): from 5 ms,
/// doubling, at most 500 ms. Node asks again at once, in a busy loop (protocol.md §5.6).
const RETRY_FIRST_MS: u64 = 5;
const RETRY_MAX_MS: u64 = 500;
/// How long accepting pauses when the primary is out of fds and cannot even shed.
const EXHAUSTED_PAUSE_MS: u64 = 100;
/// At most this many connections are taken from the kernel's queue to be closed on `close`
/// (Linux caps a listen backlog at `somaxconn`, 4096 by default).
const CLOSE_QUEUED_MAX: usize = 4096;

thread_local! {
  static NEXT_SEQ: Cell<u64> = const { Cell::new(RUST_SEQ_BASE) };
}

fn next_seq() -> u64 {
  NEXT_SEQ.with(|s| {
    let v = s.get();
    s.set(v + 1);
    v
  })
}

pub type RrShared = Rc<RefCell<RrState>>;

pub struct RrState {
  key: String,
  sched: Box<dyn Distributor>,
  workers: HashMap<WorkerId, Weak<RefCell<WorkerState>>>,
  /// `(listener poll, listening fd)`; `None` once closed.
  listener: Option<(Poll<Weak<RefCell<RrState>>>, OwnedFd)>,
  /// Whether the listener poll is started (see "Accepting on demand").
  watching: bool,
  /// A unix socket path this listener bound, unlinked on close (as libuv does for its pipes).
  unlink_on_close: Option<String>,
  retry: Option<Timer<Weak<RefCell<RrState>>>>,
  retry_ms: u64,
  /// The spare fd for shedding connections when the primary runs out of fds.
  reserve: Reserve,
  /// Accepting is paused (out of fds); the retry timer resumes it.
  accept_paused: bool,
  /// Workers that left the key while a `newconn` to them was unanswered and their channel
  /// still open: they may yet take that connection, so it is settled by their answer (or by
  /// their channel closing), never handed to a second worker meanwhile.
  leaving: HashSet<WorkerId>,
}

#[napi]
pub struct RoundRobinHandle {
  state: RrShared,
}

/// Takes over a listening socket: `fd` is duplicated (the caller closes its own copy).
/// `unlinkPath`: a unix socket path to remove when the handle closes. `policy`: how to pick the
/// worker, `"least-conn"` or `"sticky"`; round-robin when absent (`core::sched::for_policy`).
#[napi]
pub fn create_round_robin(
  env: Env,
  fd: i32,
  key: String,
  unlink_path: Option<String>,
  policy: Option<String>,
) -> Result<RoundRobinHandle> {
  let raw_env = env.raw();
  // SAFETY: JS passes the fd of a listening socket it keeps open for the duration of this call.
  let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
  let listen_fd = borrowed
    .try_clone_to_owned()
    .map_err(|e| js::throw(raw_env, &ClusterError::os("dup", e)))?;
  super::teardown::ensure_hook(&env)?;
  let uv_loop = env.get_uv_event_loop()?.cast::<c_void>();
  let sched = crate::core::sched::for_policy(policy.as_deref(), listen_fd.as_fd());
  let state: RrShared = Rc::new(RefCell::new(RrState {
    key,
    sched,
    workers: HashMap::new(),
    listener: None,
    watching: true,
    unlink_on_close: unlink_path,
    retry: None,
    retry_ms: RETRY_FIRST_MS,
    reserve: Reserve::new(),
    accept_paused: false,
    leaving: HashSet::new(),
  }));
  // SAFETY: `uv_loop` is this thread's loop.
  let timer = unsafe { Timer::new(uv_loop, Rc::downgrade(&state)) }
    .map_err(|e| js::throw(raw_env, &ClusterError::os("uv_timer_init", e)))?;
  state.borrow_mut().retry = Some(timer);
  // SAFETY: `uv_loop` is this thread's loop.
  let poll = unsafe { Poll::new(uv_loop, listen_fd.as_raw_fd(), Rc::downgrade(&state)) }
    .map_err(|e| js::throw(raw_env, &ClusterError::os("uv_poll_init", e)))?;
  poll
    .start(uv::READABLE, on_acceptable)
    .map_err(|e| js::throw(raw_env, &ClusterError::os("uv_poll_start", e)))?;
  // The listener alone never keeps the primary alive: workers' channels do (as in Node, where
  // the round-robin server is unref'd only by virtue of closing with its last worker).
  poll.set_ref(false);
  state.borrow_mut().listener = Some((poll, listen_fd));
  Ok(RoundRobinHandle { state })
}

#[napi]
impl RoundRobinHandle {
  /// The worker joined this key: it starts receiving connections.
  #[napi]
  pub fn add(&self, worker: &WorkerHandle) {
    let shared = worker.shared();
    let id = shared.borrow().id;
    let handoff = {
      let mut s = self.state.borrow_mut();
      s.workers.insert(id, Rc::downgrade(&shared));
      s.sched.add(id)
    };
    perform(&self.state, handoff.into_iter().collect());
    resume_accepting(&self.state);
  }

  /// The worker left this key. Returns true when no worker is left (the caller then closes).
  #[napi]
  pub fn remove(&self, worker: &WorkerHandle) -> bool {
    let shared = worker.shared();
    let (id, open) = {
      let w = shared.borrow();
      (w.id, w.channel_is_open())
    };
    if open && self.state.borrow().sched.in_flight(id).is_some() {
      self.state.borrow_mut().leaving.insert(id);
      return false;
    }
    remove_worker(&self.state, id)
  }

  /// Connections accepted and not yet handed out.
  #[napi(getter)]
  pub fn pending(&self) -> u32 {
    self.state.borrow().sched.pending() as u32
  }

  /// No connection waits or is in flight to a worker: closing now drops nothing.
  #[napi(getter)]
  pub fn settled(&self) -> bool {
    let s = self.state.borrow();
    s.sched.pending() == 0 && s.workers.keys().all(|w| s.sched.in_flight(*w).is_none())
  }

  /// Stops accepting, closes the listening socket and every connection still waiting.
  /// Connections still in the kernel's accept queue (accepting on demand leaves them there
  /// while every worker is busy) are accepted and closed too, as those in our own queue are:
  /// their clients see the connection closed, not reset. `keepQueued`: leave them queued, for
  /// a listening socket that lives on elsewhere (a reuseport slot given to a new worker).
  #[napi]
  pub fn close(&self, keep_queued: Option<bool>) {
    let mut s = self.state.borrow_mut();
    let s = &mut *s;
    if let Some((poll, fd)) = s.listener.take() {
      if keep_queued != Some(true) {
        accept::close_queued(fd.as_fd(), &mut s.reserve, CLOSE_QUEUED_MAX);
      }
      poll.close(Some(fd));
      if let Some(path) = s.unlink_on_close.take() {
        let _ = std::fs::remove_file(path);
      }
    }
    if let Some(timer) = s.retry.take() {
      timer.close();
    }
    s.sched = Box::new(RoundRobin::default());
    s.workers.clear();
    s.reserve.release();
  }
}

fn remove_worker(state: &RrShared, id: WorkerId) -> bool {
  let (handoffs, empty) = {
    let mut s = state.borrow_mut();
    s.workers.remove(&id);
    s.sched.remove(id)
  };
  perform(state, handoffs);
  resume_accepting(state);
  empty
}

/// A worker answered a `newconn` of this handle.
pub fn answered(state: &RrShared, worker: WorkerId, accepted: bool) {
  let handoffs = {
    let mut s = state.borrow_mut();
    if accepted {
      s.retry_ms = RETRY_FIRST_MS;
    }
    let mut handoffs = s.sched.answered(worker, accepted);
    if s.leaving.remove(&worker) {
      // Its answer settled the connection; now it really leaves (what the scheduler just
      // meant to give it goes back to the queue instead).
      handoffs.retain(|h| h.worker != worker);
      s.workers.remove(&worker);
      handoffs.extend(s.sched.remove(worker).0);
    }
    handoffs
  };
  perform(state, handoffs);
  resume_accepting(state);
  schedule_retry(state);
}

/// The worker's channel closed: a connection it never answered for goes to another worker.
pub fn worker_gone(state: &RrShared, worker: WorkerId) {
  let was_leaving = state.borrow_mut().leaving.remove(&worker);
  if was_leaving {
    remove_worker(state, worker);
  }
}

/// Arms the back-off timer when every worker refused and connections wait.
fn schedule_retry(state: &RrShared) {
  let mut s = state.borrow_mut();
  if !s.sched.needs_retry() {
    return;
  }
  let ms = s.retry_ms;
  s.retry_ms = (ms * 2).min(RETRY_MAX_MS);
  if let Some(timer) = &s.retry {
    timer.start(ms, on_retry);
  }
}

unsafe extern "C" fn on_retry(handle: *mut c_void) {
  // SAFETY: registered only on `Timer<Weak<RefCell<RrState>>>` handles.
  let Some(state) = (unsafe { Timer::<Weak<RefCell<RrState>>>::data(handle) }).upgrade() else {
    return;
  };
  let handoffs = {
    let mut s = state.borrow_mut();
    s.accept_paused = false;
    s.sched.retry()
  };
  perform(&state, handoffs);
  resume_accepting(&state);
  schedule_retry(&state);
}

/// Sends each hand-off's connection to its worker. A worker whose channel is gone leaves the
/// key, which puts its connection back in the queue for the others.
fn perform(state: &RrShared, mut handoffs: Vec<Handoff>) {
  while let Some(h) = handoffs.pop() {
    let worker = state
      .borrow()
      .workers
      .get(&h.worker)
      .and_then(Weak::upgrade);
    let sent = worker.as_ref().is_some_and(|w| {
      let s = state.borrow();
      let Some(conn) = s.sched.in_flight(h.worker) else {
        return false;
      };
      let seq = next_seq();
      let ok = send_internal(w, |mode, buf| encode_newconn(mode, &s.key, seq, buf), conn);
      if ok {
        w.borrow_mut().routes.insert(seq, Rc::downgrade(state));
      }
      ok
    });
    if !sent {
      let (more, _) = {
        let mut s = state.borrow_mut();
        s.workers.remove(&h.worker);
        s.sched.remove(h.worker)
      };
      handoffs.extend(more);
    }
  }
}

unsafe extern "C" fn on_acceptable(handle: *mut c_void, _status: c_int, _events: c_int) {
  // SAFETY: registered only on `Poll<Weak<RefCell<RrState>>>` handles.
  let Some(state) = (unsafe { Poll::<Weak<RefCell<RrState>>>::data(handle) }).upgrade() else {
    return;
  };
  pump(&state);
}

/// After an event that may have left a worker idle: takes what waits in the kernel's queue if
/// the listener is not watched (while it is, its poll reports what arrives; trying anyway
/// would cost an `accept4` per event for nothing).
fn resume_accepting(state: &RrShared) {
  let idle = {
    let s = state.borrow();
    !s.watching && !s.accept_paused
  };
  if idle {
    pump(state);
  }
}

/// Accepts when the scheduler wants a connection (a worker is idle), and then everything the
/// kernel's queue holds, up to `ACCEPTS_PER_TURN`, into ours, as Node's primary accepts all it
/// is offered: the answers that follow are served from our queue with no system call, and the
/// kernel's queue is emptied at least once per batch (one `accept4` that finds it empty per
/// batch, not per connection). The listener is watched exactly while a worker is idle; when
/// none is, what arrives waits in the kernel's queue until our own runs out.
fn pump(state: &RrShared) {
  let mut taken = 0;
  while taken < ACCEPTS_PER_TURN {
    let conn = {
      let mut s = state.borrow_mut();
      let s = &mut *s;
      if s.accept_paused {
        return;
      }
      let Some((poll, fd)) = &s.listener else {
        return;
      };
      if taken == 0 && !s.sched.wants_connection() {
        break;
      }
      match accept::accept(fd.as_fd(), &mut s.reserve) {
        Accepted::Conn(conn) => conn,
        Accepted::Shed => {
          taken += 1;
          continue;
        }
        Accepted::Empty => break,
        Accepted::Exhausted => {
          poll.stop();
          s.watching = false;
          s.accept_paused = true;
          if let Some(timer) = &s.retry {
            timer.start(EXHAUSTED_PAUSE_MS, on_retry);
          }
          return;
        }
      }
    };
    taken += 1;
    let handoffs = state.borrow_mut().sched.accepted(conn);
    perform(state, handoffs);
  }
  // Watch while a worker is idle (a batch cut short by the bound leaves the poll readable, so
  // it comes back at once); otherwise the next answer that leaves one idle takes more.
  let mut s = state.borrow_mut();
  let s = &mut *s;
  let want = s.sched.wants_connection();
  if let Some((poll, _)) = &s.listener {
    if want && !s.watching {
      s.watching = poll.start(uv::READABLE, on_acceptable).is_ok();
    } else if !want && s.watching {
      poll.stop();
      s.watching = false;
    }
  }
}
