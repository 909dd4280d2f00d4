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

#[test]
fn skipchain_bench_batches_the_chains_of_one_proposer_and_reports_it() {
    let out = ok(conode().args([
        "bench",
        "skipchain",
        "--nodes",
        "4",
        "--chains",
        "6",
        "--proposers",
        "1",
        "--batch",
        "off,on",
        "--appends",
        "36",
        "--chain",
        "8",
    ]));
    let rates: Vec<serde_json::Value> =
        out.lines().filter(|l| l.contains("\"bench\":\"skipchain_appends\"")).map(json).collect();
    assert_eq!(rates.len(), 2, "one line per --batch setting: {out}");
    let (off, on) = (&rates[0], &rates[1]);
    assert_eq!((off["batch"].as_str(), on["batch"].as_str()), (Some("off"), Some("on")), "{out}");
    assert_eq!(off["batched_rounds"], 0, "{off}");
    assert!(on["batched_rounds"].as_u64().is_some_and(|r| r > 0), "six chains through one member: {on}");
    assert!(on["appends_per_batched_round"].as_f64().is_some_and(|a| a >= 2.0), "{on}");
    assert_eq!(on["proposers"], 1, "{on}");

    let err = fails(conode().args(["bench", "skipchain", "--batch", "maybe"]));
    assert!(err.contains("--batch: `maybe` is neither on nor off"), "{err}");
    let err = fails(conode().args(["bench", "skipchain", "--proposers", "0"]));
    assert!(err.contains("--proposers"), "{err}");
}
