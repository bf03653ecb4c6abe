//! The per-node circuit breaker, as a pure state machine (no socket, no clock of its own: every
//! call is given `now`), driven by [`super::Node`].
//!
//! ```text
//! Closed --(N consecutive failures, or a failure ratio over a window)--> Open
//! Open --(probe_after elapsed; the next caller sends a PING)--> HalfOpen
//! HalfOpen --(PING answered)--> Ramp(step 0) --(each step admits its fraction)--> Closed
//! HalfOpen --(PING failed)--> Open;   Ramp --(any failure)--> Open
//! ```
//!
//! Failures are *connection* failures (a failed connect, a connection that broke or stalled),
//! each counted once however many commands were waiting on it.

use std::time::{Duration, Instant};

/// How a node's circuit breaker opens and closes again, used under
/// [`DownPolicy::FailFast`](crate::DownPolicy::FailFast).
///
/// ```
/// use std::time::Duration;
/// let options = shardis::BreakerOptions::new()
///     .consecutive_failures(3)
///     .failure_ratio(0.5, 20, Duration::from_secs(10))
///     .probe_after(Duration::from_millis(500))
///     .ramp(&[0.1, 0.25, 0.5, 1.0], Duration::from_secs(10));
/// assert!(options.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerOptions {
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_ratio: f64,
    pub(crate) min_samples: u32,
    pub(crate) window: Duration,
    pub(crate) probe_after: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) ramp_steps: Vec<f64>,
    pub(crate) ramp_duration: Duration,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            min_samples: 20,
            window: Duration::from_secs(10),
            probe_after: Duration::from_millis(500),
            probe_timeout: Duration::from_secs(2),
            ramp_steps: vec![0.1, 0.25, 0.5, 1.0],
            ramp_duration: Duration::from_secs(10),
        }
    }
}

impl BreakerOptions {
    /// The defaults: opens after 3 consecutive connection failures, or when at least half of
    /// 20 or more outcomes within 10 s of a first failure failed; probes 500 ms after opening;
    /// ramps 10% → 25% → 50% → 100% over 10 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consecutive connection failures that open the breaker. Default 3.
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.consecutive_failures = failures;
        self
    }

    /// Opens when, within `window` of a first failure, at least `min_samples` outcomes were
    /// seen and `ratio` (0 < ratio <= 1) of them failed. Default 0.5 of 20 within 10 s.
    pub fn failure_ratio(mut self, ratio: f64, min_samples: u32, window: Duration) -> Self {
        self.failure_ratio = ratio;
        self.min_samples = min_samples;
        self.window = window;
        self
    }

    /// How long an open breaker refuses everything before one caller probes the node with a
    /// `PING`. Default 500 ms.
    pub fn probe_after(mut self, wait: Duration) -> Self {
        self.probe_after = wait;
        self
    }

    /// After a successful probe, the fraction of commands admitted in each step (rising,
    /// each in `(0, 1]`), the steps sharing `duration` equally; the breaker closes after
    /// the last. Default `[0.1, 0.25, 0.5, 1.0]` over 10 s. An empty list closes at once.
    pub fn ramp(mut self, steps: &[f64], duration: Duration) -> Self {
        self.ramp_steps = steps.to_vec();
        self.ramp_duration = duration;
        self
    }

    /// Why these options cannot work, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.consecutive_failures == 0 {
            return Err("breaker consecutive_failures must be at least 1".into());
        }
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            return Err(format!(
                "breaker failure ratio must be in (0, 1], not {}",
                self.failure_ratio
            ));
        }
        if self.window.is_zero() || self.probe_after.is_zero() {
            return Err("breaker window and probe_after must be greater than zero".into());
        }
        if let Some(bad) = self.ramp_steps.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return Err(format!(
                "breaker ramp steps must each be in (0, 1], not {bad}"
            ));
        }
        if !self.ramp_steps.is_empty() && self.ramp_duration.is_zero() {
            return Err("breaker ramp duration must be greater than zero".into());
        }
        Ok(())
    }
}

/// A whole command in a ramp's admission credit (millionths).
const ONE: u32 = 1_000_000;

/// Where a breaker is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { since: Instant },
    Ramp { since: Instant, credit: u32 },
}

/// What a caller may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send.
    Yes,
    /// Send a `PING` first and report it with [`Breaker::probed`]; the others are refused
    /// meanwhile.
    Probe,
    /// Refused: the next chance comes in about this long.
    No { retry_in: Duration },
}

/// What a reported outcome changed, for the shell to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    Opened,
    /// A probe failed: open again (reported quietly: it happens every `probe_after` while
    /// the node stays down).
    StillOpen,
    Ramping,
    Closed,
}

/// One node's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    options: BreakerOptions,
    state: State,
    consecutive: u32,
    /// The failure-ratio window: when it began (at a failure), failures and outcomes in it.
    window: Option<(Instant, u32, u32)>,
}

impl Breaker {
    pub fn new(options: BreakerOptions) -> Self {
        Breaker {
            options,
            state: State::Closed,
            consecutive: 0,
            window: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// True when a success changes nothing (closed, no failure being counted): the shell then
    /// skips the lock.
    pub fn is_quiet(&self) -> bool {
        self.state == State::Closed && self.consecutive == 0 && self.window.is_none()
    }

    /// May a command go to the node now?
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed => Admit::Yes,
            State::Open { until } if now < until => Admit::No {
                retry_in: until - now,
            },
            State::Open { .. } => {
                self.state = State::HalfOpen { since: now };
                Admit::Probe
            }
            State::HalfOpen { since } => {
                // A probe whose caller went away must not keep the node shut for good.
                if now.saturating_duration_since(since) >= self.options.probe_timeout {
                    self.state = State::HalfOpen { since: now };
                    Admit::Probe
                } else {
                    Admit::No {
                        retry_in: (since + self.options.probe_timeout) - now,
                    }
                }
            }
            State::Ramp { since, credit } => {
                let Some((step, next_step_in)) = self.ramp_step(since, now) else {
                    self.close();
                    return Admit::Yes;
                };
                // Fixed point (millionths), so every step admits exactly its share.
                let credit = credit + (step * f64::from(ONE)).round() as u32;
                if credit >= ONE {
                    self.state = State::Ramp {
                        since,
                        credit: credit - ONE,
                    };
                    Admit::Yes
                } else {
                    self.state = State::Ramp { since, credit };
                    Admit::No {
                        retry_in: next_step_in,
                    }
                }
            }
        }
    }

    /// The fraction admitted at `now` of a ramp begun at `since`, and the time to the next
    /// step; `None` once the ramp is over.
    fn ramp_step(&self, since: Instant, now: Instant) -> Option<(f64, Duration)> {
        let steps = &self.options.ramp_steps;
        if steps.is_empty() {
            return None;
        }
        let step_len = self.options.ramp_duration / steps.len() as u32;
        let elapsed = now.saturating_duration_since(since);
        let index = if step_len.is_zero() {
            steps.len()
        } else {
            (elapsed.as_nanos() / step_len.as_nanos()) as usize
        };
        let fraction = *steps.get(index)?;
        let next = step_len * (index as u32 + 1);
        Some((fraction, next.saturating_sub(elapsed)))
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.consecutive = 0;
        self.window = None;
    }

    fn open(&mut self, now: Instant) -> Change {
        self.state = State::Open {
            until: now + self.options.probe_after,
        };
        self.consecutive = 0;
        self.window = None;
        Change::Opened
    }

    /// The probe's outcome.
    pub fn probed(&mut self, ok: bool, now: Instant) -> Change {
        match (self.state, ok) {
            (State::HalfOpen { .. }, true) => {
                if self.options.ramp_steps.is_empty() {
                    self.close();
                    Change::Closed
                } else {
                    self.state = State::Ramp {
                        since: now,
                        credit: 0,
                    };
                    Change::Ramping
                }
            }
            (State::HalfOpen { .. }, false) => {
                self.open(now);
                Change::StillOpen
            }
            _ => Change::None,
        }
    }

    /// Starts a ramp on a closed breaker (a node that takes over traffic from one whose
    /// breaker opened, e.g. a promoted replica).
    pub fn start_ramp(&mut self, now: Instant) -> Change {
        if self.state != State::Closed || self.options.ramp_steps.is_empty() {
            return Change::None;
        }
        self.state = State::Ramp {
            since: now,
            credit: 0,
        };
        Change::Ramping
    }

    /// A command got its reply.
    pub fn on_success(&mut self, now: Instant) -> Change {
        self.consecutive = 0;
        if let Some((start, failures, total)) = self.window {
            if now.saturating_duration_since(start) >= self.options.window {
                self.window = None;
            } else {
                self.window = Some((start, failures, total + 1));
            }
        }
        if let State::Ramp { since, .. } = self.state
            && self.ramp_step(since, now).is_none()
        {
            self.close();
            return Change::Closed;
        }
        Change::None
    }

    /// A connection failure (counted once per connection by the shell).
    pub fn on_failure(&mut self, now: Instant) -> Change {
        match self.state {
            State::Closed => {}
            // The ramp failed: shut again.
            State::Ramp { .. } => return self.open(now),
            // Already open; a probe reports through `probed`.
            State::Open { .. } | State::HalfOpen { .. } => return Change::None,
        }
        self.consecutive += 1;
        let (start, failures, total) = match self.window {
            Some((start, f, t)) if now.saturating_duration_since(start) < self.options.window => {
                (start, f + 1, t + 1)
            }
            _ => (now, 1, 1),
        };
        self.window = Some((start, failures, total));
        let ratio_reached = total >= self.options.min_samples
            && f64::from(failures) >= self.options.failure_ratio * f64::from(total);
        if self.consecutive >= self.options.consecutive_failures || ratio_reached {
            return self.open(now);
        }
        Change::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BreakerOptions {
        BreakerOptions::new()
            .consecutive_failures(3)
            .failure_ratio(0.5, 10, Duration::from_secs(10))
            .probe_after(Duration::from_millis(500))
            .ramp(&[0.1, 0.25, 0.5, 1.0], Duration::from_secs(4))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(options());
        assert_eq!(b.on_failure(t0), Change::None);
        assert_eq!(b.on_failure(t0), Change::None);
        assert_eq!(b.on_success(t0), Change::None);
        assert_eq!(b.on_failure(t0), Change::None);
        assert_eq!(b.on_failure(t0), Change::None);
        assert_eq!(b.admit(t0), Admit::Yes);
        assert_eq!(b.on_failure(t0 + ms(1)), Change::Opened);
        assert_eq!(b.admit(t0 + ms(101)), Admit::No { retry_in: ms(400) });
    }

    #[test]
    fn opens_on_a_failure_ratio_within_the_window_only() {
        let t0 = Instant::now();
        let mut b = Breaker::new(options());
        // 6 failures among 11 outcomes, never 2 in a row.
        for i in 0..6 {
            let change = b.on_failure(t0 + ms(i));
            assert_eq!(change, if i == 5 { Change::Opened } else { Change::None });
            b.on_success(t0 + ms(i));
        }
        // Spread beyond the window, the same pattern never opens.
        let mut b = Breaker::new(options());
        for i in 0..50 {
            let now = t0 + Duration::from_secs(4 * i);
            b.on_success(now);
            assert_eq!(b.on_failure(now), Change::None, "round {i}");
        }
        assert!(!b.is_quiet());
        b.on_success(t0 + Duration::from_secs(1000));
        assert!(b.is_quiet(), "{b:?}");
    }

    #[test]
    fn probes_once_after_the_wait_then_ramps_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(options());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(b.admit(t0 + ms(500)), Admit::Probe);
        // Only one prober at a time.
        assert!(matches!(b.admit(t0 + ms(501)), Admit::No { .. }));
        let t1 = t0 + ms(510);
        assert_eq!(b.probed(true, t1), Change::Ramping);
        // Each 1 s step admits its fraction of the callers.
        for (step, fraction) in [0.1, 0.25, 0.5].into_iter().enumerate() {
            let start = t1 + Duration::from_secs(step as u64) + ms(1);
            let admitted = (0..1000)
                .filter(|i| b.admit(start + Duration::from_micros(*i)) == Admit::Yes)
                .count();
            let expected = (1000.0 * fraction) as usize;
            assert!(
                admitted.abs_diff(expected) <= 1,
                "step {step}: {admitted} admitted, {expected} expected"
            );
        }
        let last = t1 + Duration::from_secs(3) + ms(1);
        assert!((0..100).all(|i| b.admit(last + Duration::from_micros(i)) == Admit::Yes));
        assert_eq!(b.on_success(t1 + Duration::from_secs(4)), Change::Closed);
        assert_eq!(b.state(), State::Closed);
        assert!(b.is_quiet());
    }

    #[test]
    fn a_failed_probe_or_a_failure_during_the_ramp_opens_again() {
        let t0 = Instant::now();
        let mut b = Breaker::new(options());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(b.admit(t0 + ms(600)), Admit::Probe);
        assert_eq!(b.probed(false, t0 + ms(700)), Change::StillOpen);
        assert!(matches!(b.admit(t0 + ms(800)), Admit::No { .. }));
        assert_eq!(b.admit(t0 + ms(1200)), Admit::Probe);
        assert_eq!(b.probed(true, t0 + ms(1200)), Change::Ramping);
        assert_eq!(b.on_failure(t0 + ms(1300)), Change::Opened);
        assert_eq!(b.admit(t0 + ms(1300)), Admit::No { retry_in: ms(500) });
    }

    #[test]
    fn a_probe_whose_caller_vanished_is_retried_after_the_probe_timeout() {
        let t0 = Instant::now();
        let mut b = Breaker::new(options());
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(b.admit(t0 + ms(500)), Admit::Probe);
        assert!(matches!(b.admit(t0 + ms(2000)), Admit::No { .. }));
        assert_eq!(b.admit(t0 + ms(2500)), Admit::Probe);
    }

    #[test]
    fn a_ramp_may_start_on_a_closed_breaker_and_no_ramp_closes_at_once() {
        let t0 = Instant::now();
        let mut b = Breaker::new(options());
        assert_eq!(b.start_ramp(t0), Change::Ramping);
        let admitted = (0..100)
            .filter(|i| b.admit(t0 + Duration::from_micros(*i)) == Admit::Yes)
            .count();
        assert_eq!(admitted, 10);
        let mut b = Breaker::new(options().ramp(&[], Duration::ZERO));
        for _ in 0..3 {
            b.on_failure(t0);
        }
        assert_eq!(b.admit(t0 + ms(500)), Admit::Probe);
        assert_eq!(b.probed(true, t0 + ms(500)), Change::Closed);
        assert_eq!(b.admit(t0 + ms(501)), Admit::Yes);
    }

    #[test]
    fn options_that_cannot_work_are_refused() {
        assert!(BreakerOptions::new().validate().is_ok());
        assert!(
            BreakerOptions::new()
                .consecutive_failures(0)
                .validate()
                .is_err()
        );
        let ratio = BreakerOptions::new().failure_ratio(1.5, 1, Duration::from_secs(1));
        assert!(ratio.validate().is_err());
        let ramp = BreakerOptions::new().ramp(&[0.5, 0.0], Duration::from_secs(1));
        assert!(ramp.validate().is_err());
    }
}
