//! `small_pages_unless_asked` in a process of its own: it sets a flag of the whole process, which
//! the unit tests' huge-page checks must not see.

/// Whether this process has transparent huge pages turned off (`prctl(PR_GET_THP_DISABLE)`).
#[cfg(target_os = "linux")]
fn thp_disabled() -> bool {
    // SAFETY: PR_GET_THP_DISABLE takes no argument and touches no memory of ours.
    let answer = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    assert!(answer >= 0, "PR_GET_THP_DISABLE answers: {}", std::io::Error::last_os_error());
    answer == 1
}

/// With the variable set nothing is changed; without it the process takes small pages. One
/// test, so the variable is never set while the other case runs.
#[cfg(target_os = "linux")]
#[test]
fn huge_pages_are_off_unless_the_variable_asks_for_them() {
    assert!(!thp_disabled(), "huge pages are allowed as the test starts");
    std::env::set_var(plan_allocator::ALLOW_THP, "1");
    assert!(!plan_allocator::small_pages_unless_asked(), "the variable set: nothing changed");
    assert!(!thp_disabled());
    std::env::remove_var(plan_allocator::ALLOW_THP);
    assert!(plan_allocator::small_pages_unless_asked(), "the variable unset: turned off");
    assert!(thp_disabled(), "every fault from now on takes small pages");
}
