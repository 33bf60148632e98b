//! The retry policy for calls to external services (the LLM, Twilio, Qdrant): exponential
//! backoff, doubling, capped, bounded in count; no jitter, so waits are predictable in logs
//! and tests.

use std::time::Duration;

/// How a failed call to an external service is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry; each later wait doubles it.
    pub initial: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
}

impl RetryPolicy {
    /// The cap every paid API's retries share.
    pub const MAX_DELAY: Duration = Duration::from_secs(5);

    /// Backoff from `initial`, doubling up to [`Self::MAX_DELAY`], for `max_retries` retries.
    pub fn new(initial: Duration, max_retries: u32) -> Self {
        Self {
            initial,
            max_delay: Self::MAX_DELAY,
            max_retries,
        }
    }

    pub fn with_max_delay(self, max_delay: Duration) -> Self {
        Self { max_delay, ..self }
    }

    /// The waits between attempts, in order.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.max_retries).map(|retry| {
            self.initial
                .saturating_mul(2_u32.saturating_pow(retry))
                .min(self.max_delay)
        })
    }

    /// The policy for `backon`'s `retry` combinator.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder as _;

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy = RetryPolicy::new(Duration::from_secs(1), 5);
        let delays: Vec<u64> = policy.delays().map(|d| d.as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn backon_waits_what_the_policy_says() {
        let policy =
            RetryPolicy::new(Duration::from_millis(100), 4).with_max_delay(Duration::from_millis(300));
        // backon multiplies in floating point: compare to the millisecond.
        let millis = |waits: Vec<Duration>| waits.iter().map(Duration::as_millis).collect::<Vec<_>>();
        let waits = millis(policy.backoff().build().collect());
        assert_eq!(waits, millis(policy.delays().collect()));
        assert_eq!(waits, [100, 200, 300, 300]);
    }
}
