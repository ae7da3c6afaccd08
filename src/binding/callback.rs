//! Calling into JavaScript from libuv callbacks.
//!
//! `napi_make_callback` (not `napi_call_function`): it runs the nextTick queue and promise jobs
//! after the callback, as Node does for its own I/O callbacks, and keeps the async context
//! (AsyncLocalStorage). An exception thrown by the callback becomes an `uncaughtException`.

use std::ptr;

use napi::sys;

/// A JS function kept alive across loop turns, with its async context.
pub struct JsCallback {
  env: sys::napi_env,
  func: sys::napi_ref,
  context: sys::napi_async_context,
}

impl JsCallback {
  /// # Safety
  /// `env` and `func` must be valid in the current call on the JS thread.
  pub unsafe fn new(env: sys::napi_env, func: sys::napi_value, name: &str) -> napi::Result<Self> {
    let mut func_ref = ptr::null_mut();
    let mut resource = ptr::null_mut();
    let mut resource_name = ptr::null_mut();
    let mut context = ptr::null_mut();
    // SAFETY: standard N-API calls with valid out-pointers, on the JS thread.
    unsafe {
      check(sys::napi_create_reference(env, func, 1, &mut func_ref))?;
      check(sys::napi_create_object(env, &mut resource))?;
      check(sys::napi_create_string_utf8(
        env,
        name.as_ptr().cast(),
        name.len() as isize,
        &mut resource_name,
      ))?;
      check(sys::napi_async_init(
        env,
        resource,
        resource_name,
        &mut context,
      ))?;
    }
    Ok(JsCallback {
      env,
      func: func_ref,
      context,
    })
  }

  /// Calls the function with the values `args` builds, inside a fresh handle scope.
  /// Must run on the JS thread, outside any other JS call (i.e. from a libuv callback).
  pub fn call(&self, args: impl FnOnce(sys::napi_env) -> Vec<sys::napi_value>) {
    let env = self.env;
    // SAFETY: called on the JS thread from a loop callback; every value lives in the scope
    // opened here and closed below.
    unsafe {
      let mut scope = ptr::null_mut();
      if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
        return;
      }
      let mut func = ptr::null_mut();
      let mut global = ptr::null_mut();
      sys::napi_get_reference_value(env, self.func, &mut func);
      sys::napi_get_global(env, &mut global);
      let argv = args(env);
      let mut result = ptr::null_mut();
      let status = sys::napi_make_callback(
        env,
        self.context,
        global,
        func,
        argv.len(),
        argv.as_ptr(),
        &mut result,
      );
      if status == sys::Status::napi_pending_exception {
        let mut err = ptr::null_mut();
        sys::napi_get_and_clear_last_exception(env, &mut err);
        sys::napi_fatal_exception(env, err);
      }
      sys::napi_close_handle_scope(env, scope);
    }
  }
}

impl Drop for JsCallback {
  fn drop(&mut self) {
    // SAFETY: dropped on the JS thread (the owner lives on it); both were created in `new`.
    unsafe {
      sys::napi_delete_reference(self.env, self.func);
      sys::napi_async_destroy(self.env, self.context);
    }
  }
}

pub fn check(status: sys::napi_status) -> napi::Result<()> {
  if status == sys::Status::napi_ok {
    Ok(())
  } else {
    Err(napi::Error::from_status(napi::Status::from(status)))
  }
}

/// Small constructors for the values events carry.
pub mod value {
  use super::*;

  pub fn null(env: sys::napi_env) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env and out-pointer.
    unsafe { sys::napi_get_null(env, &mut v) };
    v
  }

  pub fn undefined(env: sys::napi_env) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env and out-pointer.
    unsafe { sys::napi_get_undefined(env, &mut v) };
    v
  }

  pub fn number(env: sys::napi_env, n: f64) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env and out-pointer.
    unsafe { sys::napi_create_double(env, n, &mut v) };
    v
  }

  pub fn boolean(env: sys::napi_env, b: bool) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env and out-pointer.
    unsafe { sys::napi_get_boolean(env, b, &mut v) };
    v
  }

  /// A JS string from UTF-8 bytes; `None` when V8 cannot hold it (over its string length limit).
  pub fn string(env: sys::napi_env, bytes: &[u8]) -> Option<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: the pointer and length describe `bytes`, which outlives the call.
    let status = unsafe {
      sys::napi_create_string_utf8(env, bytes.as_ptr().cast(), bytes.len() as isize, &mut v)
    };
    if status != sys::Status::napi_ok {
      let mut err = ptr::null_mut();
      // SAFETY: clear whatever exception the failed creation left, so the caller can go on.
      unsafe { sys::napi_get_and_clear_last_exception(env, &mut err) };
      return None;
    }
    Some(v)
  }

  pub fn buffer(env: sys::napi_env, bytes: &[u8]) -> sys::napi_value {
    let mut v = ptr::null_mut();
    let mut data = ptr::null_mut();
    // SAFETY: Node copies `bytes` into a new Buffer.
    unsafe {
      sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut v)
    };
    v
  }

  pub fn array(env: sys::napi_env, items: &[sys::napi_value]) -> sys::napi_value {
    let mut arr = ptr::null_mut();
    // SAFETY: valid env; every item is a live value of the current scope.
    unsafe {
      sys::napi_create_array_with_length(env, items.len(), &mut arr);
      for (i, item) in items.iter().enumerate() {
        sys::napi_set_element(env, arr, i as u32, *item);
      }
    }
    arr
  }
}
