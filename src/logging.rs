//! Where `tracing` goes: to stderr for a person who asked (`-v`, `RUST_LOG`), and as JSON lines
//! to the run's log file once the executor opens it.

use crate::Failure;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The run's JSON log file, opened by the executor after the subscriber is installed: until
/// then nothing is written to it (and no event is formatted for it).
#[derive(Clone, Default)]
pub struct JsonLog(Arc<OnceLock<Mutex<File>>>);

impl JsonLog {
    /// Opens `path` for appending and sends INFO and above there from now on.
    ///
    /// # Errors
    /// [`Failure::Input`] when the file cannot be opened.
    pub fn open(&self, path: &Path) -> Result<(), Failure> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Failure::Input(format!("log file {}: {e}", path.display())))?;
        // A second open in one process keeps the first file: one run, one log.
        let _ = self.0.set(Mutex::new(file));
        Ok(())
    }

    fn is_open(&self) -> bool {
        self.0.get().is_some()
    }
}

impl Write for JsonLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.0.get() {
            Some(file) => file.lock().map_err(|_| std::io::Error::other("log file lock poisoned"))?.write(bytes),
            None => Ok(bytes.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.get() {
            Some(file) => file.lock().map_err(|_| std::io::Error::other("log file lock poisoned"))?.flush(),
            None => Ok(()),
        }
    }
}

/// The filter for stderr: `RUST_LOG` when set, else one level per `-v` (info, debug, trace);
/// None when neither asks for logs, so a plain run prints only its report.
fn stderr_filter(verbose: u8) -> Result<Option<EnvFilter>, Failure> {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).map(Some).map_err(|e| Failure::Input(format!("RUST_LOG {directives:?}: {e}")))
        }
        _ => Ok(match verbose {
            0 => None,
            1 => Some(EnvFilter::new("info")),
            2 => Some(EnvFilter::new("debug")),
            _ => Some(EnvFilter::new("trace")),
        }),
    }
}

/// Installs the process's subscriber and returns the JSON log for the executor to open.
///
/// # Errors
/// [`Failure::Input`] for a `RUST_LOG` that is not a filter.
pub fn init(verbose: u8) -> Result<JsonLog, Failure> {
    let json_log = JsonLog::default();
    let stderr = stderr_filter(verbose)?.map(|filter| {
        // anstream strips the colour codes off a terminal and under NO_COLOR, as for the reports.
        tracing_subscriber::fmt::layer().with_writer(anstream::stderr).with_target(false).with_filter(filter)
    });
    let file = json_log.clone();
    let open = json_log.clone();
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || file.clone())
        .with_filter(filter_fn(move |meta| open.is_open() && *meta.level() <= tracing::Level::INFO));
    // Fails only when a subscriber is already set: not in this binary, which sets it once.
    let _ = tracing_subscriber::registry().with(stderr).with(json).try_init();
    Ok(json_log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_picks_a_level_and_a_bad_rust_log_is_refused() {
        // RUST_LOG is read from the environment; these cases hold whatever the test runner has,
        // as long as it does not set RUST_LOG itself.
        if std::env::var_os("RUST_LOG").is_some() {
            return;
        }
        assert!(stderr_filter(0).unwrap().is_none(), "no logs unless asked");
        assert_eq!(stderr_filter(1).unwrap().unwrap().to_string(), "info");
        assert_eq!(stderr_filter(2).unwrap().unwrap().to_string(), "debug");
        assert_eq!(stderr_filter(9).unwrap().unwrap().to_string(), "trace");
    }

    #[test]
    fn the_json_log_drops_writes_until_opened() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = JsonLog::default();
        assert_eq!(log.write(b"lost\n").unwrap(), 5);
        assert!(!log.is_open());
        let path = dir.path().join("execute.log.jsonl");
        log.open(&path).unwrap();
        log.write_all(b"kept\n").unwrap();
        log.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n");
    }
}
