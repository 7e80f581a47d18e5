//! How long loading a workspace takes: 100 agents, 40 tools and 20 skills with frontmatter,
//! schemas, schedules and reference checks (`Workspace::load`), and one AGENT.md alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

fn write(root: &Path, relative: &str, content: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn workspace(root: &Path) {
    write(
        root,
        "gateway.yaml",
        "model:\n  default: openai/gpt-4o-mini\nguardrails:\n  max_iterations: 8\n",
    );
    for t in 0..40 {
        write(
            root,
            &format!("tools/tool-{t}/TOOL.md"),
            &format!(
                "---\nname: tool-{t}\ndescription: Tool {t}\nparameters:\n  city:\n    type: string\n    required: true\n  days:\n    type: integer\n---\nUse it well.\n"
            ),
        );
        write(
            root,
            &format!("tools/tool-{t}/handler.py"),
            "def handle(arguments, context):\n    return {}\n",
        );
    }
    for s in 0..20 {
        write(
            root,
            &format!("skills/skill-{s}/SKILL.md"),
            &format!(
                "---\ndescription: Skill {s}\ntools: [tool-{}, tool-{}]\n---\nInstructions for skill {s}.\n",
                s,
                s + 20
            ),
        );
    }
    for a in 0..100 {
        write(
            root,
            &format!("agents/agent-{a}/AGENT.md"),
            &format!(
                "---\ndescription: Agent {a}\nskills: [skill-{}]\ntools: [tool-{}]\nmodel:\n  temperature: 0.2\ninput_schema:\n  type: object\n  properties:\n    topic: {{type: string}}\nschedules:\n  - {{name: daily, cron: \"0 9 * * *\", message: Report}}\n---\nYou are agent {a}. Be helpful and brief.\n",
                a % 20,
                a % 40
            ),
        );
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    workspace(dir.path());
    let env = BTreeMap::new();
    c.bench_function("workspace load (100 agents, 40 tools, 20 skills)", |b| {
        b.iter(|| {
            let loaded = gateway_workspace::Workspace::load(dir.path(), &env);
            assert_eq!(loaded.agents.len(), 100);
        })
    });
    let text = std::fs::read_to_string(dir.path().join("agents/agent-1/AGENT.md")).unwrap();
    c.bench_function("AGENT.md frontmatter split and YAML parse", |b| {
        b.iter(|| {
            let markdown = gateway_workspace::yaml::split_frontmatter(&text).unwrap();
            gateway_workspace::yaml::parse(markdown.frontmatter.unwrap()).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
