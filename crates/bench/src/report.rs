//! Figures of a run, as a table or as JSON.

use std::fmt::Write;

pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
}

/// The shape of a delivery workload, which says which relay run a Herald run is compared
/// with: ten endpoints an event (`fanout`, `filters`), or fewer (one in `throughput` and
/// the others, two in `entities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    OneEndpoint,
    Fanout,
}

impl Shape {
    pub(crate) fn of(endpoints_per_event: usize) -> Self {
        if endpoints_per_event >= 10 {
            Self::Fanout
        } else {
            Self::OneEndpoint
        }
    }
}

pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) figures: Vec<Figure>,
    /// Herald's deliveries, of this shape: its rate is compared with the relay's.
    pub(crate) compare_with: Option<Shape>,
    /// The relay's deliveries: the baseline for Herald's of this shape.
    pub(crate) baseline_for: Option<Shape>,
}

impl Report {
    pub(crate) fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            figures: Vec::new(),
            compare_with: None,
            baseline_for: None,
        }
    }

    pub(crate) fn add(&mut self, name: &'static str, value: f64, unit: &'static str) {
        self.figures.push(Figure { name, value, unit });
    }

    pub(crate) fn get(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }
}

pub(crate) fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(out, "\n{}", report.scenario);
        for f in &report.figures {
            let value = if f.value.fract() == 0.0 && f.value.abs() < 1e12 {
                format!("{}", f.value as i64)
            } else if f.value.abs() >= 100.0 {
                format!("{:.0}", f.value)
            } else if f.value.abs() < 1.0 {
                format!("{:.3}", f.value)
            } else {
                format!("{:.2}", f.value)
            };
            let _ = writeln!(out, "  {:<38} {:>12} {}", f.name, value, f.unit);
        }
    }
    out
}

pub(crate) fn json(reports: &[Report]) -> serde_json::Value {
    let mut all = serde_json::Map::new();
    for report in reports {
        let mut figures = serde_json::Map::new();
        for f in &report.figures {
            figures.insert(
                f.name.to_owned(),
                serde_json::json!({"value": f.value, "unit": f.unit}),
            );
        }
        all.insert(
            report.scenario.to_owned(),
            serde_json::Value::Object(figures),
        );
    }
    serde_json::Value::Object(all)
}
