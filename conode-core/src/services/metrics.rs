//! Sources of `/metrics` and of the service sections of `/status`: each service registers a
//! function that writes its own series (or section), the way it registers HTTP routes, so the
//! operator layer of the client port knows no particular service.

use std::fmt::Write;
use std::sync::{Arc, RwLock};

/// Writes series in the Prometheus text exposition format.
#[derive(Default)]
pub struct MetricsWriter {
    out: String,
}

/// Escapes a Prometheus label value.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl MetricsWriter {
    /// One series without labels: `# HELP`, `# TYPE` and the value.
    pub fn metric(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }

    /// The `# HELP` and `# TYPE` lines of a labelled series (its samples follow with `labelled`).
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One labelled sample of a series whose `# HELP`/`# TYPE` lines were written already (or that
    /// needs none).
    pub fn labelled(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label(v))).collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }

    /// A gauge of value 1 whose labels carry the information (`conode_info{version="…"} 1`).
    pub fn info(&mut self, name: &str, help: &str, labels: &[(&str, &str)]) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label(v))).collect();
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{}}} 1", labels.join(","));
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes one service's series.
pub type MetricsSource = Arc<dyn Fn(&mut MetricsWriter) + Send + Sync>;

/// The metrics sources of a node, by owner (a service name, or `node`).
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    sources: Arc<RwLock<Vec<(String, MetricsSource)>>>,
}

impl MetricsRegistry {
    pub fn add(&self, owner: &str, source: MetricsSource) {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).push((owner.to_string(), source));
    }

    /// Forgets the sources of `owner` (when it stops).
    pub fn remove(&self, owner: &str) {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).retain(|(o, _)| o != owner);
    }

    /// Every source's series, in registration order.
    pub fn render(&self) -> String {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut w = MetricsWriter::default();
        for (_, source) in sources {
            source(&mut w);
        }
        w.finish()
    }
}

/// One service's section of the status map: key → value.
pub type StatusSource = Arc<dyn Fn() -> std::collections::BTreeMap<String, String> + Send + Sync>;

/// Status sections registered by services, by section name.
#[derive(Clone, Default)]
pub struct StatusRegistry {
    sources: Arc<RwLock<Vec<(String, StatusSource)>>>,
}

impl StatusRegistry {
    pub fn add(&self, section: &str, source: StatusSource) {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).push((section.to_string(), source));
    }

    pub fn remove(&self, section: &str) {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).retain(|(s, _)| s != section);
    }

    /// Every registered section, evaluated now.
    pub fn sections(&self) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner()).clone();
        sources.into_iter().map(|(name, f)| (name, f())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_write_in_order_and_can_be_removed() {
        let r = MetricsRegistry::default();
        r.add("a", Arc::new(|w: &mut MetricsWriter| w.metric("a_total", "counter", "A.", 1)));
        r.add("b", Arc::new(|w: &mut MetricsWriter| w.info("b_info", "B.", &[("v", "x\"y")])));
        let text = r.render();
        assert!(text.find("a_total 1").unwrap() < text.find("b_info{v=\"x\\\"y\"} 1").unwrap(), "{text}");
        r.remove("a");
        assert!(!r.render().contains("a_total"));
    }

    #[test]
    fn escaping() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
