//! `plan report --html`: the page holds the plan's DAG, the exposure Gantt and the RAM bars as
//! the other commands compute them, refers to nothing outside itself, and renders in headless
//! Chromium (Debian's `chromium`) with every node and bar laid out and no console message.
//!
//! Without Chromium the rendering tests are skipped with a message, except under `CI=true`,
//! where `.ci/run` installs it and its absence fails them.

mod common;

use common::{plan, scenario};
use serde_json::Value;
use std::io::Cursor;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a Chromium run may take before the test kills it (it takes about 3 s here).
const CHROMIUM_RUN_S_MAX: u64 = 120;
/// The screenshot's size: wide enough for the DAG's columns, tall enough to reach the RAM bars.
const WINDOW_W: u32 = 2700;
const WINDOW_H: u32 = 2600;

/// Chromium's binary, or `None` with the reason printed; under CI a missing Chromium fails.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but /usr/bin/chromium is missing: .ci/run installs Debian's chromium"
        );
        eprintln!("skipping: /usr/bin/chromium is not installed (apt-get install chromium); not CI");
    }
    found
}

/// A Chromium process group, killed when dropped: a test that fails or times out leaves no
/// browser behind.
struct Browser {
    child: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the process group this test started (process_group(0) made the
            // child its leader); a negative id names that group only.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// What Chromium made of a page.
struct Rendered {
    /// The DOM after load and layout (`--dump-dom`).
    dom: String,
    /// Every console message the page caused (an error, a failed load, a log).
    console: Vec<String>,
    png: Vec<u8>,
}

/// Loads `page` in headless Chromium: dumps the DOM, takes a screenshot, collects the console.
fn render(browser: &Path, page: &Path, dir: &Path) -> Rendered {
    let shot = dir.join("shot.png");
    let (dom_file, log_file) = (dir.join("dom.html"), dir.join("chromium.log"));
    let mut command = Command::new(browser);
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"])
        // Nothing leaves this machine, whatever a page asked for: every name resolves nowhere.
        .arg("--host-resolver-rules=MAP * ~NOTFOUND")
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--window-size={WINDOW_W},{WINDOW_H}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_file).expect("temp file"))
        .stderr(std::fs::File::create(&log_file).expect("temp file"))
        .process_group(0);
    let mut running = Browser { child: command.spawn().expect("chromium starts") };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = running.child.try_wait().expect("chromium can be waited for") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(CHROMIUM_RUN_S_MAX), "chromium ran past {CHROMIUM_RUN_S_MAX} s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(status.success(), "chromium exited with {status}:\n{log}");
    Rendered {
        dom: std::fs::read_to_string(&dom_file).expect("the DOM was dumped"),
        // Chromium logs each console message as `…:INFO:CONSOLE:<line>] "<message>", source: …`.
        console: log.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect(),
        png: std::fs::read(&shot).unwrap_or_default(),
    }
}

fn json(args: &[&str]) -> Value {
    let out = plan(args);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("plan {args:?} prints JSON ({e}): {}", out.stderr))
}

/// Occurrences of `needle` in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// What the page must hold, computed from `plan show` and `plan capacity` as JSON: the steps,
/// the dependency edges between steps present, and the Gantt's bars (a bar per phase, per
/// exposure window, and per run of consecutive windows in which a machine is a single point).
struct Expected {
    steps: usize,
    edges: usize,
    phase_bars: usize,
    tolerance_bars: usize,
    single_point_bars: usize,
    hypervisors: usize,
}

fn expected(global: &[&str]) -> Expected {
    let show = json(&[global, &["show", "--format", "json"]].concat());
    let capacity = json(&[global, &["capacity", "--format", "json"]].concat());
    let steps = show["steps"].as_array().expect("steps");
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().expect("id")).collect();
    let edges = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s["after"].as_array().expect("after").iter().filter(|d| ids[..i].contains(&d["step"].as_str().expect("step"))).count()
        })
        .sum();
    let exposure = &capacity["exposure"];
    let windows = exposure["windows"].as_array().expect("windows");
    let holds = |w: &Value, machine: &str| w["single_points"].as_array().expect("points").iter().any(|p| p["machine"] == machine);
    let single_point_bars = exposure["single_point_time"]
        .as_array()
        .expect("single_point_time")
        .iter()
        .map(|s| {
            let machine = s["machine"].as_str().expect("machine");
            (0..windows.len()).filter(|&i| holds(&windows[i], machine) && (i == 0 || !holds(&windows[i - 1], machine))).count()
        })
        .sum();
    Expected {
        steps: steps.len(),
        edges,
        phase_bars: exposure["phases"].as_array().expect("phases").len(),
        tolerance_bars: windows.len(),
        single_point_bars,
        hypervisors: capacity["hypervisors"].as_array().expect("hypervisors").len(),
    }
}

/// The page's structure in `markup` (as written, or as Chromium's DOM) against `want`.
fn assert_structure(markup: &str, want: &Expected, what: &str) {
    let steps =
        count(markup, "<g class=\"step\"") + count(markup, "<g class=\"step by-hand\"") + count(markup, "<g class=\"step partly-by-hand\"");
    assert_eq!(steps, want.steps, "{what}: a DAG node per step");
    assert!(count(markup, "<g class=\"step by-hand\"") > 0, "{what}: by-hand steps are marked");
    assert_eq!(count(markup, "class=\"edge\""), want.edges, "{what}: an edge per dependency");
    assert_eq!(count(markup, "class=\"bar phase-bar\""), want.phase_bars, "{what}: a Gantt bar per phase");
    assert_eq!(count(markup, "class=\"bar tolerance tolerance-"), want.tolerance_bars, "{what}: a bar per exposure window");
    assert_eq!(count(markup, "class=\"bar single-point "), want.single_point_bars, "{what}: a bar per single-point run");
    assert!(want.single_point_bars > 0, "{what}: the plan has single points of failure to draw");
    assert_eq!(count(markup, "class=\"bar ram "), 3 * want.hypervisors, "{what}: before, peak and after per hypervisor");
    assert!(markup.contains("id=\"check-verdict\""), "{what}: the check's verdict");
}

/// The page loads nothing: no script, stylesheet link, image source, import, or reference that
/// is not to a fragment of itself.
fn assert_self_contained(page: &str) {
    for refused in ["<script", "<link", "<img", "<iframe", " src=", "@import", "xlink:href"] {
        assert!(!page.contains(refused), "the page holds {refused:?}");
    }
    for (at, _) in page.match_indices("href=\"") {
        assert!(page[at + 6..].starts_with('#'), "a link out of the page: {}", &page[at..(at + 60).min(page.len())]);
    }
    for (at, _) in page.match_indices("url(") {
        assert!(page[at + 4..].starts_with('#'), "a url() out of the page: {}", &page[at..(at + 60).min(page.len())]);
    }
}

/// Pixels of exactly `rgb` in the decoded screenshot.
fn pixels_of(png_bytes: &[u8], rgb: [u8; 3]) -> usize {
    let mut reader = png::Decoder::new(Cursor::new(png_bytes)).read_info().expect("the screenshot is a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a size that fits in memory")];
    let frame = reader.next_frame(&mut buffer).expect("the PNG decodes");
    assert_eq!((frame.width, frame.height), (WINDOW_W, WINDOW_H), "the screenshot is the window");
    let channels = frame.color_type.samples();
    buffer[..frame.buffer_size()].chunks_exact(channels).filter(|p| p[..3] == rgb).count()
}

/// Renders the page for `global` (scenario options) and checks it as written and as Chromium shows it.
fn report_renders(global: &[&str], name: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join(format!("{name}.html"));
    let out = plan(&[global, &["report", "--html", page.to_str().expect("UTF-8 path")]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("plan report: wrote ") && out.stdout.contains("check "), "{}", out.stdout);
    let written = std::fs::read_to_string(&page).expect("the page was written");
    let want = expected(global);
    assert_structure(&written, &want, "as written");
    assert_self_contained(&written);

    let Some(browser) = chromium() else { return };
    let rendered = render(&browser, &page, dir.path());
    assert!(rendered.console.is_empty(), "the console has messages:\n{}", rendered.console.join("\n"));
    assert_structure(&rendered.dom, &want, "in Chromium's DOM");
    assert!(rendered.png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is a PNG ({} bytes)", rendered.png.len());
    // The drawings are painted, not only present: the fills of an executor step, a by-hand step,
    // a window that tolerates no failure, a hypervisor as a single point and the RAM bars (each
    // colour used by nothing else larger than a legend swatch) show on the screen.
    for (what, rgb) in [
        ("step", [0xdb, 0xe9, 0xf7]),
        ("by-hand step", [0xfd, 0xe6, 0xbf]),
        ("tolerance-0 bar", [0xd6, 0x45, 0x41]),
        ("hypervisor bar", [0x7d, 0x3c, 0x98]),
    ] {
        let painted = pixels_of(&rendered.png, rgb);
        assert!(painted > 500, "{name}: {painted} pixels of the {what} fill on the screenshot");
    }
    let ram: usize =
        [[0x4a, 0x8f, 0xcf], [0xf0, 0xb4, 0x5a], [0xb0, 0x3a, 0x2e]].into_iter().map(|rgb| pixels_of(&rendered.png, rgb)).sum();
    assert!(ram > 3 * 500, "{name}: {ram} pixels of RAM bars on the screenshot");
    if let Ok(keep) = std::env::var("PLAN_REPORT_SCREENSHOT_DIR") {
        std::fs::write(Path::new(&keep).join(format!("{name}.png")), &rendered.png).expect("screenshot kept");
    }
}

#[test]
fn the_embedded_scenario_report_renders_with_its_dag_and_gantt() {
    report_renders(&[], "homelab");
}

#[test]
fn the_five_masters_report_renders_with_its_dag_and_gantt() {
    let five = scenario("five-masters.yaml");
    report_renders(&["--scenario", &five], "five-masters");
}

/// The console check above can fail: a page that throws shows up in what `render` collects.
#[test]
fn a_page_that_throws_is_caught_on_the_console() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("throws.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><svg><rect class=\"bar\"/></svg><script>throw new Error('drawn wrong')</script></body></html>",
    )
    .expect("page written");
    let rendered = render(&browser, &page, dir.path());
    assert!(rendered.console.iter().any(|l| l.contains("drawn wrong")), "console: {:?}", rendered.console);
}

#[test]
fn a_directory_or_a_missing_directory_is_refused_before_the_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = plan(&["report", "--html", dir.path().to_str().expect("UTF-8 path")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is a directory") && out.stderr.contains("report.html"), "{}", out.stderr);

    let nowhere = dir.path().join("no-such-dir").join("report.html");
    let out = plan(&["report", "--html", nowhere.to_str().expect("UTF-8 path")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(!nowhere.exists());

    let out = plan(&["report"]);
    assert_eq!(out.code, 2, "--html is required: {}", out.stderr);
    assert!(out.stderr.contains("--html"), "{}", out.stderr);
    assert!(std::fs::read_dir(dir.path()).expect("readable").next().is_none(), "nothing was written");
}

#[test]
fn an_edited_plan_draws_only_its_steps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exported = plan(&["show", "--format", "yaml"]);
    let edited = common::write(dir.path(), "edited.yaml", &common::remove_steps(&exported.stdout, &["7.5", "6.3"]));
    let page = dir.path().join("edited.html");
    let out = plan(&["--plan", &edited, "report", "--html", page.to_str().expect("UTF-8 path")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = std::fs::read_to_string(&page).expect("the page was written");
    assert!(written.contains("(edited plan)"));
    assert!(!written.contains("id=\"step-7.5\"") && !written.contains("id=\"step-6.3\"") && written.contains("id=\"step-7.4\""));
    assert_structure(&written, &expected(&["--plan", &edited]), "edited plan");
}
