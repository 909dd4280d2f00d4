//! Sources of `/metrics`, of the service sections of `/status` and of the rosters on the status
//! page: each service registers a function that registers its own series (or section, or roster
//! views), the way it registers HTTP routes, so the operator layer of the client port knows no
//! particular service.
//!
//! Series are `prometheus-client` metrics. A scrape builds a fresh registry from every source
//! (sources come and go with their services; live counters and histograms are cheap `Arc` clones)
//! and encodes it as OpenMetrics, or as the Prometheus text format 0.0.4 (what `promtool check
//! metrics` and most scrapers read) by [`to_prometheus_text`].

use crate::config::ServerIdentity;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

/// Labels of a labelled series: `(name, value)` pairs.
pub type Labels = Vec<(String, String)>;
/// A labelled counter family.
pub type CounterFamily = Family<Labels, prometheus_client::metrics::counter::Counter>;
/// A labelled gauge family (float values).
pub type GaugeFamily = Family<Labels, Gauge<f64, AtomicU64>>;
/// A labelled histogram family.
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets in seconds, 1 ms to 30 s.
pub const SECONDS_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Beacon lag buckets in seconds, 10 ms to 60 s (promtool wants base units: seconds, not ms).
pub const LAG_BUCKETS: [f64; 13] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

/// A histogram of latencies in seconds.
pub fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS.iter().copied())
}

/// A family of latency histograms in seconds.
pub fn seconds_histogram_family() -> HistogramFamily {
    Family::new_with_constructor(seconds_histogram as fn() -> Histogram)
}

/// Escapes a label value (`prometheus-client` writes values as given).
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `[(k, v)]` as owned labels, values escaped.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), label(v))).collect()
}

/// Help text as `prometheus-client` wants it: it appends the final period itself.
fn help(h: &str) -> &str {
    h.strip_suffix('.').unwrap_or(h)
}

/// Registers a value computed now as a gauge (`name` as written).
pub fn gauge(reg: &mut Registry, name: &str, help: &str, value: f64) {
    reg.register(name, self::help(help), ConstGauge::new(value));
}

/// Registers a count computed now as a counter; `name` without the `_total` the encoder appends.
pub fn counter(reg: &mut Registry, name: &str, help: &str, value: u64) {
    reg.register(name, self::help(help), ConstCounter::new(value));
}

/// Registers labelled values computed now as one gauge family.
pub fn gauges(reg: &mut Registry, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, f64)>) {
    let f = GaugeFamily::default();
    for (l, v) in values {
        f.get_or_create(&l).set(v);
    }
    reg.register(name, self::help(help), f);
}

/// Registers labelled counts computed now as one counter family (`name` without `_total`).
pub fn counters(reg: &mut Registry, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, u64)>) {
    let f = CounterFamily::default();
    for (l, v) in values {
        f.get_or_create(&l).inc_by(v);
    }
    reg.register(name, self::help(help), f);
}

/// An info series: a gauge of value 1 whose labels carry the information
/// (`conode_info{version="…"} 1`; a gauge, as the Prometheus text format has no info type).
pub fn info(reg: &mut Registry, name: &str, help: &str, pairs: &[(&str, &str)]) {
    gauges(reg, name, help, [(labels(pairs), 1.0)]);
}

/// Registers one service's series into the scrape's registry.
pub type MetricsSource = Arc<dyn Fn(&mut Registry) + Send + Sync>;

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

    /// Every source's series registered into `reg`, in registration order.
    pub fn collect_into(&self, reg: &mut Registry) {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (_, source) in sources {
            source(reg);
        }
    }

    /// Every source's series in the OpenMetrics text format (without the final `# EOF`).
    pub fn render(&self) -> String {
        let mut reg = Registry::default();
        self.collect_into(&mut reg);
        openmetrics_body(&reg)
    }
}

/// The series of `reg` in the OpenMetrics text format, without `# EOF`.
pub fn openmetrics_body(reg: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; a metric that could not encode leaves partial text only.
    let _ = encode_registry(&mut out, reg);
    out
}

/// Converts OpenMetrics text (as `prometheus-client` writes it) into the Prometheus text format
/// 0.0.4: counters are named with their `_total` suffix in `# HELP`/`# TYPE`, `# UNIT`, `# EOF` and
/// `_created` samples are dropped, `info` and `stateset` families become gauges.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut counters: std::collections::HashSet<String> = Default::default();
    // Families typed counter, found first (HELP precedes TYPE).
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if counters.contains(name) { format!("{name}_total") } else { name.to_string() };
            out.push_str(&format!("# HELP {name} {help}\n"));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                "gaugehistogram" => (name.to_string(), "histogram"),
                k => (name.to_string(), k),
            };
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or("");
        if name.ends_with("_created") && counters.contains(name.trim_end_matches("_created")) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Process metrics from `/proc/self` (Linux): resident and virtual memory, CPU seconds, open and
/// maximum file descriptors, start time. Elsewhere nothing is registered.
pub fn process_metrics(reg: &mut Registry) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let (page, ticks) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
        let page = if page > 0 { page as f64 } else { 4096.0 };
        let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let mut it = statm.split_whitespace().filter_map(|v| v.parse::<f64>().ok());
            if let (Some(virt), Some(rss)) = (it.next(), it.next()) {
                gauge(reg, "process_virtual_memory_bytes", "Virtual memory size in bytes.", virt * page);
                gauge(reg, "process_resident_memory_bytes", "Resident memory size in bytes.", rss * page);
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name (which may hold spaces) start at field 3 (state).
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
                // utime = field 14, stime = 15, starttime = 22 (1-based); rest starts at field 3.
                if let (Some(u), Some(s)) = (num(11), num(12)) {
                    reg.register(
                        "process_cpu_seconds",
                        "Total user and system CPU time spent in seconds",
                        ConstCounter::new((u + s) / ticks),
                    );
                }
                if let (Some(start), Some(boot)) = (num(19), boot_time()) {
                    gauge(
                        reg,
                        "process_start_time_seconds",
                        "Start time of the process since unix epoch in seconds.",
                        boot + start / ticks,
                    );
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            gauge(reg, "process_open_fds", "Number of open file descriptors.", dir.count() as f64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            let max = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(max) = max {
                gauge(reg, "process_max_fds", "Maximum number of open file descriptors.", max);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reg;
}

#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// One service's section of the status map: key → value.
pub type StatusSource = Arc<dyn Fn() -> BTreeMap<String, String> + Send + Sync>;

/// Something that happened recently, for the status page (e.g. a block stored).
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct Activity {
    /// UNIX time in milliseconds.
    pub unix_ms: u64,
    pub text: String,
}

/// A roster a service works with, as the status page shows it: the beacon group, a skipchain's
/// latest roster, the default cosi roster.
#[derive(Clone, Debug)]
pub struct RosterView {
    /// Stable id of the view on every member (e.g. `beacon:<chain hash>`, `skipchain:<genesis>`):
    /// members answer a summary request with their facts under this id.
    pub id: String,
    /// What it is, for people (`beacon group`, `skipchain 1a2b3c4d`).
    pub name: String,
    /// `beacon`, `skipchain`, `cosi`.
    pub kind: String,
    pub members: Vec<ServerIdentity>,
    /// What this node knows about it (chain hash, period, threshold, latest round, height, …).
    pub facts: BTreeMap<String, String>,
    /// Recent events of this roster's chain, newest last.
    pub activity: Vec<Activity>,
}

/// Lists a service's roster views, evaluated now.
pub type RosterSource = Arc<dyn Fn() -> Vec<RosterView> + Send + Sync>;

/// Status sections and roster views registered by services, by name.
#[derive(Clone, Default)]
pub struct StatusRegistry {
    sources: Arc<RwLock<Vec<(String, StatusSource)>>>,
    rosters: Arc<RwLock<Vec<(String, RosterSource)>>>,
}

impl StatusRegistry {
    pub fn add(&self, section: &str, source: StatusSource) {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).push((section.to_string(), source));
    }

    /// Forgets the section and the roster views registered under `section`.
    pub fn remove(&self, section: &str) {
        self.sources.write().unwrap_or_else(|p| p.into_inner()).retain(|(s, _)| s != section);
        self.rosters.write().unwrap_or_else(|p| p.into_inner()).retain(|(s, _)| s != section);
    }

    /// Every registered section, evaluated now.
    pub fn sections(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner()).clone();
        sources.into_iter().map(|(name, f)| (name, f())).collect()
    }

    /// Adds a source of roster views owned by `owner`.
    pub fn add_rosters(&self, owner: &str, source: RosterSource) {
        self.rosters.write().unwrap_or_else(|p| p.into_inner()).push((owner.to_string(), source));
    }

    /// Every roster view, evaluated now, in registration order.
    pub fn rosters(&self) -> Vec<RosterView> {
        let sources = self.rosters.read().unwrap_or_else(|p| p.into_inner()).clone();
        sources.into_iter().flat_map(|(_, f)| f()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_register_in_order_and_can_be_removed() {
        let r = MetricsRegistry::default();
        r.add("a", Arc::new(|reg: &mut Registry| counter(reg, "a", "A.", 1)));
        r.add("b", Arc::new(|reg: &mut Registry| info(reg, "b_info", "B.", &[("v", "x\"y")])));
        let text = to_prometheus_text(&r.render());
        assert!(text.find("a_total 1").unwrap() < text.find("b_info{v=\"x\\\"y\"} 1").unwrap(), "{text}");
        r.remove("a");
        assert!(!r.render().contains("a_total"));
    }

    #[test]
    fn escaping() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn openmetrics_becomes_prometheus_text() {
        let mut reg = Registry::default();
        counter(&mut reg, "x", "Xs.", 3);
        let h = seconds_histogram();
        h.observe(0.2);
        reg.register_with_unit("lat", "Latency", prometheus_client::registry::Unit::Seconds, h);
        let text = to_prometheus_text(&openmetrics_body(&reg));
        assert!(text.contains("# HELP x_total Xs.\n# TYPE x_total counter\nx_total 3\n"), "{text}");
        assert!(text.contains("# TYPE lat_seconds histogram\n"), "{text}");
        assert!(text.contains("lat_seconds_bucket{le=\"0.25\"} 1\n"), "{text}");
        assert!(!text.contains("# UNIT") && !text.contains("# EOF"), "{text}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_read() {
        let mut reg = Registry::default();
        process_metrics(&mut reg);
        let text = to_prometheus_text(&openmetrics_body(&reg));
        for name in ["process_resident_memory_bytes ", "process_cpu_seconds_total ", "process_open_fds "] {
            let v: f64 = text
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {text}"));
            assert!(v > 0.0 || name.starts_with("process_cpu"), "{name} {v}");
        }
    }
}
