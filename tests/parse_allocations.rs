//! The common paths of the parsers do not allocate: counted with a global allocator that tallies
//! the allocations of the current thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tailfix::parse::cri::parse_cri;
use tailfix::parse::docker::parse_docker;
use tailfix::parse::syslog::parse_syslog;
use tailfix::parse::timestamp::parse_timestamp;
use tailfix::time::Timestamp;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of(run: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    run();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn common_paths_do_not_allocate() {
    let now = Timestamp::from_civil(2026, 6, 15, 12, 0, 0, 0).expect("valid date");
    let lines: &[&[u8]] = &[
        b"<165>1 2026-06-15T12:00:00.123456+02:00 web-01 checkout 24117 ORDER - order failed",
        b"<86>Jun 15 09:01:02 web-01 sshd[2101]: Accepted publickey for deploy",
        b"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console",
        b"<14>billing: payment declined\x00",
    ];
    for line in lines {
        let count = allocations_of(|| {
            assert!(parse_syslog(line, now).is_ok());
        });
        assert_eq!(count, 0, "{}", String::from_utf8_lossy(line));
    }
    let count = allocations_of(|| {
        assert!(parse_cri(b"2026-06-15T12:00:00.1Z stdout F hello").is_ok());
        assert!(
            parse_docker(br#"{"log":"hello\n","stream":"stdout","time":"2026-06-15T12:00:00Z"}"#)
                .is_ok()
        );
        assert!(parse_timestamp(b"Jun 15 09:01:02", now).is_some());
    });
    assert_eq!(count, 0);
    // Structured data is a Vec of elements, each with a Vec of params: two allocations for
    // one element, and no more for values without escapes.
    let count = allocations_of(|| {
        assert!(parse_syslog(b"<13>1 - h a p m [id k=\"v\" k2=\"v2\"] x", now).is_ok());
    });
    assert_eq!(count, 2);
}
