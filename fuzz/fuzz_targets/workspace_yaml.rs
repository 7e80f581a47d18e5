//! The other YAML files of a workspace: `tests/*.yaml` (test cases) and `replies/*.yaml`
//! (scripts of `scripted/<name>` models). Each input is parsed as both; test cases are then
//! checked against a small workspace, as `agents-gateway test` does.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use gateway_workspace::diagnostics::Diagnostics;
use gateway_workspace::{ExternalNames, Workspace, replies, test_cases};
use libfuzzer_sys::fuzz_target;

/// A workspace with an agent `assistant` and a tool `current-time`, the names the corpus uses.
fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<(tempfile::TempDir, Workspace)> = OnceLock::new();
    &WORKSPACE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let write = |file: &str, text: &str| {
                let path = dir.path().join(file);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
                std::fs::write(path, text).expect("a workspace file");
            };
            write(
                "agents/assistant/AGENT.md",
                "---\ndescription: test\ntools: [current-time]\n---\nHelp.\n",
            );
            write(
                "tools/current-time/TOOL.md",
                "---\nname: current-time\ndescription: time\n---\nTime.\n",
            );
            let workspace = Workspace::load(dir.path(), &BTreeMap::new());
            (dir, workspace)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut diagnostics = Diagnostics::new();
    let _ = replies::parse(Path::new("replies/example.yaml"), &text, &mut diagnostics);
    if let Some(file) = test_cases::parse(Path::new("tests/case.yaml"), &text, &mut diagnostics) {
        for case in &file.cases {
            let _ = case.id(&file);
            let _ = case.script_name();
            let _ = case.input.messages();
        }
        let _ = test_cases::check_references(&[file], workspace(), &ExternalNames::default());
    }
});
