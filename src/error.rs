//! Errors of the core, and the Node error codes they surface as in JavaScript.

use std::fmt;
use std::io;

/// What can go wrong in the core. Each variant maps to the `code` Node would give.
#[derive(Debug)]
pub enum ClusterError {
  /// A system call failed; the code is the errno's name (`ENOENT`, `EPIPE`, ...).
  Os {
    syscall: &'static str,
    err: io::Error,
  },
  /// The channel is closed: `ERR_IPC_CHANNEL_CLOSED`.
  ChannelClosed,
  /// A worker sent a frame larger than the limit: `ERR_IPC_FRAME_TOO_LARGE`.
  FrameTooLarge { len: u64, limit: u64 },
  /// Bad argument from JS: `ERR_INVALID_ARG_VALUE`.
  InvalidArg(String),
}

impl ClusterError {
  pub fn os(syscall: &'static str, err: io::Error) -> Self {
    ClusterError::Os { syscall, err }
  }

  /// Node's `code` for this error.
  pub fn code(&self) -> String {
    match self {
      ClusterError::Os { err, .. } => errno_name(err.raw_os_error().unwrap_or(0)).to_string(),
      ClusterError::ChannelClosed => "ERR_IPC_CHANNEL_CLOSED".into(),
      ClusterError::FrameTooLarge { .. } => "ERR_IPC_FRAME_TOO_LARGE".into(),
      ClusterError::InvalidArg(_) => "ERR_INVALID_ARG_VALUE".into(),
    }
  }

  /// The negative errno, as libuv reports it, where there is one.
  pub fn errno(&self) -> Option<i32> {
    match self {
      ClusterError::Os { err, .. } => err.raw_os_error().map(|e| -e),
      _ => None,
    }
  }

  pub fn syscall(&self) -> Option<&'static str> {
    match self {
      ClusterError::Os { syscall, .. } => Some(syscall),
      _ => None,
    }
  }
}

impl fmt::Display for ClusterError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      // Node's system errors read "<syscall> <CODE>", e.g. "spawn ENOENT".
      ClusterError::Os { syscall, .. } => write!(f, "{} {}", syscall, self.code()),
      ClusterError::ChannelClosed => write!(f, "Channel closed"),
      ClusterError::FrameTooLarge { len, limit } => {
        write!(
          f,
          "IPC frame of {len} bytes exceeds the limit of {limit} bytes"
        )
      }
      ClusterError::InvalidArg(msg) => write!(f, "{msg}"),
    }
  }
}

impl std::error::Error for ClusterError {}

/// The symbolic name of an errno, as Node's `util.getSystemErrorName` gives it.
pub fn errno_name(errno: i32) -> &'static str {
  match errno {
    libc::EPERM => "EPERM",
    libc::ENOENT => "ENOENT",
    libc::ESRCH => "ESRCH",
    libc::EINTR => "EINTR",
    libc::EIO => "EIO",
    libc::EBADF => "EBADF",
    libc::EAGAIN => "EAGAIN",
    libc::ENOMEM => "ENOMEM",
    libc::EACCES => "EACCES",
    libc::ENOTDIR => "ENOTDIR",
    libc::EINVAL => "EINVAL",
    libc::ENFILE => "ENFILE",
    libc::EMFILE => "EMFILE",
    libc::EPIPE => "EPIPE",
    libc::ENAMETOOLONG => "ENAMETOOLONG",
    libc::ENOSYS => "ENOSYS",
    libc::ENOTSOCK => "ENOTSOCK",
    libc::EADDRINUSE => "EADDRINUSE",
    libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
    libc::EAFNOSUPPORT => "EAFNOSUPPORT",
    libc::ECONNRESET => "ECONNRESET",
    libc::ENOTCONN => "ENOTCONN",
    libc::ECONNREFUSED => "ECONNREFUSED",
    libc::ENOEXEC => "ENOEXEC",
    libc::E2BIG => "E2BIG",
    _ => "UNKNOWN",
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn os_errors_read_like_node_system_errors() {
    let e = ClusterError::os("spawn", io::Error::from_raw_os_error(libc::ENOENT));
    assert_eq!(e.code(), "ENOENT");
    assert_eq!(e.errno(), Some(-libc::ENOENT));
    assert_eq!(e.to_string(), "spawn ENOENT");
  }

  #[test]
  fn closed_channel_has_nodes_code() {
    assert_eq!(ClusterError::ChannelClosed.code(), "ERR_IPC_CHANNEL_CLOSED");
  }
}

/// The only place where core errors meet Node-API: a JS `Error` with Node's `code`, and
/// `errno`/`syscall` for system errors, as Node's own system errors carry them.
#[cfg(all(target_os = "linux", not(test)))]
pub(crate) mod js {
  use super::ClusterError;
  use napi::sys;
  use std::ptr;

  fn set(env: sys::napi_env, obj: sys::napi_value, key: &std::ffi::CStr, value: sys::napi_value) {
    // SAFETY: valid env, object and value of the current scope; NUL-terminated key.
    unsafe { sys::napi_set_named_property(env, obj, key.as_ptr(), value) };
  }

  fn string(env: sys::napi_env, s: &str) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: pointer and length describe `s`.
    unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v) };
    v
  }

  /// Builds the JS error value for `err`.
  pub fn to_value(env: sys::napi_env, err: &ClusterError) -> sys::napi_value {
    let code = string(env, &err.code());
    let msg = string(env, &err.to_string());
    let mut obj = ptr::null_mut();
    // SAFETY: valid env; `code` and `msg` are strings of the current scope.
    unsafe { sys::napi_create_error(env, code, msg, &mut obj) };
    if let Some(errno) = err.errno() {
      let mut n = ptr::null_mut();
      // SAFETY: valid env and out-pointer.
      unsafe { sys::napi_create_int32(env, errno, &mut n) };
      set(env, obj, c"errno", n);
    }
    if let Some(syscall) = err.syscall() {
      set(env, obj, c"syscall", string(env, syscall));
    }
    obj
  }

  /// Throws `err` in JS and returns the napi error that tells napi-rs an exception is pending.
  pub fn throw(env: sys::napi_env, err: &ClusterError) -> napi::Error {
    // SAFETY: valid env; the value was just created in the current scope.
    unsafe { sys::napi_throw(env, to_value(env, err)) };
    napi::Error::new(napi::Status::PendingException, err.to_string())
  }
}
