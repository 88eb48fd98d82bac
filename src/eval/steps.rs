//! [`Steps`]: how long each step of a training run took, recorded as the steps finish. Independent
//! fits run side by side on rayon's threads, so the steps overlap and do not add up to the run.

use std::time::Instant;

use parking_lot::Mutex;

/// The wall-clock seconds of each finished step, in the order they finished.
#[derive(Debug, Default)]
pub struct Steps(Mutex<Vec<(String, f64)>>);

impl Steps {
    /// Runs `f` as the step `name` and records its time.
    pub fn time<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        let seconds = started.elapsed().as_secs_f64();
        tracing::debug!(step = name, seconds, "training step finished");
        self.0.lock().push((name.to_string(), seconds));
        out
    }

    pub fn into_list(self) -> Vec<(String, f64)> {
        self.0.into_inner()
    }
}

/// One line per step: `name 12.3 s`.
pub fn describe(steps: &[(String, f64)]) -> String {
    steps
        .iter()
        .map(|(name, s)| format!("{name} {s:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_each_step_with_its_result() {
        let steps = Steps::default();
        assert_eq!(steps.time("one", || 1), 1);
        steps.time("two", || {
            std::thread::sleep(std::time::Duration::from_millis(2))
        });
        let list = steps.into_list();
        assert_eq!(
            list.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert!(list[1].1 >= 0.002, "{list:?}");
        assert!(describe(&list).starts_with("one 0.0 s, two 0.0 s"));
    }
}
