//! `plan check` asks glibc for huge-page heaps by starting itself again with `GLIBC_TUNABLES`
//! set, where the operator left it unset; a setting of the operator's is left as it is, and the
//! report is the same either way.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::process::Command;

/// `plan -v check` on five masters at depth 1 with `GLIBC_TUNABLES` as given (`None`: unset):
/// the exit code, the report, and the tunables the exploration ran with, from its log.
fn check_with_tunables(tunables: Option<&str>) -> (Option<i32>, String, String) {
    check_with(tunables, None)
}

/// The same, with `LD_PRELOAD` as given (`None`: unset).
fn check_with(tunables: Option<&str>, preload: Option<&str>) -> (Option<i32>, String, String) {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/five-masters.yaml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_plan"));
    command.args(["-v", "--scenario"]).arg(&scenario).args(["check", "--depth", "1", "--format", "json"]).env_remove("RUST_LOG");
    for (name, value) in [("GLIBC_TUNABLES", tunables), ("LD_PRELOAD", preload)] {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let out = command.output().expect("the plan binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("exploration done")).unwrap_or_else(|| panic!("no exploration logged: {stderr}"));
    let ran_with = line.split("glibc_tunables=").nth(1).unwrap_or_else(|| panic!("no tunables logged: {line}")).trim().to_string();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), ran_with)
}

#[test]
fn check_starts_again_with_huge_page_heaps_where_the_tunables_are_unset() {
    let (code, report, ran_with) = check_with_tunables(None);
    assert_eq!(ran_with, "glibc.malloc.hugetlb=1");
    let (operators_code, operators_report, operators) = check_with_tunables(Some("glibc.malloc.tcache_count=7"));
    assert_eq!(operators, "glibc.malloc.tcache_count=7", "the operator's tunables are left as they are");
    let (_, _, empty) = check_with_tunables(Some(""));
    assert_eq!(empty, "", "an empty setting is the operator's too");
    assert_eq!(code, operators_code);
    assert_eq!(report, operators_report, "the report does not depend on how the heaps are backed");
    assert!(report.contains("\"check_format\""), "{report}");
}

/// Under a tool that preloads itself (valgrind, a profiler, another allocator) the process is not
/// started again: valgrind would be left behind, measuring nothing. A library that cannot be
/// found is preloaded as far as the variable goes (the loader says so on stderr and goes on).
#[test]
fn check_is_not_started_again_where_a_library_is_preloaded() {
    let (code, report, ran_with) = check_with(None, Some("/nonexistent/libplan-test-preload.so"));
    assert_eq!(ran_with, "unset");
    let (plain_code, plain_report, _) = check_with_tunables(None);
    assert_eq!((code, report), (plain_code, plain_report));
}
