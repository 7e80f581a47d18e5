//! [`AgentApp`]: intents and flows registered from handlers, validated once, published as a
//! manifest and served by [`AgentApp::mount`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::Auth;
use super::handler::{Callable, Context, HandlerError, dynamic, typed};
use super::session::{MemorySessionStore, SessionStore};
use crate::protocol::{
    AuthDef, FlowDef, IntentDef, Manifest, Orchestration, PROTOCOL_VERSION, StepDef,
};

/// A single-step capability.
pub struct Intent {
    name: String,
    description: String,
    callable: Callable,
}

impl Intent {
    /// An intent from a typed handler: `I` is a struct of the named arguments.
    pub fn new<I, O, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + Send + 'static,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            callable: typed(handler),
        }
    }

    /// An intent over JSON with schemas known only at runtime.
    pub fn dynamic<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        output_schema: Value,
        handler: F,
    ) -> Self
    where
        F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            callable: dynamic(input_schema, output_schema, handler),
        }
    }
}

/// One step of a flow: the entry step, or a step allowed after others.
pub struct Step {
    name: String,
    description: String,
    /// Steps this one may follow; empty for the entry step.
    after: Vec<String>,
    callable: Callable,
}

impl Step {
    /// The first step of its flow.
    pub fn entry<I, O, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + Send + 'static,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            after: Vec::new(),
            callable: typed(handler),
        }
    }

    /// A step allowed once `after` has run. Several steps after the same one are a branch.
    pub fn after<I, O, F, Fut>(
        name: impl Into<String>,
        after: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + Send + 'static,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            after: vec![after.into()],
            callable: typed(handler),
        }
    }

    /// A step allowed after any of `after` — including itself, for a step that may repeat
    /// (a conversation's next message, say).
    pub fn after_any<I, O, F, Fut, A, S>(
        name: impl Into<String>,
        after: A,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + Send + 'static,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
        A: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            description: description.into(),
            after: after.into_iter().map(Into::into).collect(),
            callable: typed(handler),
        }
    }

    /// A step over JSON; an empty `after` makes it the entry step.
    pub fn dynamic<F, Fut>(
        name: impl Into<String>,
        after: Vec<String>,
        description: impl Into<String>,
        input_schema: Value,
        output_schema: Value,
        handler: F,
    ) -> Self
    where
        F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            after,
            callable: dynamic(input_schema, output_schema, handler),
        }
    }
}

/// A multi-step workflow.
pub struct Flow {
    name: String,
    description: String,
    orchestration: Orchestration,
    steps: Vec<Step>,
}

impl Flow {
    /// A flow whose session the site keeps, enforcing the order of steps.
    pub fn server(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, Orchestration::Server)
    }

    /// A flow of stateless steps the agent chains itself.
    pub fn client(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, Orchestration::Client)
    }

    fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        orchestration: Orchestration,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            orchestration,
            steps: Vec::new(),
        }
    }

    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }
}

/// Why an app cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("duplicate intent '{0}'")]
    DuplicateIntent(String),
    #[error("duplicate flow '{0}'")]
    DuplicateFlow(String),
    #[error("flow '{flow}' has two steps named '{step}'")]
    DuplicateStep { flow: String, step: String },
    #[error("flow '{flow}' needs exactly one entry step, has {count}")]
    EntrySteps { flow: String, count: usize },
    #[error(
        "step '{step}' of flow '{flow}' comes after '{after}', which is not a step of the flow"
    )]
    UnknownAfter {
        flow: String,
        step: String,
        after: String,
    },
    #[error("step '{step}' of flow '{flow}' can never be reached from the entry step")]
    Unreachable { flow: String, step: String },
    #[error("name '{0}' may only contain letters, digits, '_' and '-'")]
    InvalidName(String),
}

fn check_name(name: &str) -> Result<(), BuildError> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(())
    } else {
        Err(BuildError::InvalidName(name.to_string()))
    }
}

/// Configures an [`AgentApp`].
pub struct AgentAppBuilder {
    name: String,
    description: String,
    version: String,
    auth: Auth,
    store: Arc<dyn SessionStore>,
    intents: Vec<Intent>,
    flows: Vec<Flow>,
    claim_lease: Duration,
}

impl AgentAppBuilder {
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Where server-flow sessions live (default: in memory, bounded, 1 h idle TTL).
    pub fn session_store(mut self, store: impl SessionStore + 'static) -> Self {
        self.store = Arc::new(store);
        self
    }

    pub fn shared_session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = store;
        self
    }

    /// How long a running step holds its session (default 5 minutes): the longest a crashed
    /// step can block its session.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease;
        self
    }

    pub fn intent(mut self, intent: Intent) -> Self {
        self.intents.push(intent);
        self
    }

    pub fn flow(mut self, flow: Flow) -> Self {
        self.flows.push(flow);
        self
    }

    /// Validates every definition and builds the app.
    pub fn build(self) -> Result<AgentApp, BuildError> {
        let mut intents = Vec::new();
        let mut seen = HashSet::new();
        for intent in self.intents {
            check_name(&intent.name)?;
            if !seen.insert(intent.name.clone()) {
                return Err(BuildError::DuplicateIntent(intent.name));
            }
            intents.push(intent);
        }
        let mut flows = Vec::new();
        let mut seen = HashSet::new();
        for flow in self.flows {
            check_name(&flow.name)?;
            if !seen.insert(flow.name.clone()) {
                return Err(BuildError::DuplicateFlow(flow.name));
            }
            flows.push(BuiltFlow::validate(flow)?);
        }
        let manifest = Manifest {
            agent_api_version: PROTOCOL_VERSION.into(),
            name: self.name,
            description: self.description,
            version: self.version,
            base_url: String::new(),
            auth: self.auth.definition(),
            intents: intents
                .iter()
                .map(|i| IntentDef {
                    name: i.name.clone(),
                    description: i.description.clone(),
                    endpoint: format!("/agent/intents/{}", i.name),
                    method: "POST".into(),
                    input_schema: i.callable.input_schema.clone(),
                    output_schema: i.callable.output_schema.clone(),
                })
                .collect(),
            flows: flows.iter().map(|f| f.definition.clone()).collect(),
        };
        Ok(AgentApp {
            inner: Arc::new(AppInner {
                manifest,
                auth: self.auth,
                store: self.store,
                intents: intents.into_iter().map(|i| (i.name, i.callable)).collect(),
                flows: flows
                    .into_iter()
                    .map(|f| (f.definition.name.clone(), f))
                    .collect(),
                claim_lease: self.claim_lease,
            }),
        })
    }
}

pub(crate) struct BuiltFlow {
    pub definition: FlowDef,
    pub handlers: HashMap<String, Callable>,
}

impl BuiltFlow {
    fn validate(flow: Flow) -> Result<Self, BuildError> {
        let name = flow.name.clone();
        let mut names = HashSet::new();
        for step in &flow.steps {
            check_name(&step.name)?;
            if !names.insert(step.name.clone()) {
                return Err(BuildError::DuplicateStep {
                    flow: name,
                    step: step.name.clone(),
                });
            }
        }
        let entries: Vec<&Step> = flow.steps.iter().filter(|s| s.after.is_empty()).collect();
        if entries.len() != 1 {
            return Err(BuildError::EntrySteps {
                flow: name,
                count: entries.len(),
            });
        }
        let entry = entries[0].name.clone();
        for step in &flow.steps {
            if let Some(after) = step.after.iter().find(|a| !names.contains(*a)) {
                return Err(BuildError::UnknownAfter {
                    flow: name,
                    step: step.name.clone(),
                    after: after.clone(),
                });
            }
        }
        let children = |parent: &str| -> Vec<String> {
            flow.steps
                .iter()
                .filter(|s| s.after.iter().any(|a| a == parent))
                .map(|s| s.name.clone())
                .collect()
        };
        let mut reached = HashSet::from([entry.clone()]);
        let mut queue = VecDeque::from([entry.clone()]);
        while let Some(step) = queue.pop_front() {
            for child in children(&step) {
                if reached.insert(child.clone()) {
                    queue.push_back(child);
                }
            }
        }
        if let Some(lost) = flow.steps.iter().find(|s| !reached.contains(&s.name)) {
            return Err(BuildError::Unreachable {
                flow: name,
                step: lost.name.clone(),
            });
        }
        let definition = FlowDef {
            name: flow.name.clone(),
            description: flow.description.clone(),
            orchestration: flow.orchestration,
            steps: flow
                .steps
                .iter()
                .map(|s| StepDef {
                    name: s.name.clone(),
                    description: s.description.clone(),
                    entry: s.after.is_empty(),
                    next_steps: children(&s.name),
                    input_schema: s.callable.input_schema.clone(),
                    output_schema: s.callable.output_schema.clone(),
                })
                .collect(),
        };
        let handlers = flow
            .steps
            .into_iter()
            .map(|s| (s.name, s.callable))
            .collect();
        Ok(Self {
            definition,
            handlers,
        })
    }
}

pub(crate) struct AppInner {
    pub manifest: Manifest,
    pub auth: Auth,
    pub store: Arc<dyn SessionStore>,
    pub intents: HashMap<String, Callable>,
    pub flows: HashMap<String, BuiltFlow>,
    pub claim_lease: Duration,
}

/// A site's agent API: its manifest, intents, flows, sessions and auth.
#[derive(Clone)]
pub struct AgentApp {
    pub(crate) inner: Arc<AppInner>,
}

impl AgentApp {
    /// Starts configuring a site called `name`.
    pub fn builder(name: impl Into<String>) -> AgentAppBuilder {
        AgentAppBuilder {
            name: name.into(),
            description: String::new(),
            version: String::new(),
            auth: Auth::none(),
            store: Arc::new(MemorySessionStore::default()),
            intents: Vec::new(),
            flows: Vec::new(),
            claim_lease: Duration::from_secs(300),
        }
    }

    /// The manifest (with an empty `base_url`; see [`AgentApp::mount_at`]).
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The auth declaration.
    pub fn auth(&self) -> AuthDef {
        self.inner.manifest.auth.clone()
    }
}
