//! `spawnWorker()` and the `WorkerHandle` class: one worker process, its channel and its exit,
//! driven by two `uv_poll` handles on Node's loop (see docs/binding-api.md).
//!
//! Threading rule: everything here runs on the JS thread. The poll callbacks borrow the state,
//! collect what happened, release the borrow, and only then call JS, which may call back into
//! `send`/`closeChannel` re-entrantly.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use std::collections::HashMap;
use std::rc::Weak;

use crate::binding::callback::{value, JsCallback};
use crate::binding::round_robin::{self, RrState};
use crate::binding::uv::{self, Poll};
use crate::core::channel::{Channel, ReadBatch};
use crate::core::exit::{self, ExitStatus};
use crate::core::framing::Serialization;
use crate::core::sched::WorkerId;
use crate::core::spawn::{self, SpawnOptions, StdioSlot};
use crate::error::{js, ClusterError};

const EV_MESSAGES: u32 = 1;
const EV_HANDLE_REPLY: u32 = 2;
const EV_WRITTEN: u32 = 3;
const EV_DISCONNECT: u32 = 4;
const EV_EXIT: u32 = 5;

const DEFAULT_MAX_FRAME: usize = 1 << 30;

#[napi(object)]
pub struct SpawnWorkerOptions {
  pub file: String,
  pub args: Vec<String>,
  pub env: Vec<String>,
  pub cwd: Option<String>,
  /// int32, as Node validates them; passed to setuid/setgid as the bit pattern.
  pub uid: Option<i32>,
  pub gid: Option<i32>,
  pub stdio: Vec<Either<String, i32>>,
  pub serialization: String,
  pub max_frame_bytes: Option<f64>,
}

pub type Shared = Rc<RefCell<State>>;

thread_local! {
  static NEXT_WORKER_ID: std::cell::Cell<WorkerId> = const { std::cell::Cell::new(1) };
}

struct ChannelSide {
  channel: Channel,
  poll: Poll<Shared>,
  /// Whether WRITABLE is armed (only while frames wait for the socket).
  watching_writes: bool,
}

struct ExitSide {
  pidfd: OwnedFd,
  poll: Poll<Shared>,
}

pub struct State {
  /// Rust's own number for the worker (schedulers key on it).
  pub id: WorkerId,
  /// Round-robin handles waiting for this worker's answer to a `newconn`, by its seq.
  pub routes: HashMap<u64, Weak<RefCell<RrState>>>,
  callback: Option<JsCallback>,
  channel: Option<ChannelSide>,
  exit: Option<ExitSide>,
  /// Set when the channel failed to write (the worker is gone): sends fail fast until EOF.
  write_error: Option<i32>,
  reported_written: u64,
}

impl State {
  /// Arms or disarms WRITABLE to match whether frames wait for the socket.
  fn rearm(&mut self) {
    if let Some(side) = &mut self.channel {
      let want = side.channel.wants_write();
      if want != side.watching_writes {
        let events = uv::READABLE | uv::DISCONNECT | if want { uv::WRITABLE } else { 0 };
        if side.poll.start(events, on_channel_ready).is_ok() {
          side.watching_writes = want;
        }
      }
    }
  }

  fn close_channel(&mut self) {
    if let Some(side) = self.channel.take() {
      let mut channel = side.channel;
      channel.discard_queue();
      side.poll.close(Some(channel.into_socket()));
    }
    self.release_if_done();
  }

  fn release_if_done(&mut self) {
    if self.channel.is_none() && self.exit.is_none() {
      // Nothing can call JS any more: let the function (and whatever it closes over) go.
      self.callback = None;
    }
  }

  /// Writes what is ready; on a write error, drops the queue and remembers the error.
  fn flush(&mut self) {
    if let Some(side) = &mut self.channel {
      if let Err(e) = side.channel.flush() {
        side.channel.discard_queue();
        self.write_error = e.raw_os_error();
      }
    }
    self.rearm();
  }
}

#[napi]
pub struct WorkerHandle {
  state: Shared,
  pid: i32,
  stdio_fds: Vec<Option<i32>>,
}

fn parse_stdio(entries: Vec<Either<String, i32>>) -> Result<Vec<StdioSlot>> {
  entries
    .into_iter()
    .map(|e| match e {
      Either::A(s) => match s.as_str() {
        "pipe" | "overlapped" => Ok(StdioSlot::Pipe),
        "inherit" => Ok(StdioSlot::Inherit),
        "ignore" => Ok(StdioSlot::Ignore),
        "ipc" => Ok(StdioSlot::Ipc),
        other => Err(Error::new(
          Status::InvalidArg,
          format!("unknown stdio entry {other:?}"),
        )),
      },
      Either::B(fd) => Ok(StdioSlot::Fd(fd)),
    })
    .collect()
}

/// Spawns a worker and starts watching its channel and its exit. See docs/binding-api.md.
#[napi]
pub fn spawn_worker(
  env: Env,
  options: SpawnWorkerOptions,
  on_event: Unknown,
) -> Result<WorkerHandle> {
  let mode = match options.serialization.as_str() {
    "json" => Serialization::Json,
    "advanced" => Serialization::Advanced,
    other => {
      return Err(Error::new(
        Status::InvalidArg,
        format!("unknown serialization {other:?}"),
      ))
    }
  };
  let max_frame = options
    .max_frame_bytes
    .map(|n| n.max(1.0) as usize)
    .unwrap_or(DEFAULT_MAX_FRAME);
  let opts = SpawnOptions {
    file: options.file,
    args: options.args,
    env: options.env,
    cwd: options.cwd,
    uid: options.uid.map(|u| u as u32),
    gid: options.gid.map(|g| g as u32),
    stdio: parse_stdio(options.stdio)?,
  };
  let raw_env = env.raw();
  let spawned = spawn::spawn(&opts).map_err(|e| js::throw(raw_env, &e))?;
  let uv_loop = env.get_uv_event_loop()?.cast::<c_void>();
  // SAFETY: `on_event` is a live value of this call, on the JS thread.
  let callback = unsafe { JsCallback::new(raw_env, on_event.raw(), "cluster-rs:worker")? };

  let id = NEXT_WORKER_ID.with(|n| {
    let v = n.get();
    n.set(v.wrapping_add(1));
    v
  });
  let state: Shared = Rc::new(RefCell::new(State {
    id,
    routes: HashMap::new(),
    callback: Some(callback),
    channel: None,
    exit: None,
    write_error: None,
    reported_written: 0,
  }));
  let channel = Channel::new(spawned.channel, mode, max_frame);
  // SAFETY: `uv_loop` is this thread's loop, from napi_get_uv_event_loop.
  let channel_poll = unsafe { Poll::new(uv_loop, channel.fd().as_raw_fd(), state.clone()) }
    .map_err(|e| js::throw(raw_env, &ClusterError::os("uv_poll_init", e)))?;
  channel_poll
    .start(uv::READABLE | uv::DISCONNECT, on_channel_ready)
    .map_err(|e| js::throw(raw_env, &ClusterError::os("uv_poll_start", e)))?;
  // SAFETY: as above.
  let exit_poll = unsafe { Poll::new(uv_loop, spawned.pidfd.as_raw_fd(), state.clone()) }
    .map_err(|e| js::throw(raw_env, &ClusterError::os("uv_poll_init", e)))?;
  exit_poll
    .start(uv::READABLE, on_exit_ready)
    .map_err(|e| js::throw(raw_env, &ClusterError::os("uv_poll_start", e)))?;
  {
    let mut s = state.borrow_mut();
    s.channel = Some(ChannelSide {
      channel,
      poll: channel_poll,
      watching_writes: false,
    });
    s.exit = Some(ExitSide {
      pidfd: spawned.pidfd,
      poll: exit_poll,
    });
  }
  let stdio_fds = spawned
    .pipes
    .into_iter()
    .map(|p| p.map(OwnedFd::into_raw_fd))
    .collect();
  Ok(WorkerHandle {
    state,
    pid: spawned.pid,
    stdio_fds,
  })
}

impl WorkerHandle {
  pub fn shared(&self) -> Shared {
    self.state.clone()
  }
}

/// Queues a frame built by Rust (in the channel's format) with an fd; false when the channel
/// is closed or broken (the caller then treats the worker as gone).
pub fn send_internal(
  worker: &Shared,
  frame: impl FnOnce(Serialization) -> Vec<u8>,
  fd: Rc<OwnedFd>,
) -> bool {
  let mut s = worker.borrow_mut();
  if s.write_error.is_some() {
    return false;
  }
  let Some(side) = s.channel.as_mut() else {
    return false;
  };
  let bytes = frame(side.channel.mode());
  match side.channel.send(bytes, Some(fd), 0, false) {
    Ok(_) => {
      s.rearm();
      true
    }
    Err(e) => {
      if let Some(side) = s.channel.as_mut() {
        side.channel.discard_queue();
      }
      s.write_error = e.errno().map(|n| -n);
      false
    }
  }
}

/// Passes the worker's answers to Rust's `newconn`s to the round-robin handles that sent them.
fn route_newconn_replies(state: &Shared, replies: Vec<(u64, bool)>) {
  for (seq, accepted) in replies {
    let (rr, id) = {
      let mut s = state.borrow_mut();
      (s.routes.remove(&seq).and_then(|w| w.upgrade()), s.id)
    };
    if let Some(rr) = rr {
      round_robin::answered(&rr, id, accepted);
    }
  }
}

#[napi]
impl WorkerHandle {
  #[napi(getter)]
  pub fn pid(&self) -> i32 {
    self.pid
  }

  /// The primary's end of each 'pipe' slot; JavaScript owns these fds.
  #[napi(getter)]
  pub fn stdio_fds(&self) -> Vec<Option<i32>> {
    self.stdio_fds.clone()
  }

  #[napi(getter)]
  pub fn write_queue_size(&self) -> u32 {
    self
      .state
      .borrow()
      .channel
      .as_ref()
      .map_or(0, |c| c.channel.queued_bytes() as u32)
  }

  #[napi(getter)]
  pub fn channel_open(&self) -> bool {
    self.state.borrow().channel.is_some()
  }

  /// Queues one encoded frame (see docs/binding-api.md); returns the bytes still queued.
  #[napi]
  pub fn send(
    &self,
    env: Env,
    frame: Either<String, Buffer>,
    fd: i32,
    id: f64,
    bypass: bool,
  ) -> Result<u32> {
    let bytes = match frame {
      Either::A(s) => s.into_bytes(),
      Either::B(b) => b.to_vec(),
    };
    let mut s = self.state.borrow_mut();
    if let Some(errno) = s.write_error {
      let err = ClusterError::os("write", std::io::Error::from_raw_os_error(errno));
      return Err(js::throw(env.raw(), &err));
    }
    let Some(side) = s.channel.as_mut() else {
      return Err(js::throw(env.raw(), &ClusterError::ChannelClosed));
    };
    // JS keeps its handle (and may close it any time after this call): the frame gets a copy.
    let owned = if fd >= 0 {
      // SAFETY: JS passes the fd of a handle it keeps open for the duration of this call.
      let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
      match borrowed.try_clone_to_owned() {
        Ok(f) => Some(Rc::new(f)),
        Err(e) => return Err(js::throw(env.raw(), &ClusterError::os("dup", e))),
      }
    } else {
      None
    };
    match side.channel.send(bytes, owned, id as u64, bypass) {
      Ok(queued) => {
        s.rearm();
        Ok(queued as u32)
      }
      Err(e) => {
        if let Some(side) = s.channel.as_mut() {
          side.channel.discard_queue();
        }
        s.write_error = e.errno().map(|n| -n);
        Err(js::throw(env.raw(), &e))
      }
    }
  }

  /// Closes the primary's end of the channel now. Idempotent; no DISCONNECT event follows.
  #[napi]
  pub fn close_channel(&self) {
    self.state.borrow_mut().close_channel();
  }

  #[napi]
  pub fn ref_channel(&self) {
    if let Some(side) = &self.state.borrow().channel {
      side.poll.set_ref(true);
    }
  }

  #[napi]
  pub fn unref_channel(&self) {
    if let Some(side) = &self.state.borrow().channel {
      side.poll.set_ref(false);
    }
  }

  #[napi]
  pub fn ref_process(&self) {
    if let Some(side) = &self.state.borrow().exit {
      side.poll.set_ref(true);
    }
  }

  #[napi]
  pub fn unref_process(&self) {
    if let Some(side) = &self.state.borrow().exit {
      side.poll.set_ref(false);
    }
  }

  /// Sends `signal`; returns 0 or a negative errno (`-ESRCH` once the worker has exited).
  #[napi]
  pub fn kill(&self, signal: i32) -> i32 {
    match &self.state.borrow().exit {
      Some(side) => match exit::send_signal(side.pidfd.as_fd(), signal) {
        Ok(()) => 0,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EINVAL),
      },
      None => -libc::ESRCH,
    }
  }
}

/// What a channel turn produced, to report to JS once the state is no longer borrowed.
#[derive(Default)]
struct ChannelReport {
  batch: Option<ReadBatch>,
  mode: Option<Serialization>,
  written: Option<u64>,
  disconnect: Option<Option<ClusterError>>,
}

/// Reads and writes what the channel is ready for. Runs with the state borrowed.
fn channel_turn(s: &mut State, readable: bool, writable: bool) -> ChannelReport {
  let mut report = ChannelReport::default();
  let Some(side) = s.channel.as_mut() else {
    return report;
  };
  report.mode = Some(side.channel.mode());
  if writable {
    s.flush();
  }
  if readable {
    let Some(side) = s.channel.as_mut() else {
      return report;
    };
    match side.channel.read() {
      Ok(batch) => {
        let eof = batch.eof;
        let replied = !batch.replies.is_empty();
        report.batch = Some(batch);
        if replied {
          // Frames held behind the answered fd can go now.
          s.flush();
        }
        if eof {
          report.disconnect = Some(None);
        }
      }
      Err(e) => report.disconnect = Some(Some(e)),
    }
  }
  if let Some(side) = &s.channel {
    let written = side.channel.last_written_id();
    if written > s.reported_written {
      s.reported_written = written;
      report.written = Some(written);
    }
  }
  if report.disconnect.is_some() {
    s.close_channel();
  }
  report
}

/// Calls JS with everything in `report`, in order: messages, handle replies, written, disconnect.
fn deliver(cb: &JsCallback, report: ChannelReport) {
  if let Some(batch) = report.batch {
    if batch.has_messages() {
      let json = report.mode == Some(Serialization::Json);
      let mut too_large = false;
      cb.call(|env| {
        let payload = if json {
          value::string(env, &batch.json).unwrap_or_else(|| {
            too_large = true;
            value::undefined(env)
          })
        } else {
          let frames: Vec<_> = batch.frames.iter().map(|f| value::buffer(env, f)).collect();
          value::array(env, &frames)
        };
        let fds = if batch.fds.is_empty() {
          value::undefined(env)
        } else {
          // Ownership of the received fds passes to JS here.
          let nums: Vec<_> = batch
            .fds
            .into_iter()
            .map(|f| value::number(env, f.into_raw_fd() as f64))
            .collect();
          value::array(env, &nums)
        };
        vec![value::number(env, EV_MESSAGES as f64), payload, fds]
      });
      debug_assert!(!too_large, "a JSON frame larger than V8's string limit");
    }
    for (id, acked) in batch.replies {
      if id != 0 {
        cb.call(|env| {
          vec![
            value::number(env, EV_HANDLE_REPLY as f64),
            value::number(env, id as f64),
            value::boolean(env, acked),
          ]
        });
      }
    }
  }
  if let Some(id) = report.written {
    cb.call(|env| {
      vec![
        value::number(env, EV_WRITTEN as f64),
        value::number(env, id as f64),
      ]
    });
  }
  if let Some(err) = report.disconnect {
    cb.call(|env| {
      let e = err
        .as_ref()
        .map_or_else(|| value::null(env), |e| js::to_value(env, e));
      vec![value::number(env, EV_DISCONNECT as f64), e]
    });
  }
}

/// Hands a turn's results on: newconn answers to the schedulers, the rest to JS.
fn finish_turn(state: &Shared, mut report: ChannelReport) {
  if let Some(batch) = report.batch.as_mut() {
    let replies = std::mem::take(&mut batch.newconn_replies);
    route_newconn_replies(state, replies);
  }
  with_callback(state, |cb| deliver(cb, report));
}

/// Takes the callback out of the state for the duration of a JS call (so JS can re-enter).
fn with_callback(state: &Shared, f: impl FnOnce(&JsCallback)) {
  let cb = state.borrow_mut().callback.take();
  if let Some(cb) = cb {
    f(&cb);
    let mut s = state.borrow_mut();
    if s.channel.is_some() || s.exit.is_some() {
      s.callback = Some(cb);
    }
  }
}

unsafe extern "C" fn on_channel_ready(handle: *mut c_void, status: c_int, events: c_int) {
  // SAFETY: this callback is only registered on `Poll<Shared>` handles.
  let state = unsafe { Poll::<Shared>::data(handle) }.clone();
  let report = {
    let mut s = state.borrow_mut();
    // A poll error reads as readable: the read returns the real error (or EOF).
    let readable = status < 0 || events & (uv::READABLE | uv::DISCONNECT) != 0;
    channel_turn(&mut s, readable, events & uv::WRITABLE != 0)
  };
  finish_turn(&state, report);
}

unsafe extern "C" fn on_exit_ready(handle: *mut c_void, _status: c_int, _events: c_int) {
  // SAFETY: this callback is only registered on `Poll<Shared>` handles.
  let state = unsafe { Poll::<Shared>::data(handle) }.clone();
  // A process's fds are closed before its exit is signalled, so whatever it sent, and its EOF,
  // can be read now: report them first, as Node usually sees disconnect before exit.
  loop {
    let report = channel_turn(&mut state.borrow_mut(), true, false);
    let more = report
      .batch
      .as_ref()
      .is_some_and(|b| !b.eof && b.has_messages());
    with_callback(&state, |cb| deliver(cb, report));
    if !more {
      break;
    }
  }
  let status = {
    let mut s = state.borrow_mut();
    let Some(side) = s.exit.as_ref() else { return };
    match exit::try_reap(side.pidfd.as_fd()) {
      Ok(None) => return,
      Ok(Some(st)) => {
        let side = s.exit.take().expect("checked above");
        side.poll.close(Some(side.pidfd));
        st
      }
      Err(_) => {
        let side = s.exit.take().expect("checked above");
        side.poll.close(Some(side.pidfd));
        ExitStatus::Code(-1)
      }
    }
  };
  with_callback(&state, |cb| {
    cb.call(|env| {
      let (code, signal) = match status {
        ExitStatus::Code(c) => (value::number(env, c as f64), value::null(env)),
        ExitStatus::Signal(s) => (value::null(env), value::number(env, s as f64)),
      };
      vec![value::number(env, EV_EXIT as f64), code, signal]
    })
  });
  state.borrow_mut().release_if_done();
}
