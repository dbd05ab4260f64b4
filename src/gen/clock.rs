//! Run days, weekdays and times. The practice keeps UTC as its local time.

use crate::event::Timestamp;

pub const SEC_MS: i64 = 1000;
pub const MIN_MS: i64 = 60 * SEC_MS;
pub const HOUR_MS: i64 = 60 * MIN_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// UTC midnight of the first run day.
    start_ms: i64,
}

impl Clock {
    /// A clock whose day 0 is the UTC day of `start_ms`.
    pub fn new(start_ms: i64) -> Clock {
        Clock {
            start_ms: start_ms - start_ms.rem_euclid(DAY_MS),
        }
    }

    pub fn day_start(&self, day: u32) -> i64 {
        self.start_ms + i64::from(day) * DAY_MS
    }

    /// Monday = 0 .. Sunday = 6.
    pub fn weekday(&self, day: u32) -> usize {
        weekday_of(self.day_start(day))
    }

    /// `YYYY-MM-DD` of the UTC day holding `ms`.
    pub fn date(&self, ms: i64) -> String {
        let ts = timestamp(ms).to_string();
        ts.get(..10).unwrap_or_default().to_owned()
    }
}

/// Monday = 0 .. Sunday = 6 of the UTC day holding `ms`.
pub fn weekday_of(ms: i64) -> usize {
    // 1970-01-01 was a Thursday (3 when Monday is 0); the value is in 0..7.
    (ms.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize
}

/// The timestamp of `ms`. Every run time lies between 1970 and 9999
/// (`GenConfig` checks the start and the length), so the fallback to the
/// epoch is never taken.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_unix_ms(ms)
        .or_else(|_| Timestamp::from_unix_ms(0))
        .unwrap_or_else(|_| Timestamp::now())
}
