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

use crate::binding::callback::{self, value, JsCallback};
use crate::binding::round_robin::{self, RrState};
use crate::binding::uv::{self, Poll};
use crate::core::channel::{Channel, ReadBatch, Sent};
use crate::core::exit::{self, ExitStatus};
use crate::core::framing::{decode_primitive, Primitive, Serialization};
use crate::core::sched::WorkerId;
use crate::core::spawn::{self, SpawnOptions, StdioSlot};
use crate::error::{js, ClusterError};

const EV_MESSAGES: u32 = 1;
const EV_HANDLE_REPLY: u32 = 2;
const EV_WRITTEN: u32 = 3;
const EV_DISCONNECT: u32 = 4;
const EV_EXIT: u32 = 5;
const EV_WRITE_FAILED: u32 = 6;

/// `send()` flags.
const SEND_BYPASS: u32 = 1;
const SEND_NOTIFY: u32 = 2;

/// Received frames at least this large go to JavaScript without a copy (an external buffer
/// that owns the bytes); smaller batches are copied, which is cheaper than a finalizer.
const EXTERNAL_BUFFER_MIN: usize = 256 * 1024;

/// Advanced batches of primitives are decoded here up to this many frames and bytes.
const PRIMITIVES_MAX: usize = 256;
const PRIMITIVES_MAX_BYTES: usize = 64 * 1024;

/// JSON batches larger than this reach JS as several strings (see `json_value`).
const JSON_STRING_CHUNK: usize = 64 * 1024;

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
  /// The worker's reader stalls on a length prefix split across reads (old Node lines in
  /// advanced mode): see `Channel::for_split_sensitive_reader`.
  pub split_sensitive_reader: Option<bool>,
  /// `0`: the worker leads a new process group; a pgid: it joins that group; absent: ours.
  pub process_group: Option<i32>,
}

pub type Shared = Rc<RefCell<State>>;

thread_local! {
  static NEXT_WORKER_ID: std::cell::Cell<WorkerId> = const { std::cell::Cell::new(1) };
  /// Every worker whose handle JS still holds, by id, for `sendFrame`: naming the worker by a
  /// number costs a map lookup, where a method call on the class instance costs napi-rs a
  /// type-tag check, an unwrap and a borrow registration (about 13% of the primary's CPU time
  /// in a flood of small messages, by perf).
  static BY_ID: RefCell<HashMap<WorkerId, Weak<RefCell<State>>>> = RefCell::new(HashMap::new());
  static DEFER: RefCell<DeferState> = const {
    RefCell::new(DeferState { depth: 0, dirty: Vec::new(), off: false })
  };
}

/// Write batching. While one of our loop callbacks runs JavaScript (messages, exits), the
/// frames JS sends are queued without a write; when the callback is done, every channel that
/// got frames is flushed, so the replies to a read turn go out in one write per channel
/// instead of one per message. Node's built-in writes each message at once; the difference
/// is not observable from JS: send callbacks still run once the bytes are written, a frame
/// is still on the socket before `disconnect()`/`kill()` act and before the process exits
/// (`flushDeferred` on 'exit'), and a write error still reaches the sender (EV_WRITE_FAILED).
struct DeferState {
  /// How many of our callbacks are on the stack; frames are deferred while it is > 0.
  depth: u32,
  /// Channels with deferred frames, each once.
  dirty: Vec<Shared>,
  /// Set once the process exits: every later frame is written at once.
  off: bool,
}

fn deferring() -> bool {
  DEFER.with(|d| {
    let d = d.borrow();
    d.depth > 0 && !d.off
  })
}

/// Runs `f` (which calls JS) with write batching on, then flushes what JS deferred.
fn batching_writes(f: impl FnOnce()) {
  DEFER.with(|d| d.borrow_mut().depth += 1);
  f();
  // The flush reports to JS (WRITTEN), which may send again: repeat until nothing is left.
  loop {
    let dirty = DEFER.with(|d| std::mem::take(&mut d.borrow_mut().dirty));
    if dirty.is_empty() {
      break;
    }
    for state in dirty {
      flush_deferred_of(&state);
    }
  }
  DEFER.with(|d| d.borrow_mut().depth -= 1);
}

/// Writes the frames deferred on one channel and tells JS what became of them.
fn flush_deferred_of(state: &Shared) {
  let report = {
    let mut s = state.borrow_mut();
    s.dirty = false;
    s.flush_now();
    ChannelReport {
      write_failed: s.write_failed.take(),
      written: s.take_written(),
      ..ChannelReport::default()
    }
  };
  if report.written.is_some() || report.write_failed.is_some() {
    with_callback(state, |cb| {
      deliver(cb, report);
    });
  }
}

/// Writes every deferred frame now, without calling JS (the process is exiting), and stops
/// deferring for good.
#[napi]
pub fn flush_deferred() {
  let dirty = DEFER.with(|d| {
    let mut d = d.borrow_mut();
    d.off = true;
    std::mem::take(&mut d.dirty)
  });
  for state in dirty {
    if let Ok(mut s) = state.try_borrow_mut() {
      s.dirty = false;
      s.flush_now();
    }
  }
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
  /// Connections Rust handed to this worker that it accepted (`newconn` answered `true`).
  pub handed_out: u64,
  /// Frames JS asked to send (every `send` call, failed ones too): `stats().messagesOut`.
  frames_out: u64,
  /// Round-robin handles waiting for this worker's answer to a `newconn`, by its seq.
  pub routes: HashMap<u64, Weak<RefCell<RrState>>>,
  /// Round-robin handles to tell, once the state is no longer borrowed, that the channel
  /// closed with `newconn`s unanswered.
  gone_routes: Vec<Weak<RefCell<RrState>>>,
  callback: Option<JsCallback>,
  channel: Option<ChannelSide>,
  exit: Option<ExitSide>,
  /// Set when the channel failed to write (the worker is gone): sends fail fast until EOF.
  write_error: Option<i32>,
  reported_written: u64,
  /// The lowest id past `reported_written` whose sender wants to hear it is written (a send
  /// callback waits): WRITTEN is reported only then.
  notify_from: Option<u64>,
  /// The highest id that asked for WRITTEN.
  notify_max: u64,
  /// Listed in `DEFER.dirty` (deferred frames wait for the end of the callback).
  dirty: bool,
  /// A failed flush of deferred frames, to report to JS: the error and the unwritten ids.
  write_failed: Option<(ClusterError, Vec<u64>)>,
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

  /// Closes the channel. `flush_first`: what the socket takes now is written before the
  /// rest is dropped (a local disconnect: frames sent before it were, in Node, written
  /// already, unless the socket was full).
  pub fn channel_is_open(&self) -> bool {
    self.channel.is_some()
  }

  fn close_channel(&mut self, flush_first: bool) {
    self
      .gone_routes
      .extend(self.routes.drain().map(|(_, rr)| rr));
    if let Some(side) = self.channel.take() {
      let mut channel = side.channel;
      if flush_first && self.write_error.is_none() {
        let _ = channel.flush();
      }
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

  /// Writes what is ready, deferred frames included. On a write error, drops the queue and
  /// keeps the error, with the ids of the frames that were never written, for JS.
  fn flush_now(&mut self) {
    let Some(side) = self.channel.as_mut() else {
      return;
    };
    if let Err(e) = side.channel.flush() {
      let ids = side.channel.discard_queue();
      self.write_error = e.raw_os_error();
      self.write_failed = Some((ClusterError::os("write", e), ids));
    }
    self.rearm();
  }

  /// The highest id written since the last report, if it moved.
  fn take_written(&mut self) -> Option<u64> {
    let written = self.channel.as_ref()?.channel.last_written_id();
    let from = self.notify_from?;
    if written >= from {
      self.reported_written = written;
      // Ids that asked after `from` and are not written yet: report the next progress.
      self.notify_from = (self.notify_max > written).then_some(written + 1);
      Some(written)
    } else {
      None
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
    process_group: options.process_group,
  };
  let raw_env = env.raw();
  let spawned = spawn::spawn(&opts).map_err(|e| js::throw(raw_env, &e))?;
  super::teardown::ensure_hook(&env)?;
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
    gone_routes: Vec::new(),
    callback: Some(callback),
    channel: None,
    exit: None,
    write_error: None,
    reported_written: 0,
    notify_from: None,
    notify_max: 0,
    handed_out: 0,
    frames_out: 0,
    dirty: false,
    write_failed: None,
  }));
  let channel = if options.split_sensitive_reader == Some(true) {
    Channel::for_split_sensitive_reader(spawned.channel, mode, max_frame)
      .map_err(|e| js::throw(raw_env, &ClusterError::os("setsockopt", e)))?
  } else {
    Channel::new(spawned.channel, mode, max_frame)
  };
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
  BY_ID.with(|m| m.borrow_mut().insert(id, Rc::downgrade(&state)));
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

impl Drop for WorkerHandle {
  fn drop(&mut self) {
    let id = self.state.borrow().id;
    // `try_with`: the thread's locals may be gone already when the process exits.
    let _ = BY_ID.try_with(|m| m.borrow_mut().remove(&id));
  }
}

/// At the environment's teardown (see `teardown`): the pidfds of the workers still running,
/// taken from their exit watches (whose poll handles `uv::close_all` closes next). Whoever
/// holds a pidfd can reap that child.
pub fn take_unreaped() -> Vec<OwnedFd> {
  let states: Vec<Shared> = BY_ID.with(|m| m.borrow().values().filter_map(Weak::upgrade).collect());
  let mut pidfds = Vec::new();
  for state in states {
    let Ok(mut s) = state.try_borrow_mut() else {
      continue;
    };
    // The poll is not closed here: its handle is still listed as open, and `uv::close_all`
    // closes it.
    if let Some(ExitSide { pidfd, poll: _ }) = s.exit.take() {
      pidfds.push(pidfd);
    }
  }
  pidfds
}

/// `WorkerHandle.send` for the worker numbered `worker` (its `workerId`): the same call
/// without a class instance to unwrap, for the per-message path.
#[napi(
  ts_args_type = "worker: number, frame: string | Buffer, fd: number, id: number, flags: number"
)]
pub fn send_frame(
  env: Env,
  worker: u32,
  frame: Unknown,
  fd: i32,
  id: f64,
  flags: u32,
) -> Result<f64> {
  let state = BY_ID.with(|m| m.borrow().get(&worker).and_then(Weak::upgrade));
  match state {
    Some(state) => send_frame_to(&state, env, frame, fd, id, flags),
    None => Err(js::throw(env.raw(), &ClusterError::ChannelClosed)),
  }
}

/// Queues a frame built by Rust (in the channel's format, appended by `frame` to an empty
/// buffer) with an fd; false when the channel is closed or broken (the caller then treats the
/// worker as gone).
pub fn send_internal(
  worker: &Shared,
  frame: impl FnOnce(Serialization, &mut Vec<u8>),
  fd: Rc<OwnedFd>,
) -> bool {
  let mut s = worker.borrow_mut();
  if s.write_error.is_some() {
    return false;
  }
  let Some(side) = s.channel.as_mut() else {
    return false;
  };
  // Built in a buffer recycled from written frames: a hand-off allocates none.
  let mut bytes = side.channel.take_buffer();
  frame(side.channel.mode(), &mut bytes);
  match side.channel.send(bytes, Some(fd), 0, false, false) {
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
      if accepted {
        s.handed_out += 1;
      }
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

  /// Connections the primary handed to this worker and it accepted (round-robin and the other
  /// primary-side policies, and connections drained from a closed reuseport socket).
  #[napi(getter)]
  pub fn connections_handed_out(&self) -> f64 {
    self.state.borrow().handed_out as f64
  }

  /// Queues one encoded frame (see docs/binding-api.md). Returns 0 when it is written, -1
  /// when it is deferred to the end of the current loop callback, otherwise the bytes queued.
  /// `flags`: `SEND_BYPASS` (a handle reply, past the handle queue), `SEND_NOTIFY` (report
  /// WRITTEN for this id).
  #[napi(ts_args_type = "frame: string | Buffer, fd: number, id: number, flags: number")]
  pub fn send(&self, env: Env, frame: Unknown, fd: i32, id: f64, flags: u32) -> Result<f64> {
    send_frame_to(&self.state, env, frame, fd, id, flags)
  }

  /// The number `sendFrame` knows this worker by.
  #[napi(getter)]
  pub fn worker_id(&self) -> u32 {
    self.state.borrow().id
  }

  /// Frames JS asked to send to this worker (`send`/`sendFrame` calls).
  #[napi(getter)]
  pub fn frames_out(&self) -> f64 {
    self.state.borrow().frames_out as f64
  }

  /// Writes the frames batched for the end of the current callback now (their WRITTEN
  /// report still comes with the batch).
  #[napi]
  pub fn flush(&self) {
    let mut s = self.state.borrow_mut();
    if s.channel.as_ref().is_some_and(|c| c.channel.has_deferred()) {
      s.flush_now();
    }
  }

  /// Closes the primary's end of the channel now. Idempotent; no DISCONNECT event follows.
  #[napi]
  pub fn close_channel(&self) {
    self.state.borrow_mut().close_channel(true);
    notify_gone(&self.state);
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
    // Frames sent before the signal are on the socket first, as with Node's direct writes.
    {
      let mut s = self.state.borrow_mut();
      if s.channel.as_ref().is_some_and(|c| c.channel.has_deferred()) {
        // A write error is reported when the batch is flushed (the state stays listed).
        s.flush_now();
      }
    }
    match &self.state.borrow().exit {
      Some(side) => match exit::send_signal(side.pidfd.as_fd(), signal) {
        Ok(()) => 0,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EINVAL),
      },
      None => -libc::ESRCH,
    }
  }
}

/// Queues one encoded frame from JS (see docs/binding-api.md, `send`).
fn send_frame_to(
  state: &Shared,
  env: Env,
  frame: Unknown,
  fd: i32,
  id: f64,
  flags: u32,
) -> Result<f64> {
  let bypass = flags & SEND_BYPASS != 0;
  let mut s = state.borrow_mut();
  s.frames_out += 1;
  if flags & SEND_NOTIFY != 0 {
    s.notify_max = id as u64;
    if s.notify_from.is_none() {
      s.notify_from = Some(id as u64);
    }
  }
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
  let defer = deferring();
  let id = id as u64;
  // SAFETY: `frame` is a live value of this call, on the JS thread.
  let sent = match unsafe { frame_bytes(env.raw(), frame.raw()) }? {
    FrameBytes::Text(string) => {
      // A JSON text: UTF-8 plus its newline, encoded straight into the buffer that goes
      // on the wire (the queue's last frame's, when it can take it).
      // SAFETY: as above; `string` is a JS string.
      let len = unsafe { utf8_length(env.raw(), string) }? + 1;
      // SAFETY: as above.
      let fill = |buf: &mut Vec<u8>| unsafe { utf8_append(env.raw(), string, len - 1, buf) };
      match owned {
        None => side.channel.send_with(len, id, bypass, defer, fill),
        Some(fd) => {
          let mut buf = side.channel.take_buffer();
          if fill(&mut buf) {
            side.channel.send(buf, Some(fd), id, bypass, defer)
          } else {
            Err(ClusterError::InvalidArg(
              "a frame is a string or a Buffer".into(),
            ))
          }
        }
      }
    }
    // SAFETY: the Buffer's memory stays valid and unchanged during this call.
    FrameBytes::Bytes(ptr, len) => {
      let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
      side.channel.send_slice(bytes, owned, id, bypass, defer)
    }
  };
  match sent {
    Ok(sent) => {
      s.rearm();
      Ok(match sent {
        Sent::Written => 0.0,
        Sent::Deferred => {
          if !s.dirty {
            s.dirty = true;
            DEFER.with(|d| d.borrow_mut().dirty.push(state.clone()));
          }
          -1.0
        }
        Sent::Queued(n) => n as f64,
      })
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

enum FrameBytes {
  Text(napi::sys::napi_value),
  Bytes(*const u8, usize),
}

/// Whether a frame from JS is a string or a Buffer (any Uint8Array), without copying it.
///
/// # Safety
/// `env` and `value` must be valid in the current call on the JS thread.
unsafe fn frame_bytes(
  env: napi::sys::napi_env,
  value: napi::sys::napi_value,
) -> Result<FrameBytes> {
  use napi::sys;
  let mut kind = 0;
  // SAFETY: per the contract.
  callback::check(unsafe { sys::napi_typeof(env, value, &mut kind) })?;
  if kind == sys::ValueType::napi_string {
    return Ok(FrameBytes::Text(value));
  }
  let mut is_typed = false;
  // SAFETY: per the contract.
  callback::check(unsafe { sys::napi_is_typedarray(env, value, &mut is_typed) })?;
  if is_typed {
    let mut ty = 0;
    let mut len = 0;
    let mut data = std::ptr::null_mut();
    // SAFETY: per the contract; the out-pointers are valid.
    callback::check(unsafe {
      sys::napi_get_typedarray_info(
        env,
        value,
        &mut ty,
        &mut len,
        &mut data,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
      )
    })?;
    if ty == sys::TypedarrayType::uint8_array {
      let ptr = if len == 0 {
        std::ptr::NonNull::dangling().as_ptr()
      } else {
        data.cast::<u8>()
      };
      return Ok(FrameBytes::Bytes(ptr, len));
    }
  }
  Err(Error::new(
    Status::InvalidArg,
    "a frame is a string or a Buffer",
  ))
}

/// The UTF-8 length of the JS string `value`.
///
/// # Safety
/// `env` and `value` (a string) must be valid in the current call on the JS thread.
unsafe fn utf8_length(env: napi::sys::napi_env, value: napi::sys::napi_value) -> Result<usize> {
  let mut len = 0;
  // SAFETY: per the contract; a null buffer asks for the length.
  callback::check(unsafe {
    napi::sys::napi_get_value_string_utf8(env, value, std::ptr::null_mut(), 0, &mut len)
  })?;
  Ok(len)
}

/// Appends the UTF-8 encoding of the JS string `value` (`len` bytes, from `utf8_length`) and
/// a newline to `buf`. False if napi fails (nothing usable is appended then).
///
/// # Safety
/// `env` and `value` (a string) must be valid in the current call on the JS thread.
unsafe fn utf8_append(
  env: napi::sys::napi_env,
  value: napi::sys::napi_value,
  len: usize,
  buf: &mut Vec<u8>,
) -> bool {
  let start = buf.len();
  buf.reserve(len + 1);
  let mut written = 0;
  // SAFETY: `buf` has room for `len` bytes and the NUL napi writes after them.
  let status = unsafe {
    napi::sys::napi_get_value_string_utf8(
      env,
      value,
      buf.as_mut_ptr().add(start).cast(),
      len + 1,
      &mut written,
    )
  };
  if status != napi::sys::Status::napi_ok || written != len {
    return false;
  }
  // SAFETY: napi initialised the `written` bytes after `start`.
  unsafe { buf.set_len(start + written) };
  buf.push(b'\n');
  true
}

/// What a channel turn produced, to report to JS once the state is no longer borrowed.
#[derive(Default)]
struct ChannelReport {
  batch: Option<ReadBatch>,
  mode: Option<Serialization>,
  written: Option<u64>,
  /// Deferred frames could not be written: the error, and the ids never written.
  write_failed: Option<(ClusterError, Vec<u64>)>,
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
  report.written = s.take_written();
  if report.disconnect.is_some() {
    s.close_channel(false);
  }
  report
}

/// The received frames as a JS value: JSON, one string of the lines joined by `\n`;
/// advanced, one Buffer of the frames with their length prefixes. `undefined` when there are
/// none (only an fd arrived), `null` when V8 cannot hold them (over its string limit).
fn messages_value(
  env: napi::sys::napi_env,
  json: bool,
  batch: &mut ReadBatch,
) -> napi::sys::napi_value {
  if batch.frames == 0 {
    return value::undefined(env);
  }
  if json {
    return json_value(env, &batch.data).unwrap_or_else(|| value::null(env));
  }
  if let Some(values) = primitives_value(env, &batch.data, batch.frames) {
    return values;
  }
  if batch.data.len() >= EXTERNAL_BUFFER_MIN {
    let data = std::mem::take(&mut batch.data);
    return external_buffer(env, data).unwrap_or_else(|| value::null(env));
  }
  value::buffer(env, &batch.data)
}

/// Advanced frames that are all primitives (strings, numbers, booleans, null): an array of
/// their values, decoded here. `None` when any frame needs V8's deserializer (JS gets the
/// Buffer then).
fn primitives_value(
  env: napi::sys::napi_env,
  data: &[u8],
  frames: usize,
) -> Option<napi::sys::napi_value> {
  if frames > PRIMITIVES_MAX || data.len() > PRIMITIVES_MAX_BYTES {
    return None;
  }
  let mut decoded = Vec::with_capacity(frames);
  let mut rest = data;
  while let Some(head) = rest.get(..4) {
    let len = u32::from_be_bytes(head.try_into().ok()?) as usize;
    decoded.push(decode_primitive(rest.get(4..4 + len)?)?);
    rest = &rest[4 + len..];
  }
  let mut values = Vec::with_capacity(decoded.len());
  for p in decoded {
    values.push(primitive(env, p)?);
  }
  Some(value::array(env, &values))
}

fn primitive(env: napi::sys::napi_env, p: Primitive<'_>) -> Option<napi::sys::napi_value> {
  use napi::sys;
  let mut v = std::ptr::null_mut();
  // SAFETY: valid env and out-pointers; every pointer/length pair describes a live slice.
  let status = unsafe {
    match p {
      Primitive::OneByte(b) => {
        sys::napi_create_string_latin1(env, b.as_ptr().cast(), b.len() as isize, &mut v)
      }
      Primitive::TwoByte(b) => {
        let units: Vec<u16> = b
          .chunks_exact(2)
          .map(|c| u16::from_le_bytes([c[0], c[1]]))
          .collect();
        sys::napi_create_string_utf16(env, units.as_ptr(), units.len() as isize, &mut v)
      }
      Primitive::Utf8(b) => {
        sys::napi_create_string_utf8(env, b.as_ptr().cast(), b.len() as isize, &mut v)
      }
      Primitive::Int32(n) => sys::napi_create_int32(env, n, &mut v),
      Primitive::Uint32(n) => sys::napi_create_uint32(env, n, &mut v),
      Primitive::Double(n) => sys::napi_create_double(env, n, &mut v),
      Primitive::True => sys::napi_get_boolean(env, true, &mut v),
      Primitive::False => sys::napi_get_boolean(env, false, &mut v),
      Primitive::Null => sys::napi_get_null(env, &mut v),
      Primitive::Undefined => sys::napi_get_undefined(env, &mut v),
    }
  };
  (status == sys::Status::napi_ok).then_some(v)
}

/// JSON lines joined by `\n` as one string, or, past `JSON_STRING_CHUNK`, as an array of
/// strings of whole lines each about that long: V8 puts strings over 128 KiB in its
/// large-object space (fresh pages for every batch), and a batch of large messages must not
/// become one such string when the messages themselves are not.
fn json_value(env: napi::sys::napi_env, data: &[u8]) -> Option<napi::sys::napi_value> {
  if data.len() <= JSON_STRING_CHUNK {
    return value::string(env, data);
  }
  let mut parts = Vec::new();
  let mut start = 0;
  while start <= data.len() {
    let from = (start + JSON_STRING_CHUNK).min(data.len());
    let end = data[from..]
      .iter()
      .position(|&b| b == b'\n')
      .map_or(data.len(), |i| from + i);
    parts.push(value::string(env, &data[start..end])?);
    start = end + 1;
  }
  Some(value::array(env, &parts))
}

/// A Buffer over `data` without a copy; the bytes are freed when V8 collects it. Falls back
/// to a copy where external buffers are not allowed; `None` if even that fails.
fn external_buffer(env: napi::sys::napi_env, data: Vec<u8>) -> Option<napi::sys::napi_value> {
  use napi::sys;
  unsafe extern "C" fn free_vec(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Box<Vec<u8>> leaked below, handed back exactly once.
    drop(unsafe { Box::from_raw(hint.cast::<Vec<u8>>()) });
  }
  let mut boxed = Box::new(data);
  let ptr = boxed.as_mut_ptr();
  let len = boxed.len();
  let hint = Box::into_raw(boxed);
  let mut v = std::ptr::null_mut();
  // SAFETY: `ptr`/`len` describe the Vec owned by `hint`, which stays alive (and unmoved: the
  // Vec's heap block does not move with the Box) until the finalizer frees it.
  let status = unsafe {
    sys::napi_create_external_buffer(env, len, ptr.cast(), Some(free_vec), hint.cast(), &mut v)
  };
  if status == sys::Status::napi_ok {
    return Some(v);
  }
  // SAFETY: the buffer was not created, so the finalizer will never run: reclaim the Vec.
  let data = unsafe { Box::from_raw(hint) };
  let mut err = std::ptr::null_mut();
  // SAFETY: clear whatever exception the failed creation may have left.
  unsafe { sys::napi_get_and_clear_last_exception(env, &mut err) };
  let v = value::buffer(env, &data);
  (!v.is_null()).then_some(v)
}

/// Calls JS with everything in `report`, in order: messages, handle replies, written, disconnect.
/// Returns the batch's data buffer when JS got a copy of it, for reuse.
fn deliver(cb: &JsCallback, report: ChannelReport) -> Option<Vec<u8>> {
  let mut leftover = None;
  if let Some(mut batch) = report.batch {
    if batch.has_messages() {
      let json = report.mode == Some(Serialization::Json);
      cb.call(|env| {
        let payload = messages_value(env, json, &mut batch);
        let fds = if batch.fds.is_empty() {
          value::undefined(env)
        } else {
          // Ownership of the received fds passes to JS here.
          let nums: Vec<_> = std::mem::take(&mut batch.fds)
            .into_iter()
            .map(|f| value::number(env, f.into_raw_fd() as f64))
            .collect();
          value::array(env, &nums)
        };
        vec![value::number(env, EV_MESSAGES as f64), payload, fds]
      });
    }
    leftover = Some(std::mem::take(&mut batch.data));
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
  if let Some((err, ids)) = report.write_failed {
    cb.call(|env| {
      let ids: Vec<_> = ids
        .iter()
        .map(|&id| value::number(env, id as f64))
        .collect();
      vec![
        value::number(env, EV_WRITE_FAILED as f64),
        js::to_value(env, &err),
        value::array(env, &ids),
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
  leftover
}

/// Tells the round-robin handles with unanswered `newconn`s that this channel closed.
fn notify_gone(state: &Shared) {
  let (routes, id) = {
    let mut s = state.borrow_mut();
    (std::mem::take(&mut s.gone_routes), s.id)
  };
  for rr in routes.iter().filter_map(Weak::upgrade) {
    round_robin::worker_gone(&rr, id);
  }
}

/// Hands a turn's results on: newconn answers to the schedulers, the rest to JS.
fn finish_turn(state: &Shared, mut report: ChannelReport) {
  if let Some(batch) = report.batch.as_mut() {
    let replies = std::mem::take(&mut batch.newconn_replies);
    route_newconn_replies(state, replies);
  }
  notify_gone(state);
  let mut leftover = None;
  with_callback(state, |cb| leftover = deliver(cb, report));
  if let Some(buf) = leftover.filter(|b| b.capacity() > 0) {
    if let Some(side) = state.borrow_mut().channel.as_mut() {
      side.channel.recycle_read(buf);
    }
  }
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
  batching_writes(|| finish_turn(&state, report));
}

unsafe extern "C" fn on_exit_ready(handle: *mut c_void, _status: c_int, _events: c_int) {
  // SAFETY: this callback is only registered on `Poll<Shared>` handles.
  let state = unsafe { Poll::<Shared>::data(handle) }.clone();
  // A process's fds are closed before its exit is signalled, so whatever it sent, and its EOF,
  // can be read now: report them first, as Node usually sees disconnect before exit.
  loop {
    let report = channel_turn(&mut state.borrow_mut(), true, false);
    let more = report.batch.as_ref().is_some_and(|b| {
      !b.eof && (b.has_messages() || !b.replies.is_empty() || !b.newconn_replies.is_empty())
    });
    batching_writes(|| {
      with_callback(&state, |cb| {
        deliver(cb, report);
      })
    });
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
