//! The process's allocator: the system's, with the kernel asked to back large blocks with huge
//! pages.
//!
//! `plan check` at depth 3 keeps some 700 MB, most of it in hash tables of tens of megabytes read
//! at random (the placements made, the continuations known). With 4 KiB pages nearly every such
//! read misses the TLB and walks the page tables, and every page is faulted in and zeroed on its
//! own. Where transparent huge pages are enabled for regions that ask for them (`madvise`, the
//! common default), a block of [`LARGE`] or more asks; elsewhere the advice changes nothing.
//! Measured in docs/development.md.

use std::alloc::{GlobalAlloc, Layout, System};

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
