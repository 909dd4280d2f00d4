//! `conode bench cosi --hosts`: one roster spread over several processes signs (the bench verifies
//! every round's collective signature against the whole roster), the figures come out as JSON, and
//! options it cannot honour are refused with a clear error.

use crate::support::{conode, fails, json, ok};

#[test]
fn cosi_bench_spreads_one_roster_over_processes() {
    let out = ok(conode().args(["bench", "cosi", "--nodes", "9", "--hosts", "2", "--rounds", "3"]));
    let line = out.lines().find(|l| l.contains("\"bench\":\"cosi\"")).unwrap_or_else(|| panic!("no result: {out}"));
    let r = &json(line)["result"];
    assert_eq!(r["nodes"], 9, "{r}");
    assert_eq!(r["hosts"], 2, "{r}");
    assert_eq!(r["processes"], "several", "{r}");
    for field in [
        "p50_ms",
        "physical_limit_ms",
        "prepare_ms",
        "first_round_ms",
        "ratio_p50_to_physical",
        "physical_limit_parallel_ms",
        "ratio_p50_to_physical_parallel",
    ] {
        assert!(r[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {r}");
    }
    assert!(r["rss_per_node_kib"].as_u64().is_some_and(|v| v > 0), "{r}");

    let err = fails(conode().args(["bench", "cosi", "--nodes", "4", "--hosts", "2", "--down", "1"]));
    assert!(err.contains("--hosts measures healthy rounds only"), "{err}");
    let err = fails(conode().args(["bench", "cosi", "--nodes", "2", "--hosts", "3"]));
    assert!(err.contains("--hosts must be between 1 and the number of nodes (2)"), "{err}");
}
