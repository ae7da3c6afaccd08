//! Per-process figures for `cluster.stats()`, from `/proc/<pid>/stat`.

use napi_derive::napi;

#[napi(object)]
pub struct ProcStats {
  /// Resident set size, bytes.
  pub rss: f64,
  /// CPU time in user and kernel mode, microseconds.
  pub user_micros: f64,
  pub system_micros: f64,
}

/// RSS and CPU time of a live process; `null` once it is gone.
#[napi]
pub fn proc_stats(pid: i32) -> Option<ProcStats> {
  let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  let rest = stat.get(stat.rfind(')')? + 2..)?;
  let fields: Vec<&str> = rest.split(' ').collect();
  // fields[0] is field 3 (state): utime is field 14, stime 15, rss (pages) 24.
  let num = |i: usize| fields.get(i).and_then(|s| s.parse::<f64>().ok());
  // SAFETY: sysconf only reads configuration values.
  let (ticks, page) = unsafe {
    (
      libc::sysconf(libc::_SC_CLK_TCK) as f64,
      libc::sysconf(libc::_SC_PAGESIZE) as f64,
    )
  };
  let ticks = if ticks > 0.0 { ticks } else { 100.0 };
  Some(ProcStats {
    user_micros: num(11)? * 1e6 / ticks,
    system_micros: num(12)? * 1e6 / ticks,
    rss: num(21)? * page,
  })
}
