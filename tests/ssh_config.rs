//! `plan execute` refuses an ssh config that would run a program or open a channel on this
//! machine, before any ssh process runs: exit 2, with the file and line. No host is reached:
//! the loopback scenario and `PLAN_LOOPBACK_ONLY=1`, and the refusal comes first.

use std::process::Command;

#[test]
fn an_ssh_config_with_match_exec_or_a_forwarding_is_refused_with_file_and_line_before_ssh_runs() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let marker = dir.path().join("match-exec-ran");
    let cases = [
        (format!("Host *\n  Port 22\nMatch exec \"touch {}\"\n", marker.display()), 3),
        ("Host 127.0.20.*\n  LocalForward=8080 localhost:80\n".to_string(), 2),
        ("include ".to_string() + &dir.path().join("inner").display().to_string() + "\n", 1),
    ];
    std::fs::write(dir.path().join("inner"), "\n\nKnownHostsCommand /bin/true\n").expect("writes");
    for (text, line) in cases {
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, &text).expect("writes");
        let out = Command::new(env!("CARGO_BIN_EXE_plan"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PLAN_LOOPBACK_ONLY", "1")
            .args(["--scenario", "scenarios/loopback.yaml", "execute", "--yes", "--override-check", "test", "--ssh-config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .expect("the plan binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        let (file, at) = if text.starts_with("include") { ("inner", 3) } else { ("ssh_config", line) };
        assert!(stderr.contains(&format!("{file}:{at}:")), "{text}: {stderr}");
        assert!(!dir.path().join("state").exists(), "refused before the state directory");
    }
    assert!(!marker.exists(), "the Match exec ran");
}
