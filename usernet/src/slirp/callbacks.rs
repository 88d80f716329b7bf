//! The callbacks libslirp calls into: its clock, timers, poll set and frames for the
//! guest. `opaque` is always the `State` of the instance, registered in `Slirp::new`.

use std::ffi::{CStr, c_char, c_int, c_void};

use libslirp_sys as sys;

use super::{State, Timer};

pub(super) static CALLBACKS: sys::SlirpCb = sys::SlirpCb {
    send_packet: Some(cb_send_packet),
    guest_error: Some(cb_guest_error),
    clock_get_ns: Some(cb_clock_get_ns),
    timer_new: Some(cb_timer_new),
    timer_free: Some(cb_timer_free),
    timer_mod: Some(cb_timer_mod),
    register_poll_fd: Some(cb_register_poll_fd),
    unregister_poll_fd: Some(cb_register_poll_fd),
    notify: Some(cb_notify),
};

fn to_poll_events(slirp: c_int) -> i16 {
    let mut e = 0;
    if slirp & sys::SLIRP_POLL_IN != 0 {
        e |= libc::POLLIN;
    }
    if slirp & sys::SLIRP_POLL_OUT != 0 {
        e |= libc::POLLOUT;
    }
    if slirp & sys::SLIRP_POLL_PRI != 0 {
        e |= libc::POLLPRI;
    }
    e
}

fn from_poll_events(e: i16) -> c_int {
    let mut s = 0;
    if e & libc::POLLIN != 0 {
        s |= sys::SLIRP_POLL_IN;
    }
    if e & libc::POLLOUT != 0 {
        s |= sys::SLIRP_POLL_OUT;
    }
    if e & libc::POLLPRI != 0 {
        s |= sys::SLIRP_POLL_PRI;
    }
    if e & libc::POLLERR != 0 {
        s |= sys::SLIRP_POLL_ERR;
    }
    if e & libc::POLLHUP != 0 {
        s |= sys::SLIRP_POLL_HUP;
    }
    s
}

unsafe fn state<'a>(opaque: *mut c_void) -> &'a State {
    // SAFETY: libslirp passes back the pointer we registered, valid while it runs.
    unsafe { &*(opaque as *const State) }
}

unsafe extern "C" fn cb_send_packet(buf: *const c_void, len: usize, opaque: *mut c_void) -> isize {
    // SAFETY: libslirp hands us `len` readable bytes.
    let (st, frame) = unsafe {
        (
            state(opaque),
            std::slice::from_raw_parts(buf as *const u8, len),
        )
    };
    st.to_guest(frame);
    len as isize
}

unsafe extern "C" fn cb_guest_error(msg: *const c_char, _opaque: *mut c_void) {
    // SAFETY: libslirp passes a NUL-terminated message.
    let m = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    tracing::warn!("usernet: guest error: {m}");
}

unsafe extern "C" fn cb_clock_get_ns(opaque: *mut c_void) -> i64 {
    // SAFETY: see `state`.
    unsafe { state(opaque) }.start.elapsed().as_nanos() as i64
}

unsafe extern "C" fn cb_timer_new(
    cb: sys::SlirpTimerCb,
    cb_opaque: *mut c_void,
    opaque: *mut c_void,
) -> *mut c_void {
    let t = Box::into_raw(Box::new(Timer {
        cb,
        cb_opaque,
        expire_ms: None,
    }));
    // SAFETY: see `state`.
    unsafe { state(opaque) }.timers.borrow_mut().push(t);
    t.cast()
}

unsafe extern "C" fn cb_timer_free(timer: *mut c_void, opaque: *mut c_void) {
    // SAFETY: see `state`.
    let st = unsafe { state(opaque) };
    let t = timer as *mut Timer;
    let mut timers = st.timers.borrow_mut();
    if let Some(i) = timers.iter().position(|&x| x == t) {
        timers.swap_remove(i);
        // SAFETY: created by timer_new, removed from the list, freed exactly once.
        drop(unsafe { Box::from_raw(t) });
    }
}

unsafe extern "C" fn cb_timer_mod(timer: *mut c_void, expire_time: i64, opaque: *mut c_void) {
    // SAFETY: see `state`.
    let st = unsafe { state(opaque) };
    let t = timer as *mut Timer;
    if st.timers.borrow().contains(&t) {
        // SAFETY: listed, hence live.
        unsafe { (*t).expire_ms = Some(expire_time) };
    }
}

unsafe extern "C" fn cb_register_poll_fd(_fd: c_int, _opaque: *mut c_void) {
    // We rebuild the poll set from slirp_pollfds_fill on every iteration.
}

unsafe extern "C" fn cb_notify(_opaque: *mut c_void) {
    // The loop polls with a timeout bounded by the timers; nothing to wake.
}

pub(super) unsafe extern "C" fn cb_add_poll(
    fd: c_int,
    events: c_int,
    opaque: *mut c_void,
) -> c_int {
    // SAFETY: see `state`.
    let mut p = unsafe { state(opaque) }.pollfds.borrow_mut();
    p.push(libc::pollfd {
        fd,
        events: to_poll_events(events),
        revents: 0,
    });
    (p.len() - 1) as c_int
}

pub(super) unsafe extern "C" fn cb_get_revents(idx: c_int, opaque: *mut c_void) -> c_int {
    // SAFETY: see `state`.
    let p = unsafe { state(opaque) }.pollfds.borrow();
    usize::try_from(idx)
        .ok()
        .and_then(|i| p.get(i))
        .map_or(0, |pfd| from_poll_events(pfd.revents))
}
