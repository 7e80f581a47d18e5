//! Loading a whole workspace folder and checking that its parts fit together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use model_script::Script;

use crate::agent::{self, AgentDefinition};
use crate::config::GatewayConfig;
use crate::diagnostics::{Diagnostic, Diagnostics, Severity};
use crate::replies;
use crate::skill::{self, SkillDefinition};
use crate::tool::{self, ToolDefinition};
use crate::yaml;

/// Agent, skill and tool folder names: lowercase, digits, `_` and `-`, starting with a letter
/// or digit. This also guarantees an id can never name a path outside its folder.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    id.len() <= 64
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Everything read from a workspace folder.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    /// The configuration; the defaults when `gateway.yaml` has errors (see `config_valid`).
    pub config: GatewayConfig,
    pub config_valid: bool,
    /// `agents/AGENTS.md`: prompt shared by every agent.
    pub shared_prompt: Option<String>,
    /// `agents/BEHAVIOR.md`: behaviour shared by every agent.
    pub shared_behavior: Option<String>,
    pub agents: BTreeMap<String, AgentDefinition>,
    pub skills: BTreeMap<String, SkillDefinition>,
    /// File tools by name.
    pub tools: BTreeMap<String, ToolDefinition>,
    /// Scripts of the `scripted/<name>` models (`replies/<name>.yaml`) by name.
    pub model_scripts: BTreeMap<String, Script>,
    /// Problems found while loading (not yet the cross-reference checks).
    pub diagnostics: Diagnostics,
}

/// Names defined outside the workspace files that references may point to.
#[derive(Debug, Clone, Default)]
pub struct ExternalNames {
    /// Tools registered from code (or any other non-file source).
    pub tools: BTreeSet<String>,
    /// MCP servers known from configuration, code or the admin API.
    pub mcp_servers: BTreeSet<String>,
}

impl Workspace {
    /// Loads the workspace at `root`. Never fails: problems are collected in `diagnostics`.
    pub fn load(root: &Path, env: &BTreeMap<String, String>) -> Self {
        let mut diagnostics = Diagnostics::new();
        let loaded_config = GatewayConfig::load(root, env);
        let config_valid = loaded_config.config.is_some();
        let config = loaded_config.config.unwrap_or_default();
        diagnostics.extend(loaded_config.diagnostics);

        let mut workspace = Self {
            root: root.to_path_buf(),
            config,
            config_valid,
            shared_prompt: None,
            shared_behavior: None,
            agents: BTreeMap::new(),
            skills: BTreeMap::new(),
            tools: BTreeMap::new(),
            model_scripts: BTreeMap::new(),
            diagnostics: Diagnostics::new(),
        };
        if !root.is_dir() {
            diagnostics.error(root, None, "workspace folder not found");
            workspace.diagnostics = diagnostics;
            return workspace;
        }

        let agents_dir = root.join("agents");
        workspace.shared_prompt =
            agent::read_optional_body(&agents_dir.join("AGENTS.md"), &mut diagnostics);
        workspace.shared_behavior =
            agent::read_optional_body(&agents_dir.join("BEHAVIOR.md"), &mut diagnostics);
        let max_context = workspace.config.context_retrieval.max_context_file_chars;
        for (id, dir) in entity_dirs(&agents_dir, "AGENT.md", &mut diagnostics) {
            if let Some(agent) = agent::load_agent(&id, &dir, root, max_context, &mut diagnostics) {
                workspace.agents.insert(id, agent);
            }
        }
        for (id, dir) in entity_dirs(&root.join("skills"), "SKILL.md", &mut diagnostics) {
            if let Some(skill) = skill::load_skill(&id, &dir, &mut diagnostics) {
                workspace.skills.insert(id, skill);
            }
        }
        for (id, dir) in entity_dirs(&root.join("tools"), "TOOL.md", &mut diagnostics) {
            if let Some(tool) = tool::load_tool(&id, &dir, &mut diagnostics) {
                if let Some(existing) = workspace.tools.get(&tool.name) {
                    diagnostics.error(
                        &tool.file,
                        None,
                        format!(
                            "tool name '{}' is already used by tools/{}: names must be unique",
                            tool.name, existing.id
                        ),
                    );
                    continue;
                }
                workspace.tools.insert(tool.name.clone(), tool);
            }
        }
        workspace.model_scripts = replies::load(root, &mut diagnostics);
        if workspace.agents.is_empty() && !diagnostics.has_errors() {
            diagnostics.warning(
                &agents_dir,
                None,
                "no agents found (expected agents/<id>/AGENT.md)",
            );
        }
        workspace.diagnostics = diagnostics;
        workspace
    }

    /// Checks references between agents, skills and tools (and to `external` names).
    pub fn check_references(&self, external: &ExternalNames) -> Diagnostics {
        let mut diagnostics = Diagnostics::new();
        let tool_exists =
            |name: &str| self.tools.contains_key(name) || external.tools.contains(name);
        let configured_mcp: BTreeSet<String> = self
            .config
            .mcp
            .servers
            .iter()
            .filter_map(|s| s.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect();

        for agent in self.agents.values() {
            for (i, skill) in agent.skills.iter().enumerate() {
                if !self.skills.contains_key(skill) {
                    diagnostics.error(
                        &agent.file,
                        locate_in_file(&agent.file, &format!("skills[{i}]")),
                        format!(
                            "agent '{}' uses unknown skill '{skill}'{}",
                            agent.id,
                            suggest(skill, self.skills.keys())
                        ),
                    );
                }
            }
            for (i, tool) in agent.tools.iter().enumerate() {
                if !tool_exists(tool) {
                    diagnostics.error(
                        &agent.file,
                        locate_in_file(&agent.file, &format!("tools[{i}]")),
                        format!(
                            "agent '{}' uses unknown tool '{tool}'{}",
                            agent.id,
                            suggest(tool, self.tools.keys())
                        ),
                    );
                }
            }
            for (i, target) in agent.delegates_to.iter().enumerate() {
                if !self.agents.contains_key(target) {
                    diagnostics.error(
                        &agent.file,
                        locate_in_file(&agent.file, &format!("delegates_to[{i}]")),
                        format!(
                            "agent '{}' delegates to unknown agent '{target}'{}",
                            agent.id,
                            suggest(target, self.agents.keys())
                        ),
                    );
                }
            }
            for (i, server) in agent.mcp_servers.iter().enumerate() {
                if !external.mcp_servers.contains(server) && !configured_mcp.contains(server) {
                    diagnostics.warning(
                        &agent.file,
                        locate_in_file(&agent.file, &format!("mcp_servers[{i}]")),
                        format!(
                            "agent '{}' uses MCP server '{server}', which is not configured here (it may be added through the admin API)",
                            agent.id
                        ),
                    );
                }
            }
            for (i, site) in agent.sites.iter().enumerate() {
                if !(site.starts_with("http://") || site.starts_with("https://")) {
                    diagnostics.error(
                        &agent.file,
                        locate_in_file(&agent.file, &format!("sites[{i}]")),
                        format!("site '{site}' must be an http:// or https:// URL"),
                    );
                }
            }
        }
        // A skill may name a tool that no file defines: a host program may register it as a
        // code tool (0.2.13 loads such a skill too). A warning, not an error.
        for skill in self.skills.values() {
            for (i, tool) in skill.tools.iter().enumerate() {
                if !tool_exists(tool) {
                    diagnostics.warning(
                        &skill.file,
                        locate_in_file(&skill.file, &format!("tools[{i}]")),
                        format!(
                            "skill '{}' uses tool '{tool}', which no file defines (fine if the host program registers it as a code tool){}",
                            skill.id,
                            suggest(tool, self.tools.keys())
                        ),
                    );
                }
            }
            for (i, step) in skill.steps.iter().enumerate() {
                for tool in step.action.tools() {
                    if !tool_exists(tool) {
                        diagnostics.warning(
                            &skill.file,
                            locate_in_file(&skill.file, &format!("steps[{i}]")),
                            format!(
                                "step '{}' of skill '{}' calls tool '{tool}', which no file defines (fine if the host program registers it as a code tool)",
                                step.name, skill.id
                            ),
                        );
                    }
                }
            }
        }
        for tool in self.tools.values() {
            for agent in tool.permissions.allowed_agents.iter().flatten() {
                if !self.agents.contains_key(agent) {
                    diagnostics.warning(
                        &tool.file,
                        locate_in_file(&tool.file, "permissions.allowed_agents"),
                        format!("tool '{}' allows unknown agent '{agent}'", tool.name),
                    );
                }
            }
        }
        diagnostics
    }

    /// All diagnostics: loading plus the cross-reference checks.
    pub fn all_diagnostics(&self, external: &ExternalNames) -> Diagnostics {
        let mut all = self.diagnostics.clone();
        all.extend(self.check_references(external));
        all
    }

    /// Tools given to `agent`: those of its skills, then its own `tools`, without repeats.
    pub fn tool_names_of(&self, agent: &AgentDefinition) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let skill_tools = agent
            .skills
            .iter()
            .filter_map(|s| self.skills.get(s))
            .flat_map(|s| s.tools.iter());
        for name in skill_tools.chain(agent.tools.iter()) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// Folders `<dir>/<id>/` holding `marker`, sorted by id. Invalid ids, symlinks and folders
/// without the marker file are reported and skipped; hidden entries are ignored.
fn entity_dirs(dir: &Path, marker: &str, diagnostics: &mut Diagnostics) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            diagnostics.warning(&path, None, "symbolic links are not followed: skipped");
            continue;
        }
        if !file_type.is_dir() {
            continue;
        }
        if !is_valid_id(&name) {
            diagnostics.error(
                &path,
                None,
                format!(
                    "invalid id '{name}': use 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit"
                ),
            );
            continue;
        }
        if !path.join(marker).is_file() {
            diagnostics.warning(&path, None, format!("no {marker} in this folder: skipped"));
            continue;
        }
        found.push((name, path));
    }
    found.sort();
    found
}

/// The line of a frontmatter key path inside a markdown file (read again: only on errors).
fn locate_in_file(file: &Path, key_path: &str) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let markdown = yaml::split_frontmatter(&text).ok()?;
    let frontmatter = markdown.frontmatter?;
    yaml::locate(frontmatter, &yaml::parse_path(key_path))
        .map(|l| l + markdown.frontmatter_line - 1)
}

/// ` (did you mean 'x'?)` when a known name is close to `wanted`.
pub(crate) fn suggest<'a>(wanted: &str, known: impl Iterator<Item = &'a String>) -> String {
    known
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!(" (did you mean '{k}'?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(current)
            };
            previous = current;
        }
    }
    row[b.len()]
}

/// Sorts diagnostics for display: errors first, then by file and line.
pub fn sorted(diagnostics: &Diagnostics) -> Vec<&Diagnostic> {
    let mut all: Vec<&Diagnostic> = diagnostics.iter().collect();
    all.sort_by(|a, b| {
        let rank = |d: &Diagnostic| if d.severity == Severity::Error { 0 } else { 1 };
        (rank(a), &a.file, a.line).cmp(&(rank(b), &b.file, b.line))
    });
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["assistant", "a", "my-agent_2", "0day"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "My",
            "-x",
            "_x",
            "a/b",
            "a.b",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        let known = ["researcher".to_string(), "writer".to_string()];
        assert_eq!(
            suggest("reseacher", known.iter()),
            " (did you mean 'researcher'?)"
        );
        assert_eq!(suggest("zzz", known.iter()), "");
    }
}
