//! The client through the VIP: `GET /readyz` every [`PROBE_INTERVAL_MS`], verifying the served
//! certificate against the lab CA for the VIP's address, each answer stamped with the step the
//! rehearsal was on. Its record gives the client-visible downtime.

use crate::apiserver::{Readyz, VerifyingClient};
use crate::process::Worker;
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Between two requests of the probe.
pub const PROBE_INTERVAL_MS: u64 = 100;
/// Answers kept at most (about 17 minutes at the interval): the record stays bounded.
pub const SAMPLES_MAX: usize = 10_000;

/// One answer.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Since the probe started.
    pub at_ms: u64,
    pub step: String,
    pub answer: Readyz,
}

/// A stretch of failed answers after the VIP had first answered ready.
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    /// Steps the failed answers were stamped with.
    pub steps: Vec<String>,
    pub lasted_ms: u64,
    pub failed_requests: u32,
    /// Some requests in the stretch still succeeded (the LB spread them over backends that
    /// differ): degraded rather than down.
    pub partial: bool,
    /// The first failure, as the client saw it.
    pub first: String,
}

/// What the probe measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeRecord {
    pub requests: u32,
    pub ready: u32,
    pub tls_rejected: u32,
    /// Whether the VIP ever answered ready (before that, failures are not downtime: nothing was
    /// served at the VIP yet).
    pub ever_ready: bool,
    /// Failed requests after the first ready one, times the interval they stand for.
    pub downtime_ms: u64,
    pub outages: Vec<Outage>,
}

/// A running probe; [`Probe::stop`] stops it and returns its record.
pub struct Probe {
    step: Arc<Mutex<String>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    /// `None` when its thread could not start: it records nothing.
    asking: Option<Worker>,
}

impl Probe {
    /// Starts asking `vip` (verifying for `name`) every [`PROBE_INTERVAL_MS`].
    pub fn start(client: VerifyingClient, vip: SocketAddr, name: Ipv4Addr) -> Probe {
        let step = Arc::new(Mutex::new("start".to_string()));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let (s_step, s_samples) = (Arc::clone(&step), Arc::clone(&samples));
        let asking = Worker::spawn("vip-probe".to_string(), move |stop| {
            while !stop.load(Ordering::SeqCst) {
                let asked = Instant::now();
                let answer = client.readyz(vip, name).unwrap_or_else(|e| Readyz::Unreachable(e.to_string()));
                let step = s_step.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let mut all = s_samples.lock().unwrap_or_else(PoisonError::into_inner);
                if all.len() < SAMPLES_MAX {
                    all.push(Sample { at_ms: start.elapsed().as_millis() as u64, step, answer });
                }
                drop(all);
                let spent = asked.elapsed();
                std::thread::sleep(Duration::from_millis(PROBE_INTERVAL_MS).saturating_sub(spent));
            }
        })
        .ok();
        Probe { step, samples, asking }
    }

    /// Stamps the following answers with `step`.
    pub fn on_step(&self, step: &str) {
        let mut current = self.step.lock().unwrap_or_else(PoisonError::into_inner);
        if *current != step {
            *current = step.to_string();
        }
    }

    /// Stops the probe (for good) and sums up what it saw.
    pub fn stop(&mut self) -> ProbeRecord {
        if let Some(asking) = &mut self.asking {
            asking.stop();
        }
        let mut samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner));
        samples.sort_by_key(|s| s.at_ms);
        summarize(&samples)
    }
}

/// Downtime and outages from the answers: a failed answer after the first ready one stands for
/// the time until the next answer; consecutive failures (with at most one success between them,
/// so a round-robin over a good and a bad backend is one degraded stretch) make one outage.
pub fn summarize(samples: &[Sample]) -> ProbeRecord {
    let mut record = ProbeRecord { requests: samples.len() as u32, ..ProbeRecord::default() };
    record.ready = samples.iter().filter(|s| s.answer.is_ready()).count() as u32;
    record.tls_rejected = samples.iter().filter(|s| matches!(s.answer, Readyz::TlsRejected(_))).count() as u32;
    let Some(first_ready) = samples.iter().position(|s| s.answer.is_ready()) else { return record };
    record.ever_ready = true;
    let mut open: Option<(Outage, usize)> = None;
    for (i, sample) in samples.iter().enumerate().skip(first_ready) {
        let next_at = samples.get(i + 1).map(|n| n.at_ms).unwrap_or(sample.at_ms + PROBE_INTERVAL_MS);
        let stands_for = next_at.saturating_sub(sample.at_ms);
        if sample.answer.is_ready() {
            if let Some((outage, last_fail)) = open.take() {
                // One success between failures: still the same stretch, degraded.
                if i == last_fail + 1 && samples.get(i + 1).is_some_and(|n| !n.answer.is_ready()) {
                    open = Some((Outage { partial: true, ..outage }, last_fail));
                } else {
                    record.outages.push(outage);
                }
            }
            continue;
        }
        record.downtime_ms += stands_for;
        let outage = match open.take() {
            Some((mut outage, _)) => {
                outage.lasted_ms += stands_for;
                outage.failed_requests += 1;
                if outage.steps.last() != Some(&sample.step) {
                    outage.steps.push(sample.step.clone());
                }
                outage
            }
            None => Outage {
                steps: vec![sample.step.clone()],
                lasted_ms: stands_for,
                failed_requests: 1,
                partial: false,
                first: sample.answer.to_string(),
            },
        };
        open = Some((outage, i));
    }
    if let Some((outage, _)) = open {
        record.outages.push(outage);
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, step: &str, ready: bool) -> Sample {
        let answer = if ready { Readyz::Ready } else { Readyz::Unreachable("connection refused".to_string()) };
        Sample { at_ms, step: step.to_string(), answer }
    }

    #[test]
    fn failures_before_the_vip_first_answers_are_not_downtime() {
        let samples = [sample(0, "1.2", false), sample(100, "1.3", false), sample(200, "1.4", true), sample(300, "2.1", true)];
        let record = summarize(&samples);
        assert!(record.ever_ready);
        assert_eq!(record.downtime_ms, 0);
        assert!(record.outages.is_empty());
        assert!(!summarize(&samples[..2]).ever_ready);
    }

    #[test]
    fn an_outage_spans_consecutive_failures_and_names_its_steps() {
        let samples = [
            sample(0, "1.4", true),
            sample(100, "2.7", false),
            sample(200, "2.7", false),
            sample(300, "2.8", false),
            sample(400, "2.8", true),
        ];
        let record = summarize(&samples);
        assert_eq!(record.downtime_ms, 300);
        assert_eq!(record.outages.len(), 1);
        assert_eq!(record.outages[0].steps, ["2.7", "2.8"]);
        assert!(!record.outages[0].partial);
    }

    #[test]
    fn alternating_answers_are_one_degraded_outage() {
        let samples =
            [sample(0, "a", true), sample(100, "b", false), sample(200, "b", true), sample(300, "b", false), sample(400, "c", true)];
        let record = summarize(&samples);
        assert_eq!(record.outages.len(), 1, "{:?}", record.outages);
        assert!(record.outages[0].partial);
        assert_eq!(record.downtime_ms, 200);
    }
}
