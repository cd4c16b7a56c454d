//! Huge pages for the exploration's memory.
//!
//! `plan check` at depth 3 keeps some 700 MB: hash tables of tens of megabytes (the placements
//! made, the continuations known) and millions of small blocks (each continuation's lists and
//! end), all read at random. With 4 KiB pages nearly every such read misses the TLB and walks the
//! page tables, and every page is faulted in and zeroed on its own. Where transparent huge pages
//! are enabled for memory that asks for them (`madvise`, the common default) two things ask:
//!
//! - the process's allocator, the system's, for every block of [`LARGE`] bytes or more;
//! - glibc, for its heaps (where each thread's small blocks are), when `GLIBC_TUNABLES` holds
//!   [`HUGE_PAGE_HEAPS`]. glibc reads it once, as a process starts: `plan check` and `plan
//!   report` start themselves again with it where the variable is unset
//!   ([`start_again_with_huge_page_heaps`]).
//!
//! Elsewhere the advice changes nothing. Measured in docs/development.md.

use std::alloc::{GlobalAlloc, Layout, System};

/// The variable glibc reads its tunables from, once, as a process starts.
pub const TUNABLES: &str = "GLIBC_TUNABLES";

/// The tunable that has glibc's heaps, each thread's among them, ask for huge pages.
pub const HUGE_PAGE_HEAPS: &str = "glibc.malloc.hugetlb=1";

/// Starts this process again, the same program with the same arguments and environment, with
/// [`TUNABLES`] set to [`HUGE_PAGE_HEAPS`]: the process is replaced (the same pid; nothing has
/// been read or written yet), so glibc's heaps ask for huge pages from the start.
///
/// Returns, and the run goes on as it is, where the variable is set already (to anything, empty
/// too: the operator's choice, and how the process started again knows it was), where a library
/// is preloaded (`LD_PRELOAD`: a tool such as valgrind, which a new start would leave behind, or
/// an allocator of its own), where the C library is not glibc, where the process runs with
/// privileges glibc would drop the variable for, or where the program cannot be started again.
pub fn start_again_with_huge_page_heaps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: reading the auxiliary vector the kernel gave the process; no memory is passed.
        let privileged = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        let preloaded = std::env::var_os("LD_PRELOAD").is_some_and(|libraries| !libraries.is_empty());
        if std::env::var_os(TUNABLES).is_some() || preloaded || privileged {
            return;
        }
        let Ok(program) = std::env::current_exe() else { return };
        let mut args = std::env::args_os();
        let name = args.next().unwrap_or_else(|| program.clone().into_os_string());
        // Only returns where the program could not be started again.
        let _ = std::process::Command::new(&program).arg0(name).args(args).env(TUNABLES, HUGE_PAGE_HEAPS).exec();
    }
}

/// How glibc's heaps were asked to be backed, for the log: the tunables the process started with.
pub fn heaps() -> String {
    std::env::var(TUNABLES).unwrap_or_else(|_| "unset".to_string())
}

/// The system allocator, asking for huge pages for blocks of [`LARGE`] bytes or more.
pub struct HugePagesForLargeBlocks;

/// The smallest block advised: 4 MiB holds at least one whole 2 MiB page wherever it starts.
pub const LARGE: usize = 4 << 20;

/// The page size the advice is given in whole pages of.
const PAGE: usize = 4096;

/// Asks the kernel to back the whole pages of the block at `ptr` with huge pages, where it is
/// large enough. Advice only: a kernel that cannot answers no, and nothing changes.
fn advise(ptr: *mut u8, size: usize) {
    if ptr.is_null() || size < LARGE {
        return;
    }
    // The system allocator puts its header before a large block: the block starts inside a page.
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + size) & !(PAGE - 1);
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside the block just allocated (whole pages of it); the advice
    // changes how the kernel backs those pages, never their contents.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

// SAFETY: every call is the system allocator's, with the same layouts; `advise` only gives the
// kernel advice on memory the block owns.
unsafe impl GlobalAlloc for HugePagesForLargeBlocks {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.realloc(ptr, layout, new_size) };
        advise(ptr, new_size);
        ptr
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The flags of the mapping that holds `address`, from `/proc/self/smaps`: a mapping's
    /// header line (`from-to perms ...`) and then its fields (`Name: value`), `VmFlags` last.
    fn flags_of_mapping_at(address: usize) -> Vec<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("Linux has /proc/self/smaps");
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                if inside {
                    return flags.split_whitespace().map(str::to_string).collect();
                }
            } else if !first.ends_with(':') {
                let (from, to) = first.split_once('-').expect("a mapping's header starts with its range");
                let parse = |hex| usize::from_str_radix(hex, 16).expect("a mapping's range is hexadecimal");
                inside = (parse(from)..parse(to)).contains(&address);
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    /// Whether this kernel has transparent huge pages at all (built in, whatever the setting).
    fn kernel_has_huge_pages() -> bool {
        std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists()
    }

    /// A large block's pages are marked for huge pages (`hg`), a small one's are not asked for,
    /// and the block is the caller's: written and read whole, then freed.
    #[test]
    fn a_large_block_asks_for_huge_pages_and_a_small_one_does_not() {
        let large = Layout::from_size_align(LARGE * 2, 8).expect("a valid layout");
        // SAFETY: a non-zero layout; the block is freed below with the same layout.
        let ptr = unsafe { HugePagesForLargeBlocks.alloc(large) };
        assert!(!ptr.is_null());
        // SAFETY: the block is `large.size()` bytes, all of them the test's.
        let block = unsafe { std::slice::from_raw_parts_mut(ptr, large.size()) };
        block.fill(7);
        assert!(block.iter().all(|b| *b == 7));
        let middle = ptr as usize + large.size() / 2;
        if kernel_has_huge_pages() {
            assert!(flags_of_mapping_at(middle).iter().any(|f| f == "hg"), "the large block's pages ask for huge pages");
        }
        // SAFETY: allocated above with this layout.
        unsafe { HugePagesForLargeBlocks.dealloc(ptr, large) };

        let small = Layout::from_size_align(LARGE / 4, 8).expect("a valid layout");
        // SAFETY: as above.
        let ptr = unsafe { HugePagesForLargeBlocks.alloc(small) };
        assert!(!ptr.is_null());
        if kernel_has_huge_pages() {
            let flags = flags_of_mapping_at(ptr as usize + small.size() / 2);
            assert!(!flags.iter().any(|f| f == "hg"), "a small block is not advised: {flags:?}");
        }
        // SAFETY: allocated above with this layout.
        unsafe { HugePagesForLargeBlocks.dealloc(ptr, small) };
    }
}
