//! AGENT.md, TOOL.md and SKILL.md through the workspace loader: the input is split on lines
//! `--8<--` into `agents/a/AGENT.md`, `tools/t/TOOL.md` and `skills/s/SKILL.md` of a
//! workspace folder (a missing part is a missing file), which is loaded and checked as
//! `agents-gateway check` does. The schemas it accepts also go through the Gemini schema
//! sanitiser, as they do when they become a tool's parameters.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use gateway_workspace::{ExternalNames, Workspace};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 3] = ["agents/a/AGENT.md", "tools/t/TOOL.md", "skills/s/SKILL.md"];

fn root() -> &'static PathBuf {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &ROOT
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let root = dir.path().to_path_buf();
            for file in FILES {
                let parent = root.join(file);
                std::fs::create_dir_all(parent.parent().expect("a parent"))
                    .expect("the workspace folders");
            }
            (dir, root)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split("\n--8<--\n");
    let root = root();
    for file in FILES {
        let path = root.join(file);
        match parts.next() {
            Some(part) => std::fs::write(&path, part).expect("a workspace file"),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let workspace = Workspace::load(root, &BTreeMap::new());
    let external = ExternalNames::default();
    let _ = workspace.all_diagnostics(&external);
    for agent in workspace.agents.values() {
        let _ = workspace.tool_names_of(agent);
        let _ = agent.display_description();
        for schema in [
            &agent.input_schema,
            &agent.output_schema,
            &agent.setup_schema,
        ]
        .into_iter()
        .flatten()
        {
            let _ = gateway_llm::gemini::sanitize_schema(schema);
        }
    }
    for tool in workspace.tools.values() {
        let _ = gateway_llm::gemini::sanitize_schema(&tool.parameters);
    }
    for skill in workspace.skills.values() {
        let _ = skill.all_tools();
    }
});
