//! Reading the JSON report of `plan rehearse` (tests/loopback/lab.rs, tests/loopback/lab_executor.rs): its rows, and
//! the check every rehearsal makes of them.

use serde_json::Value;

/// The rows whose observation is `observation`.
pub fn rows<'a>(report: &'a Value, observation: &str) -> Vec<&'a Value> {
    report["rows"].as_array().expect("rows").iter().filter(|r| r["observation"] == observation).collect()
}

pub fn row<'a>(report: &'a Value, observation: &str) -> &'a Value {
    let found = rows(report, observation);
    assert_eq!(found.len(), 1, "one row {observation:?} in {report:#}");
    found[0]
}

pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// No row disagrees and none is unrehearsed (stand-in rows and the lab's events are not
/// agreement, and do not fail), and every row holds the fields docs/json.md documents for it.
pub fn assert_all_agree(report: &Value) {
    let rows = report["rows"].as_array().expect("rows");
    let failing: Vec<&Value> = rows.iter().filter(|r| r["verdict"] == "disagree" || r["verdict"] == "not-rehearsed").collect();
    // Everything the lab and the executor did, in order: what a failure under load is read from.
    let actions: Vec<&str> = report["lab_actions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert!(failing.is_empty(), "rows that disagree or are not rehearsed: {failing:#?}\nthe lab's actions: {actions:#?}");
    for r in rows {
        assert_eq!(r["agree"] == true, r["verdict"] == "agree", "agree is the verdict agree: {r}");
        for key in r.as_object().expect("a row is an object").keys() {
            assert!(JSON_DOC.contains(&format!("| `rows[].{key}` |")), "docs/json.md documents rows[].{key}: {r}");
        }
    }
}

const JSON_DOC: &str = include_str!("../../docs/json.md");
