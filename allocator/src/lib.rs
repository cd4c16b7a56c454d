//! The allocator of `plan`'s binary and of its check benchmark: mimalloc, not the system's.
//!
//! `plan check` grows hash tables of megabytes by doubling on two threads (the placements made,
//! the continuations known: some 600 MB at depth 3, read at random). glibc gives each of those
//! threads a heap of its own and grows it a page at a time, one `mprotect` per growth (77,000 of
//! them at depth 3, some 113,000 page faults), and backs it with 4 KiB pages, so nearly every read
//! of a table misses the TLB. mimalloc reserves arenas of 1 GiB of address space and, where the
//! system overcommits memory (Linux's default), commits them at once and advises them whole with
//! `madvise(MADV_HUGEPAGE)` (`src/arena.c`, `src/prim/unix/prim.c` of its v3): transparent huge
//! pages where the kernel grants them to memory that asks (`madvise`, as Debian and Ubuntu set it)
//! or always. It asks for `MAP_HUGETLB` pages only if `MIMALLOC_ALLOW_LARGE_OS_PAGES` or
//! `MIMALLOC_RESERVE_HUGE_OS_PAGES` is set, so the huge pages an administrator reserved for virtual
//! machines are left alone. Its defaults are kept: memory freed goes back to the system no sooner
//! than a second later, once the process allocates or frees again, and `MIMALLOC_*` variables in
//! the environment override them. Measured in docs/development.md (Figures, "mimalloc"). The
//! binary and the check benchmark then turn the huge pages off for themselves unless asked
//! ([`small_pages_unless_asked`]; Figures, "small pages").
//!
//! Every request that needs no more than a word's alignment is a plain `mi_malloc`: every block
//! mimalloc gives is a whole number of words (its classes, `src/init.c` and `src/page-queue.c`)
//! from a page's first block, which starts at a 16-byte multiple (`mi_page_block_start`,
//! `src/arena.c`). The `mimalloc` crate asks `mi_malloc_aligned` for every request, and v3 serves
//! that on a fast path only up to 1 KiB and while the class's page has a free block; otherwise,
//! unless the class is a power of two of at most 4 KiB, it over-allocates by the alignment on its
//! slow path (`mi_theap_malloc_zero_aligned_at_overalloc`, `src/alloc-aligned.c`): a 48-byte block
//! from the 64-byte class, one of 1,280 bytes from the 1,536-byte class, a table of 1 MiB with
//! 64 KiB more. mimalloc_rust's pull request 170 proposes the same change upstream. Blocks asked
//! with more than a word's alignment still take that path (hashbrown's tables, 16-byte aligned).

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc, asked without alignment where every block has it.
pub struct Allocator;

/// The alignment every mimalloc block has: a word.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: every block comes from mimalloc and goes back to it; a block asked for with an alignment
// above a word is asked for with that alignment, and one at or under a word has it (see above).
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation, of the layout's size and alignment.
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_malloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`, zeroed.
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_zalloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its alignment.
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// The variable that, set to anything, leaves mimalloc's huge pages as mimalloc sets them
/// (`MIMALLOC_ALLOW_THP=1` keeps them, `=0` is mimalloc's own way to turn them off).
pub const ALLOW_THP: &str = "MIMALLOC_ALLOW_THP";

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`) unless
/// [`ALLOW_THP`] is set; whether it did. Called first thing by the binary and the check benchmark.
///
/// mimalloc advises its arenas for huge pages, and in a virtual machine a fresh huge page can
/// cost far more than its 2 MiB of zeroing: on a 2 vCPU VM (2026-12-05) a quarter of `plan check`
/// runs took two to five times their median, the kernel zeroing pages (`clear_page_erms`), and
/// with small pages the depth-3 check took 1.47–1.60 s against 1.24–3.46 s (docs/development.md,
/// Figures, "small pages"). The flag is the process's own: every fault after it takes small
/// pages, even in memory advised before it (the arena mimalloc reserved before `main`).
pub fn small_pages_unless_asked() -> bool {
    if std::env::var_os(ALLOW_THP).is_some() {
        return false;
    }
    disable_thp()
}

#[cfg(target_os = "linux")]
fn disable_thp() -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn disable_thp() -> bool {
    false
}

#[cfg(test)]
#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The mapping that holds `address` in this process, and its `VmFlags`.
    fn mapping_at(address: usize) -> (std::ops::Range<usize>, Vec<String>) {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps is readable");
        let mut holding = None;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                if let Some(range) = holding.take() {
                    return (range, flags.split_whitespace().map(str::to_string).collect());
                }
            } else if !first.ends_with(':') {
                let (from, to) = first.split_once('-').expect("a mapping's header starts with its range");
                let parse = |hex| usize::from_str_radix(hex, 16).expect("a mapping's range is hexadecimal");
                let range = parse(from)..parse(to);
                holding = range.contains(&address).then_some(range);
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    /// Whether the advice can be seen here: the kernel has transparent huge pages (built in,
    /// whatever the setting) and the system overcommits memory, without which mimalloc commits
    /// its arenas piece by piece and gives no advice. Under `CI=true` a host that cannot show it
    /// fails the test rather than passing it unseen.
    fn advice_can_be_seen() -> bool {
        let why = if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            Some("this kernel has no transparent huge pages")
        } else if std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|mode| mode.trim() == "2") {
            Some("this system does not overcommit memory (vm.overcommit_memory = 2)")
        } else {
            None
        };
        if let Some(why) = why {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{why}: the advice cannot be seen");
            eprintln!("not checked: {why}");
        }
        why.is_none()
    }

    /// A table of the size the exploration grows (64 MiB), taken from the process's allocator as
    /// `Vec` takes it: the memory that holds it, first byte to last, asks for huge pages (`hg`).
    /// The system's allocator maps a block this large on its own and gives no advice.
    #[test]
    fn a_large_table_lies_in_memory_that_asks_for_huge_pages() {
        if !advice_can_be_seen() {
            return;
        }
        let bytes = 64 << 20;
        let table: Vec<u64> = vec![7; bytes / 8];
        assert!(table.iter().all(|word| *word == 7));
        let (from, to) = (table.as_ptr() as usize, table.as_ptr() as usize + bytes);
        for address in [from, from + bytes / 2, to - 1] {
            let (range, flags) = mapping_at(address);
            assert!(flags.iter().any(|f| f == "hg"), "{address:#x} (in {range:x?}) asks for huge pages: {flags:?}");
        }
    }

    /// The small blocks of a run's state come from the same memory: mimalloc's arenas, asking for
    /// huge pages too. The system's allocator keeps them in heaps that do not ask.
    #[test]
    fn small_blocks_lie_in_memory_that_asks_for_huge_pages() {
        if !advice_can_be_seen() {
            return;
        }
        let blocks: Vec<Box<[u8; 304]>> = (0..1_000).map(|n| Box::new([n as u8; 304])).collect();
        for block in [&blocks[0], &blocks[999]] {
            let (range, flags) = mapping_at(block.as_ptr() as usize);
            assert!(flags.iter().any(|f| f == "hg"), "a small block (in {range:x?}) asks for huge pages: {flags:?}");
        }
    }

    /// Every layout, a word's alignment and under, and over it up to a page, many blocks of each
    /// alive at once (a class mixes blocks at every multiple of its size): each block has its
    /// alignment, holds what is written to it, comes zeroed when asked, and keeps its contents
    /// and alignment when grown or shrunk.
    #[test]
    fn every_layout_gets_a_block_with_its_alignment() {
        use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
        for align in (0..=12).map(|shift| 1usize << shift) {
            for size in (1..=300).chain([304, 400, 1000, 1024, 1280, 4095, 4096, 5000, 70_000]) {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                let (half, grown_layout) = (size.div_ceil(2), Layout::from_size_align(size * 3, align).expect("a valid layout"));
                let blocks: Vec<*mut u8> = (0..8)
                    .map(|_| {
                        // SAFETY: a non-zero layout; the block is freed below with the layout it has by then.
                        unsafe {
                            let block = alloc(layout);
                            assert!(!block.is_null() && (block as usize) % align == 0, "{size} bytes aligned to {align}: {block:p}");
                            std::ptr::write_bytes(block, 0xA5, size);
                            block
                        }
                    })
                    .collect();
                for block in blocks {
                    // SAFETY: each block was allocated above with `layout` and is passed on once.
                    unsafe {
                        let grown = realloc(block, layout, size * 3);
                        assert!(!grown.is_null() && (grown as usize) % align == 0, "{size} bytes grown, aligned to {align}: {grown:p}");
                        assert!(
                            std::slice::from_raw_parts(grown, size).iter().all(|b| *b == 0xA5),
                            "{size} bytes grown keep their contents"
                        );
                        let shrunk = realloc(grown, grown_layout, half);
                        assert!(!shrunk.is_null() && (shrunk as usize) % align == 0, "{size} bytes shrunk, aligned to {align}: {shrunk:p}");
                        assert!(std::slice::from_raw_parts(shrunk, half).iter().all(|b| *b == 0xA5));
                        dealloc(shrunk, Layout::from_size_align(half, align).expect("a valid layout"));
                    }
                }
                // SAFETY: a non-zero layout, freed at once with it.
                unsafe {
                    let zeroed = alloc_zeroed(layout);
                    assert!(!zeroed.is_null() && (zeroed as usize) % align == 0, "{size} zeroed bytes aligned to {align}: {zeroed:p}");
                    assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|b| *b == 0), "{size} bytes asked zeroed are zero");
                    dealloc(zeroed, layout);
                }
            }
        }
    }

    /// A block is given from its own class: 48 bytes (on a thread of its own, so that no page of
    /// that class has a free block yet), 1,280 bytes, 1 MiB. Asked with an alignment, mimalloc v3
    /// would over-allocate each into a larger class (64 bytes, 1,536, 1 MiB and 64 KiB). With
    /// libmimalloc-sys's `debug` feature the classes count padding and this test does not hold.
    #[test]
    fn a_block_is_given_from_its_own_class_not_over_allocated() {
        std::thread::spawn(|| {
            for size in [48usize, 1280, 1 << 20] {
                let layout = std::alloc::Layout::from_size_align(size, 8).expect("a valid layout");
                // SAFETY: a non-zero layout, freed below.
                unsafe {
                    let block = std::alloc::alloc(layout);
                    assert!(!block.is_null());
                    let usable = libmimalloc_sys::mi_usable_size(block.cast());
                    let class = libmimalloc_sys::mi_good_size(size);
                    assert_eq!(usable, class, "a block of {size} bytes is of its own class ({class} bytes), not over-allocated");
                    std::alloc::dealloc(block, layout);
                }
            }
        })
        .join()
        .expect("the allocating thread");
    }
}
