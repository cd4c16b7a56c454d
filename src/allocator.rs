//! The process's allocator: mimalloc, not the system's.
//!
//! `plan check` grows hash tables of megabytes by doubling on two threads (the placements made,
//! the continuations known: some 700 MB at depth 3, read at random). glibc gives each of those
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
//! the environment override them. Measured in docs/development.md (Figures, "mimalloc").

pub use mimalloc::MiMalloc as Allocator;

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
}
