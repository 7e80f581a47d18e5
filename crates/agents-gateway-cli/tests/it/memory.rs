//! `agents-gateway memory list|add|forget`: an agent's memories on the workspace's store (the
//! database, or 0.2.13's files with persistence off), and one-line errors with a non-zero exit
//! for bad input.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::{bin, text, write};

/// `buddy` remembers, `plain` does not; `persistence` is the store section of gateway.yaml.
fn workspace(ws: &Path, persistence: &str) {
    write(
        ws,
        "gateway.yaml",
        &format!("model:\n  default: scripted/default\n{persistence}"),
    );
    write(
        ws,
        "agents/buddy/AGENT.md",
        "---\ndescription: remembers\nmemory:\n  enabled: true\n---\nBe a friend.\n",
    );
    write(
        ws,
        "agents/plain/AGENT.md",
        "---\ndescription: forgets\n---\nHelp.\n",
    );
}

fn memory(ws: &Path, args: &[&str]) -> Output {
    bin()
        .arg("memory")
        .arg("-w")
        .arg(ws)
        .args(args)
        .output()
        .unwrap()
}

/// Runs a command that must succeed; its standard output.
fn ok(ws: &Path, args: &[&str]) -> String {
    let output = memory(ws, args);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{args:?}: {stdout}{stderr}");
    stdout
}

/// `memory list ... -f json`, parsed.
fn listed(ws: &Path, args: &[&str]) -> Value {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-f", "json"]);
    serde_json::from_str(&ok(ws, &all)).unwrap()
}

/// The id in "Saved memory <id> for ...".
fn saved_id(stdout: &str) -> String {
    stdout
        .strip_prefix("Saved memory ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"))
        .to_string()
}

fn round_trip(persistence: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    workspace(ws, persistence);

    let alice = saved_id(&ok(
        ws,
        &[
            "add",
            "buddy",
            "Alice likes tea.",
            "--user",
            "alice",
            "--importance",
            "0.7",
            "--type",
            "episodic",
        ],
    ));
    let bob = saved_id(&ok(
        ws,
        &["add", "buddy", "Bob likes coffee.", "--user", "bob"],
    ));
    let shared_out = ok(
        ws,
        &["add", "buddy", "The office opens at nine.", "--pinned"],
    );
    assert!(
        shared_out.contains("for the shared knowledge of agent 'buddy'"),
        "{shared_out}"
    );
    let shared = saved_id(&shared_out);

    // Every scope, one user's, the shared knowledge, filters.
    let all = listed(ws, &["buddy"]);
    assert_eq!(all["total"], 3, "{all}");
    let alices = listed(ws, &["buddy", "--user", "alice"]);
    assert_eq!(alices["total"], 1, "{alices}");
    let memory = &alices["memories"][0];
    assert_eq!(memory["id"], alice.as_str());
    assert_eq!(memory["user_id"], "alice");
    assert_eq!(memory["content"], "Alice likes tea.");
    assert_eq!(memory["memory_type"], "episodic");
    assert_eq!(memory["importance"], 0.7);
    assert_eq!(memory["source"], "api");
    let only_shared = listed(ws, &["buddy", "--shared"]);
    assert_eq!(only_shared["memories"][0]["id"], shared.as_str());
    assert_eq!(only_shared["memories"][0]["pinned"], true);
    assert_eq!(
        listed(ws, &["buddy", "-q", "COFFEE"])["memories"][0]["id"],
        bob.as_str()
    );
    assert_eq!(listed(ws, &["buddy", "--type", "episodic"])["total"], 1);
    assert_eq!(listed(ws, &["buddy", "--source", "compacted"])["total"], 0);

    // The table names the scope of each memory.
    let table = ok(ws, &["list", "buddy"]);
    assert!(
        table.contains("(shared)") && table.contains("alice"),
        "{table}"
    );
    assert!(table.contains("The office opens at nine."), "{table}");
    let empty = ok(ws, &["list", "buddy", "--user", "nobody"]);
    assert_eq!(empty.trim(), "No memories found.");

    // Forget one; it is gone, the others stay.
    let forgot = ok(ws, &["forget", "buddy", &bob]);
    assert_eq!(
        forgot.trim(),
        format!("Forgot memory {bob} of agent 'buddy'.")
    );
    let after = listed(ws, &["buddy"]);
    assert_eq!(after["total"], 2, "{after}");
    assert!(
        after["memories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != bob.as_str())
    );
    dir
}

#[test]
fn list_add_and_forget_round_trip_on_the_database() {
    let dir = round_trip("persistence:\n  url: sqlite:///gateway.db\n");
    assert!(dir.path().join("gateway.db").exists());
}

#[test]
fn list_add_and_forget_round_trip_on_0_2_13_files() {
    let dir = round_trip("persistence:\n  enabled: false\n");
    let shared = std::fs::read_to_string(dir.path().join("agents/buddy/MEMORY.md")).unwrap();
    assert!(shared.contains("The office opens at nine."), "{shared}");
    let alices = std::fs::read_to_string(dir.path().join("agents/buddy/memory/alice.md")).unwrap();
    assert!(alices.contains("Alice likes tea."), "{alices}");
}

#[test]
fn bad_input_is_one_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    workspace(ws, "persistence:\n  url: sqlite:///gateway.db\n");
    ok(ws, &["add", "buddy", "Keep me.", "--user", "alice"]);

    // (arguments, exit code, what standard error says)
    let cases: [(&[&str], i32, &str); 10] = [
        (&["add", "ghost", "x"], 1, "Agent 'ghost' not found"),
        (&["list", "ghost"], 1, "Agent 'ghost' not found"),
        (
            &["add", "plain", "x"],
            1,
            "Memory is not enabled for agent 'plain'",
        ),
        (
            &["list", "plain"],
            1,
            "Memory is not enabled for agent 'plain'",
        ),
        (&["add", "buddy", "   "], 1, "content cannot be empty"),
        (&["forget", "buddy", "0123456789ab"], 1, "not found"),
        (
            &["add", "buddy", "x", "--importance", "1.5"],
            2,
            "from 0 to 1",
        ),
        (
            &["add", "buddy", "x", "--importance", "lots"],
            2,
            "from 0 to 1",
        ),
        (
            &["list", "buddy", "--type", "feeling"],
            2,
            "unknown type 'feeling'",
        ),
        (
            &["add", "buddy", "x", "--user", "a", "--shared"],
            2,
            "cannot be used with",
        ),
    ];
    for (args, code, message) in cases {
        let output = memory(ws, args);
        let (stdout, stderr) = text(&output);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {stdout}{stderr}"
        );
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        if code == 1 {
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
            assert!(stderr.starts_with("Error: "), "{args:?}: {stderr}");
        }
    }
    let output = bin()
        .args(["memory", "-w"])
        .arg(ws.join("missing"))
        .args(["list", "buddy"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("not found"));
    // Nothing of the refused commands was stored.
    assert_eq!(listed(ws, &["buddy"])["total"], 1);
}
