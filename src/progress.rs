//! A progress line on stderr for long runs (only on a terminal).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    on: bool,
    start: Instant,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(wanted: bool) -> Progress {
        Progress {
            on: wanted && std::io::stderr().is_terminal(),
            start: Instant::now(),
            last: Mutex::new(None),
        }
    }

    /// Redraws at most 5 times a second, after the first second.
    pub fn update(&self, i: usize, n: usize) {
        if !self.on || self.start.elapsed().as_secs_f64() < 1.0 {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed().as_millis() < 200) && i < n {
            return;
        }
        *last = Some(Instant::now());
        let _ = write!(
            std::io::stderr(),
            "\r  instruction {i}/{n} ({:.0}%), {:.1} s",
            100.0 * i as f64 / n.max(1) as f64,
            self.start.elapsed().as_secs_f64()
        );
    }

    pub fn finish(&self) {
        if self.on && self.last.lock().map(|l| l.is_some()).unwrap_or(false) {
            let _ = writeln!(std::io::stderr());
        }
    }
}
