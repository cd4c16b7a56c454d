//! The process's allocator: the system's, with the kernel asked to back large blocks with huge
//! pages.
//!
//! `plan check` at depth 3 keeps some 700 MB, read at random: hash tables of megabytes (the
//! placements made, the continuations known), grown by doubling. With 4 KiB pages nearly every
//! read of them misses the TLB and walks the page tables, and every page is faulted in and zeroed
//! on its own. Where transparent huge pages are granted to memory that asks for them
//! (`/sys/kernel/mm/transparent_hugepage/enabled` set to `madvise`, as on Debian and Ubuntu),
//! every block of [`LARGE_BLOCK_BYTES`] or more asks; where they are `always` granted or never,
//! the advice changes nothing. Measured in docs/development.md.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, asking for huge pages for blocks of [`LARGE_BLOCK_BYTES`] or more.
pub struct HugePagesForLargeBlocks;

/// The smallest block advised: one huge page (2 MiB on x86-64). A smaller block never holds a
/// whole huge page; one of 2 to 4 MiB holds one where a huge page's boundary falls early
/// enough in it (advising those too measured better than from 4 MiB on, where every block holds
/// one).
pub const LARGE_BLOCK_BYTES: usize = 2 << 20;

/// The system's page size.
fn page_bytes() -> usize {
    // SAFETY: a query of a constant of the system; no memory is passed.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        bytes if bytes > 0 => bytes as usize,
        _ => 4096,
    }
}

/// Asks the kernel to back the pages that hold the block at `ptr` with huge pages, where it is
/// large enough. The range is rounded out to whole pages: the system allocator's header sits
/// before the block in its first page, and advising that page too keeps the block's mapping
/// whole (rounded in, the kernel splits it, and growing the block in place can no longer move
/// it). Advice only: it changes how pages are backed, never what they hold, and a kernel that
/// cannot take it answers no and nothing changes.
fn advise(ptr: *mut u8, size: usize) {
    if ptr.is_null() || size < LARGE_BLOCK_BYTES {
        return;
    }
    let page = page_bytes();
    let start = ptr as usize & !(page - 1);
    let end = (ptr as usize + size).next_multiple_of(page);
    #[cfg(target_os = "linux")]
    // SAFETY: the range is the pages that hold the block just allocated, mapped; the advice
    // changes how the kernel backs them, never their contents.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

// SAFETY: every call is the system allocator's, with the same layouts; `advise` only gives the
// kernel advice on the pages that hold the block.
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

    /// The mapping that holds `address`, from `/proc/self/smaps`: its range and flags. A mapping
    /// is a header line (`from-to perms ...`) and then its fields (`Name: value`), `VmFlags` last.
    fn mapping_at(address: usize) -> (std::ops::Range<usize>, Vec<String>) {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("Linux has /proc/self/smaps");
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

    /// Whether this kernel has transparent huge pages at all (built in, whatever the setting):
    /// without them no advice is taken and there is nothing to see. Under `CI=true` that fails
    /// the test rather than passing it unseen.
    fn kernel_has_huge_pages() -> bool {
        let has = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists();
        if !has {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "this kernel has no transparent huge pages: the advice cannot be seen");
            eprintln!("not checked: this kernel has no transparent huge pages");
        }
        has
    }

    /// A fresh private mapping of `bytes`, the test's alone; unmapped by the caller.
    fn fresh_mapping(bytes: usize) -> *mut u8 {
        // SAFETY: a new anonymous mapping, no memory passed in.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        assert_ne!(ptr, libc::MAP_FAILED, "an anonymous mapping of {bytes} bytes");
        ptr.cast()
    }

    /// A block as the system allocator places a large one: 16 bytes into a mapping of its own.
    /// Advised, the whole mapping asks for huge pages (`hg`), its first page and last included,
    /// in one piece; a block under the threshold does not ask.
    #[test]
    fn a_large_block_asks_for_huge_pages_whole_and_a_small_one_does_not() {
        if !kernel_has_huge_pages() {
            return;
        }
        let bytes = LARGE_BLOCK_BYTES * 2 + page_bytes();
        let mapping = fresh_mapping(bytes);
        let (from, to) = (mapping as usize, mapping as usize + bytes);
        advise(mapping.wrapping_add(16), bytes - 16);
        let (range, flags) = mapping_at(from);
        assert!(flags.iter().any(|f| f == "hg"), "the block's first page asks for huge pages: {flags:?}");
        assert!(range.start <= from && to <= range.end, "the block's mapping is in one piece: {range:x?} against {from:#x}..{to:#x}");
        // SAFETY: mapped above, with this length.
        unsafe { libc::munmap(mapping.cast(), bytes) };

        let small = LARGE_BLOCK_BYTES / 2;
        let mapping = fresh_mapping(small);
        advise(mapping.wrapping_add(16), small - 16);
        let (_, flags) = mapping_at(mapping as usize + small / 2);
        assert!(!flags.iter().any(|f| f == "hg"), "a block under the threshold is not advised: {flags:?}");
        // SAFETY: mapped above, with this length.
        unsafe { libc::munmap(mapping.cast(), small) };
    }

    /// Through the allocator: a large block asks for huge pages and is the caller's, written and
    /// read whole, then freed.
    #[test]
    fn the_allocator_gives_a_large_block_asking_for_huge_pages() {
        let layout = Layout::from_size_align(LARGE_BLOCK_BYTES * 4, 8).expect("a valid layout");
        // SAFETY: a non-zero layout; the block is freed below with the same layout.
        let ptr = unsafe { HugePagesForLargeBlocks.alloc(layout) };
        assert!(!ptr.is_null());
        // SAFETY: the block is `layout.size()` bytes, all of them the test's.
        let block = unsafe { std::slice::from_raw_parts_mut(ptr, layout.size()) };
        block.fill(7);
        assert!(block.iter().all(|b| *b == 7));
        if kernel_has_huge_pages() {
            let (_, flags) = mapping_at(ptr as usize + layout.size() / 2);
            assert!(flags.iter().any(|f| f == "hg"), "the large block's pages ask for huge pages: {flags:?}");
        }
        // SAFETY: allocated above with this layout.
        unsafe { HugePagesForLargeBlocks.dealloc(ptr, layout) };
    }
}
