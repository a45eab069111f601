//! What a scenario found: its figures (named numbers and paths, in a sorted
//! map so the JSON is stable), its checks (each assertion with what it saw),
//! and whether it passed. [`Suite`] is the JSON `mlab run` writes and the
//! tests append to.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One assertion of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What must hold, as a sentence.
    pub what: String,
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// One scenario's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    /// Every check passed and nothing went wrong.
    pub passed: bool,
    /// Wall time, up to and including teardown.
    pub secs: f64,
    pub figures: BTreeMap<String, Value>,
    pub checks: Vec<Check>,
    /// Targets reported but not required (e.g. an interruption under
    /// 500 ms): met or missed, they do not decide `passed`.
    pub goals: Vec<Check>,
    /// What stopped the scenario early, if anything did.
    pub error: Option<String>,
}

impl Report {
    pub fn new(scenario: &str, seed: u64) -> Report {
        Report {
            scenario: scenario.to_owned(),
            seed,
            passed: false,
            secs: 0.0,
            figures: BTreeMap::new(),
            checks: Vec::new(),
            goals: Vec::new(),
            error: None,
        }
    }

    /// Records a figure (a number, a path, anything JSON).
    pub fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.insert(name.to_owned(), value.into());
    }

    /// Records a check; returns whether it passed.
    pub fn check(&mut self, what: &str, passed: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check { what: what.to_owned(), passed, detail: detail.into() });
        passed
    }

    /// Records a goal (reported, not required); returns whether it was met.
    pub fn goal(&mut self, what: &str, met: bool, detail: impl Into<String>) -> bool {
        self.goals.push(Check { what: what.to_owned(), passed: met, detail: detail.into() });
        met
    }

    /// Settles `passed`: no error, at least one check, every check passed.
    pub fn finish(&mut self, secs: f64) {
        self.secs = secs;
        self.passed = self.error.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.passed);
    }

    /// The failed checks and the error, one per line (empty when it passed).
    pub fn failures(&self) -> String {
        let mut lines: Vec<String> =
            self.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.what, c.detail)).collect();
        lines.extend(self.error.iter().map(|e| format!("error: {e}")));
        lines.join("\n")
    }

    /// The human form.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        writeln!(out, "\n== scenario {}: {verdict} ({:.1} s, seed {})", self.scenario, self.secs, self.seed)?;
        for c in &self.checks {
            writeln!(out, "   [{}] {}: {}", if c.passed { "ok" } else { "!!" }, c.what, c.detail)?;
        }
        for g in &self.goals {
            writeln!(out, "   [goal {}] {}: {}", if g.passed { "met" } else { "missed" }, g.what, g.detail)?;
        }
        if let Some(e) = &self.error {
            writeln!(out, "   [!!] stopped: {e}")?;
        }
        for (name, value) in &self.figures {
            writeln!(out, "   {name:<28} {}", human(value))?;
        }
        Ok(())
    }
}

fn human(v: &Value) -> String {
    match v {
        Value::Array(items) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" -> ")
        }
        Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Several reports: the JSON file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Suite {
    pub passed: bool,
    pub reports: Vec<Report>,
}

impl Suite {
    pub fn new(reports: Vec<Report>) -> Suite {
        Suite { passed: !reports.is_empty() && reports.iter().all(|r| r.passed), reports }
    }

    /// Writes the suite as pretty JSON.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// Adds (or replaces, by scenario name) a report in the suite file at
    /// `path`, creating it if needed; an unreadable file is started afresh.
    pub fn merge_into(path: &Path, report: &Report) -> std::io::Result<()> {
        let mut reports = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Suite>(&t).ok())
            .map(|s| s.reports)
            .unwrap_or_default();
        reports.retain(|r| r.scenario != report.scenario);
        reports.push(report.clone());
        reports.sort_by(|a, b| a.scenario.cmp(&b.scenario));
        Suite::new(reports).write(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_passes_only_with_checks_all_passed_and_no_error() {
        let mut r = Report::new("x", 1);
        r.finish(1.0);
        assert!(!r.passed, "no checks is no pass");
        r.check("one", true, "fine");
        r.finish(1.0);
        assert!(r.passed);
        r.check("two", false, "saw 3");
        r.finish(1.0);
        assert!(!r.passed);
        assert_eq!(r.failures(), "two: saw 3");
        let mut r = Report::new("y", 1);
        r.check("one", true, "");
        r.error = Some("lab did not come up".into());
        r.finish(1.0);
        assert!(!r.passed);
    }

    #[test]
    fn the_human_form_lists_checks_and_figures_with_paths_as_arrows() {
        let mut r = Report::new("latency", 7);
        r.check("fiber selected", true, "via b");
        r.goal("under 500 ms", false, "519 ms");
        r.figure("path", vec!["a", "b(fiber)", "d(fiber)"]);
        r.figure("moved_ms", 812);
        r.finish(12.5);
        let mut out = Vec::new();
        r.print(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("scenario latency: PASS (12.5 s, seed 7)"), "{text}");
        assert!(text.contains("[ok] fiber selected: via b"), "{text}");
        assert!(text.contains("[goal missed] under 500 ms: 519 ms"), "{text}");
        assert!(r.passed, "a missed goal does not fail the scenario");
        assert!(text.contains("a -> b(fiber) -> d(fiber)"), "{text}");
        assert!(text.contains("moved_ms") && text.contains("812"), "{text}");
    }

    #[test]
    fn merging_into_a_suite_file_replaces_the_same_scenario_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, "not json").unwrap();
        let mut a = Report::new("loss", 1);
        a.check("clean", true, "");
        a.finish(1.0);
        Suite::merge_into(&path, &a).unwrap();
        let mut b = Report::new("bandwidth", 1);
        b.check("fast", false, "slow");
        b.finish(1.0);
        Suite::merge_into(&path, &b).unwrap();
        a.figure("goodput_mbit", 12.0);
        Suite::merge_into(&path, &a).unwrap();
        let suite: Suite = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let names: Vec<&str> = suite.reports.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(names, ["bandwidth", "loss"]);
        assert_eq!(suite.reports[1].figures["goodput_mbit"], 12.0);
        assert!(!suite.passed);
    }
}
