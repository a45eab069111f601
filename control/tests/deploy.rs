//! The files in `deploy/`: the Grafana dashboard queries only metrics that
//! exist (and every one of them) in valid PromQL, and the systemd unit keeps
//! the privileges and hardening it promises.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use mycelium_control::metrics::names;

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)
}

fn strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Every `mycelium_...` identifier in `text`.
fn metric_names(text: &str) -> Vec<&str> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    text.split(|c: char| !is_ident(c)).filter(|t| t.starts_with("mycelium_")).collect()
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(deploy("grafana/mycelium.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every PromQL expression of the panels.
fn exprs(d: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().expect("every target has an expr").to_owned());
        }
    }
    out
}

#[test]
fn the_dashboard_queries_every_metric_and_only_metrics_that_exist() {
    let d = dashboard();
    let mut all = Vec::new();
    strings(&d, &mut all);
    let used: BTreeSet<&str> = all.iter().flat_map(|s| metric_names(s)).collect();
    let known: BTreeSet<&str> = names::ALL.iter().copied().collect();
    let unknown: Vec<_> = used.difference(&known).collect();
    assert!(unknown.is_empty(), "the dashboard queries metrics that do not exist: {unknown:?}");
    let unused: Vec<_> = known.difference(&used).collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
    assert!(exprs(&d).len() >= 15);
}

#[test]
fn the_dashboards_panels_have_unique_ids_and_a_title() {
    let d = dashboard();
    let panels = d["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len());
    assert!(panels.iter().all(|p| !p["title"].as_str().unwrap().is_empty()));
    assert_eq!(d["uid"], "mycelium-node");
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool checks PromQL in rule files: make each query a recording rule,
    // with Grafana's variables replaced by what they expand to.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs(&dashboard()).iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*");
        let expr = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!("      - record: dashboard:query{i}\n        expr: {expr}\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool not found: install the Debian package `prometheus`");
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `Key=value` lines of the unit (comments and sections skipped).
fn directives() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("myceliumd.service")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[test]
fn the_unit_grants_exactly_the_needed_capabilities_and_is_hardened() {
    let d = directives();
    let get = |key: &str| -> Vec<&str> { d.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect() };
    let caps = "CAP_NET_ADMIN CAP_SYS_NICE CAP_IPC_LOCK";
    for (key, value) in [
        ("AmbientCapabilities", caps),
        ("CapabilityBoundingSet", caps),
        ("LimitMEMLOCK", "infinity"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "mycelium"),
        ("ConfigurationDirectory", "mycelium"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK"),
        ("DeviceAllow", "/dev/net/tun rw"),
        ("DevicePolicy", "closed"),
        ("Restart", "on-failure"),
        ("User", "mycelium"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    assert!(get("RemoveIPC").is_empty(), "RemoveIPC would delete the shared memory on every stop");
    assert!(get("ExecStart")[0].starts_with("/usr/bin/myceliumd "));
}

#[test]
fn systemd_accepts_the_unit() {
    // Only where systemd-analyze exists (it does on Debian with systemd).
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze not installed: skipping the systemd check");
        return;
    }
    let text = std::fs::read_to_string(deploy("myceliumd.service")).unwrap();
    // The binary is not installed here: point ExecStart at one that is.
    let text = text.replace("ExecStart=/usr/bin/myceliumd ", "ExecStart=/bin/true ");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myceliumd.service");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "systemd-analyze verify: {report}");
}
