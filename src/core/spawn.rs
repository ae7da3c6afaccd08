//! Starting a worker: `execPath [execArgv] exec [args]` with the channel on fd N (protocol.md §1).
//!
//! Every fd the primary opens is close-on-exec; the child gets exactly the slots of its stdio
//! array, with close-on-exec cleared on those alone. Node marks fds 0–2 close-on-exec at
//! start-up, so even "inherit" needs an explicit dup2 (toolchain.md).

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::core::exit::pidfd_open;
use crate::error::ClusterError;

/// What the child gets at one fd position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StdioSlot {
  /// A new unix stream socketpair; the primary keeps the other end (as libuv does for pipes).
  Pipe,
  /// The primary's own fd at the same position.
  Inherit,
  /// `/dev/null`.
  Ignore,
  /// The IPC channel.
  Ipc,
  /// The primary's fd with this number.
  Fd(RawFd),
}

pub struct SpawnOptions {
  pub file: String,
  /// The whole argv, argv[0] included.
  pub args: Vec<String>,
  /// `KEY=value` entries; later duplicates win, and the child sees each key once.
  pub env: Vec<String>,
  pub cwd: Option<String>,
  pub uid: Option<u32>,
  pub gid: Option<u32>,
  pub stdio: Vec<StdioSlot>,
  /// `Some(0)`: the child leads a new process group of its own; `Some(pgid)`: it joins that
  /// group; `None`: it stays in ours (the built-in's behaviour).
  pub process_group: Option<i32>,
}

pub struct Spawned {
  pub pid: i32,
  pub pidfd: OwnedFd,
  /// The primary's end of the IPC socketpair, non-blocking.
  pub channel: OwnedFd,
  /// The primary's end of every `Pipe` slot, by position.
  pub pipes: Vec<Option<OwnedFd>>,
}

fn pair(nonblocking: bool) -> Result<(OwnedFd, OwnedFd), ClusterError> {
  let mut flags = SockFlag::SOCK_CLOEXEC;
  if nonblocking {
    flags |= SockFlag::SOCK_NONBLOCK;
  }
  socketpair(AddressFamily::Unix, SockType::Stream, None, flags)
    .map_err(|e| ClusterError::os("socketpair", e.into()))
}

pub fn spawn(opts: &SpawnOptions) -> Result<Spawned, ClusterError> {
  if opts.stdio.iter().filter(|s| **s == StdioSlot::Ipc).count() != 1 {
    return Err(ClusterError::InvalidArg(
      "stdio must contain exactly one 'ipc' entry".into(),
    ));
  }
  let mut channel = None;
  let mut pipes = Vec::with_capacity(opts.stdio.len());
  // The child's ends stay open in `keep` until the spawn is done.
  let mut keep: Vec<OwnedFd> = Vec::new();
  let mut mapping: Vec<(RawFd, RawFd)> = Vec::new();
  for (target, slot) in opts.stdio.iter().enumerate() {
    let target = target as RawFd;
    let mut parent_end = None;
    let source = match slot {
      StdioSlot::Pipe | StdioSlot::Ipc => {
        let (ours, theirs) = pair(*slot == StdioSlot::Ipc)?;
        let raw = theirs.as_raw_fd();
        keep.push(theirs);
        if *slot == StdioSlot::Ipc {
          channel = Some(ours);
        } else {
          parent_end = Some(ours);
        }
        Some(raw)
      }
      StdioSlot::Ignore => {
        let null = OpenOptions::new()
          .read(true)
          .write(true)
          .custom_flags(libc::O_CLOEXEC)
          .open("/dev/null")
          .map_err(|e| ClusterError::os("open", e))?;
        let raw = null.as_raw_fd();
        keep.push(null.into());
        Some(raw)
      }
      StdioSlot::Inherit => is_open(target).then_some(target),
      StdioSlot::Fd(fd) => Some(*fd),
    };
    if let Some(source) = source {
      mapping.push((target, source));
    }
    pipes.push(parent_end);
  }

  let mut cmd = Command::new(&opts.file);
  cmd.arg0(opts.args.first().map(String::as_str).unwrap_or(&opts.file));
  cmd.args(opts.args.iter().skip(1));
  // std's Command keeps the environment in a sorted map; Node keeps insertion order (parent
  // env, fork env, NODE_UNIQUE_ID, the channel variables last), so the child execs itself
  // from `pre_exec` with the order we were given (see `Exec`).
  let exec = Exec::new(&opts.file, &opts.args, &opts.env)?;
  if let Some(cwd) = &opts.cwd {
    cmd.current_dir(cwd);
  }
  if let Some(gid) = opts.gid {
    cmd.gid(gid);
  }
  if let Some(uid) = opts.uid {
    cmd.uid(uid);
  }
  // std leaves "inherit" fds alone; the stdio wiring is ours, in `pre_exec`.
  cmd
    .stdin(Stdio::inherit())
    .stdout(Stdio::inherit())
    .stderr(Stdio::inherit());
  if let Some(pgid) = opts.process_group {
    cmd.process_group(pgid);
  }
  let floor = mapping.iter().map(|&(t, _)| t).max().unwrap_or(2) + 1;
  let death = death_watch();
  // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
  // functions (fcntl, dup2, signal, sigprocmask, prctl, getppid) on data captured by value: no
  // allocation, no locks.
  unsafe {
    cmd.pre_exec(move || {
      child_setup(&mapping, floor)?;
      if let Some(parent) = death {
        die_with_parent(parent);
      }
      Err(exec.run())
    });
  }
  let child = cmd.spawn().map_err(|e| ClusterError::os("spawn", e))?;
  drop(keep);
  let pid = child.id() as i32;
  let pidfd = match pidfd_open(pid) {
    Ok(fd) => fd,
    Err(e) => {
      // Without a pidfd we could neither reap nor signal it safely: do not leave it behind.
      let mut child = child;
      let _ = child.kill();
      let _ = child.wait();
      return Err(ClusterError::os("pidfd_open", e));
    }
  };
  Ok(Spawned {
    pid,
    pidfd,
    channel: channel.expect("one ipc slot"),
    pipes,
  })
}

fn is_open(fd: RawFd) -> bool {
  // SAFETY: F_GETFD only queries the fd table.
  unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// argv and envp as C arrays, built before fork so that the child only calls `execvpe`.
struct Exec {
  file: CString,
  _strings: Vec<CString>,
  argv: Vec<*const libc::c_char>,
  envp: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into `_strings`, which `Exec` owns and never mutates; the child
// reads them after fork, where only one thread exists.
unsafe impl Send for Exec {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for Exec {}

impl Exec {
  fn new(file: &str, args: &[String], env: &[String]) -> Result<Exec, ClusterError> {
    let nul =
      |_| ClusterError::InvalidArg("arguments and environment must not contain NUL bytes".into());
    let file = CString::new(file).map_err(nul)?;
    let argv: Vec<CString> = args
      .iter()
      .map(|a| CString::new(a.as_str()))
      .collect::<Result<_, _>>()
      .map_err(nul)?;
    let envp: Vec<CString> = dedupe_env(env)
      .into_iter()
      .map(CString::new)
      .collect::<Result<_, _>>()
      .map_err(nul)?;
    let ptrs = |v: &[CString]| {
      v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
    };
    let (argv_ptrs, envp_ptrs) = (ptrs(&argv), ptrs(&envp));
    let mut strings = argv;
    strings.extend(envp);
    Ok(Exec {
      file,
      _strings: strings,
      argv: argv_ptrs,
      envp: envp_ptrs,
    })
  }

  /// Replaces the process image; returns only on failure.
  fn run(&self) -> std::io::Error {
    // SAFETY: NUL-terminated strings and null-terminated arrays, all alive in `self`.
    unsafe { libc::execvpe(self.file.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
    std::io::Error::last_os_error()
  }
}

/// One entry per key, at the key's first position with its last value (how a JS object that
/// is assigned to keeps its key order), skipping entries without a `=` after the first byte.
fn dedupe_env(env: &[String]) -> Vec<String> {
  let key = |e: &str| {
    e.bytes()
      .skip(1)
      .position(|b| b == b'=')
      .map(|p| e[..p + 1].to_string())
  };
  let mut order: Vec<String> = Vec::new();
  let mut values: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
  for entry in env {
    let Some(k) = key(entry) else { continue };
    if values.insert(k.clone(), entry).is_none() {
      order.push(k);
    }
  }
  order.iter().map(|k| values[k].to_string()).collect()
}

/// The primary's pid when the child should die with it: `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked exits, so only a spawn from the main thread (which lives as long as the
/// primary: Node's JS thread) gets it. A spawn from another thread (a primary inside a
/// `worker_threads` thread) keeps the built-in's behaviour: the worker ends when its channel does.
fn death_watch() -> Option<libc::pid_t> {
  // SAFETY: getpid/gettid only read the caller's ids.
  let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
  (pid == tid).then_some(pid)
}

/// Runs in the child: SIGKILL when the primary dies, even by SIGKILL (the built-in's workers
/// exit when their channel closes, which a stopped or wedged primary never does). If the
/// primary died before the signal was armed, the child is already orphaned: it exits now.
fn die_with_parent(parent: libc::pid_t) {
  // SAFETY: prctl, getppid and _exit are async-signal-safe; no memory is touched.
  unsafe {
    libc::prctl(
      libc::PR_SET_PDEATHSIG,
      libc::SIGKILL as libc::c_ulong,
      0,
      0,
      0,
    );
    if libc::getppid() != parent {
      libc::_exit(1);
    }
  }
}

/// Runs in the child between fork and exec (async-signal-safe only).
fn child_setup(mapping: &[(RawFd, RawFd)], floor: RawFd) -> std::io::Result<()> {
  // Move every source above all targets first, so that placing one never clobbers another.
  let mut temps = [(-1 as RawFd, -1 as RawFd); 64];
  let n = mapping.len().min(temps.len());
  for (i, &(target, source)) in mapping.iter().take(n).enumerate() {
    // SAFETY: fcntl/dup2 on fds of this (child) process; errors are reported through std.
    let tmp = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, floor) };
    if tmp < 0 {
      return Err(std::io::Error::last_os_error());
    }
    temps[i] = (target, tmp);
  }
  for &(target, tmp) in &temps[..n] {
    // SAFETY: as above; dup2 leaves the new fd without close-on-exec, which is the point.
    if unsafe { libc::dup2(tmp, target) } < 0 {
      return Err(std::io::Error::last_os_error());
    }
  }
  // libuv resets every catchable signal and the mask, so the worker starts clean (Node ignores
  // SIGPIPE, and ignored dispositions survive exec).
  for sig in 1..32 {
    if sig != libc::SIGKILL && sig != libc::SIGSTOP {
      // SAFETY: resetting a disposition to the default is async-signal-safe.
      unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
  }
  // SAFETY: an empty set on the stack, applied to this thread (the only one in the child).
  unsafe {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::core::exit::{reap, ExitStatus};
  use std::io::Read;
  use std::os::fd::AsFd;
  use std::os::unix::net::UnixStream;

  /// Runs `sh -c script`; returns its stdout (slot 1 must be a pipe), its status, and the
  /// primary's own ends of the channel and pipes as `socket:[inode]` (they must not leak).
  fn run(script: &str, env: &[&str], stdio: Vec<StdioSlot>) -> (String, ExitStatus, Vec<String>) {
    let opts = SpawnOptions {
      file: "/bin/sh".into(),
      args: vec!["sh".into(), "-c".into(), script.into()],
      env: env.iter().map(|s| s.to_string()).collect(),
      cwd: Some("/".into()),
      uid: None,
      gid: None,
      stdio,
      process_group: None,
    };
    let s = spawn(&opts).unwrap();
    let mut ours: Vec<String> = s
      .pipes
      .iter()
      .flatten()
      .map(|f| inode(f.as_raw_fd()))
      .collect();
    ours.push(inode(s.channel.as_raw_fd()));
    let mut out = String::new();
    let pipe = s.pipes.into_iter().flatten().next().unwrap();
    UnixStream::from(pipe).read_to_string(&mut out).unwrap();
    let status = reap(s.pidfd.as_fd()).unwrap();
    (out, status, ours)
  }

  fn inode(fd: RawFd) -> String {
    // SAFETY: fstat on an fd the caller holds open, into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    format!("socket:[{}]", st.st_ino)
  }

  #[test]
  fn the_child_sees_its_env_once_its_cwd_and_the_channel_on_fd_3() {
    let (out, status, _) = run(
      "echo \"$A $B $(pwd)\"; [ -S /proc/self/fd/3 ] || [ -e /proc/self/fd/3 ] && echo fd3; exit 7",
      &["A=1", "B=x=y", "A=2"],
      vec![
        StdioSlot::Ignore,
        StdioSlot::Pipe,
        StdioSlot::Inherit,
        StdioSlot::Ipc,
      ],
    );
    assert_eq!(out, "2 x=y /\nfd3\n");
    assert_eq!(status, ExitStatus::Code(7));
  }

  #[test]
  fn only_the_stdio_slots_leak_into_the_child() {
    let stdio = vec![
      StdioSlot::Ignore,
      StdioSlot::Pipe,
      StdioSlot::Ignore,
      StdioSlot::Ipc,
    ];
    // Compare sockets by inode: fd numbers alone are ambiguous (the shell opens its own).
    let (out, _, our_inodes) = run("for f in /proc/self/fd/*; do readlink $f; done", &[], stdio);
    let sockets_in_child = out.lines().filter(|l| l.starts_with("socket:")).count();
    assert!(
      sockets_in_child >= 2,
      "the pipe and the channel are there: {out}"
    );
    for inode in &our_inodes {
      assert!(
        !out.lines().any(|l| l == inode),
        "the primary's end {inode} leaked: {out}"
      );
    }
  }

  #[test]
  fn the_environment_keeps_its_order_with_one_copy_per_key() {
    // The shell's own environ as exec'd (a shell re-orders what it passes on).
    let (out, _, _) = run(
      "tr '\\0' '\\n' < /proc/$$/environ",
      &["Z=1", "A=2", "M=3", "A=4", "NODE_UNIQUE_ID=1"],
      vec![
        StdioSlot::Ignore,
        StdioSlot::Pipe,
        StdioSlot::Inherit,
        StdioSlot::Ipc,
      ],
    );
    let keys: Vec<&str> = out
      .lines()
      .filter_map(|l| l.split('=').next())
      .filter(|k| k.len() > 1 || "ZAM".contains(k))
      .collect();
    let ours: Vec<&str> = keys
      .into_iter()
      .filter(|k| ["Z", "A", "M", "NODE_UNIQUE_ID"].contains(k))
      .collect();
    assert_eq!(ours, vec!["Z", "A", "M", "NODE_UNIQUE_ID"]);
    assert!(out.contains("A=4\n"));
  }

  #[test]
  fn a_child_can_lead_its_own_process_group() {
    let opts = SpawnOptions {
      file: "/bin/sh".into(),
      args: vec![
        "sh".into(),
        "-c".into(),
        "echo $$ $(cut -d' ' -f5 /proc/$$/stat)".into(),
      ],
      env: vec![],
      cwd: None,
      uid: None,
      gid: None,
      stdio: vec![
        StdioSlot::Ignore,
        StdioSlot::Pipe,
        StdioSlot::Inherit,
        StdioSlot::Ipc,
      ],
      process_group: Some(0),
    };
    let s = spawn(&opts).unwrap();
    let mut out = String::new();
    let pipe = s.pipes.into_iter().flatten().next().unwrap();
    UnixStream::from(pipe).read_to_string(&mut out).unwrap();
    let ids: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ids.len(), 2, "{out}");
    assert_eq!(ids[0], ids[1], "pid == pgid");
    assert_eq!(ids[0], s.pid.to_string());
    reap(s.pidfd.as_fd()).unwrap();
  }

  #[test]
  fn a_missing_executable_is_enoent() {
    let opts = SpawnOptions {
      file: "/nonexistent/node".into(),
      args: vec!["node".into()],
      env: vec![],
      cwd: None,
      uid: None,
      gid: None,
      stdio: vec![
        StdioSlot::Ignore,
        StdioSlot::Ignore,
        StdioSlot::Ignore,
        StdioSlot::Ipc,
      ],
      process_group: None,
    };
    let err = spawn(&opts).err().unwrap();
    assert_eq!(err.code(), "ENOENT");
    assert_eq!(err.to_string(), "spawn ENOENT");
  }
}
