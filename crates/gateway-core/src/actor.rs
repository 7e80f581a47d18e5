//! Who asks. Every operation on an owned record (execution, session, conversation, approval,
//! user config) takes an [`Actor`] and applies the one visibility rule here; every run checks
//! here that the actor may run the agent. Surfaces only say who the caller is.

use crate::auth::{Identity, grants_admin, may_invoke, scopes_allow};
use crate::error::{GatewayError, Record};

/// Who asks for an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user whose records these are (the owner of what the actor creates).
    user: Option<String>,
    grant: Grant,
}

/// What an actor may do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// Trusted code of the host program: every record, every agent.
    Trusted,
    /// Auth is off: no identity, every record is shared and every agent may run.
    Open,
    /// No identity on a path the configuration makes public while auth is on: the path's
    /// operation may run, but no record is anyone's to show it.
    Public,
    /// An authenticated caller: its own records (all of them when admin), the agents its
    /// scopes name.
    Scopes { scopes: Vec<String>, admin: bool },
}

impl Actor {
    /// Trusted code with no user: schedules, the CLI, a host program's own calls. What it
    /// creates has no owner.
    pub fn system() -> Self {
        Self {
            user: None,
            grant: Grant::Trusted,
        }
    }

    /// Trusted code acting for `user_id` (a queued run, a delegated child): the user owns what
    /// it creates and the user's personal setup applies; nothing is refused.
    pub fn on_behalf_of(user_id: impl Into<String>) -> Self {
        Self {
            user: Some(user_id.into()),
            grant: Grant::Trusted,
        }
    }

    /// A caller without identity while auth is off: everything is shared.
    pub fn anonymous() -> Self {
        Self {
            user: None,
            grant: Grant::Open,
        }
    }

    /// A caller without identity on a public path while auth is on: it may use the path,
    /// and sees no record.
    pub fn public() -> Self {
        Self {
            user: None,
            grant: Grant::Public,
        }
    }

    /// An authenticated user with its scopes (`*` or `admin` make it an admin).
    pub fn user(user_id: impl Into<String>, scopes: Vec<String>) -> Self {
        let admin = grants_admin(&scopes);
        Self {
            user: Some(user_id.into()),
            grant: Grant::Scopes { scopes, admin },
        }
    }

    /// The user id (the owner of what this actor creates), if any.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether nobody authenticated this caller while auth is on ([`Actor::public`]): it may
    /// use a public path, and is told nothing of the gateway's insides there.
    pub fn is_unidentified(&self) -> bool {
        self.grant == Grant::Public
    }

    /// Whether the actor sees every user's records.
    pub fn is_admin(&self) -> bool {
        match &self.grant {
            Grant::Trusted | Grant::Open => true,
            Grant::Public => false,
            Grant::Scopes { admin, .. } => *admin,
        }
    }

    /// Whether the actor holds `scope` (`agents:invoke:<agent>` is held through
    /// `agents:invoke`, `agents:*` or `*` too).
    pub fn allows(&self, scope: &str) -> bool {
        match &self.grant {
            Grant::Trusted | Grant::Open | Grant::Public => true,
            Grant::Scopes { scopes, .. } => scopes_allow(scopes, scope),
        }
    }

    /// The one visibility rule: a record with `owner` may be read or changed by its owner,
    /// by admins, by trusted code, and by anyone while auth is off.
    pub fn may_access(&self, owner: Option<&str>) -> bool {
        self.is_admin() || (owner.is_some() && owner == self.user.as_deref())
    }

    /// The owner listings are restricted to: `None` means every user's records.
    pub fn owner_filter(&self) -> Option<&str> {
        if self.is_admin() {
            None
        } else {
            // Without identity (a public path) no owner matches: nothing is listed.
            Some(self.user.as_deref().unwrap_or(""))
        }
    }

    /// Refuses (403) a record the actor may not see or change.
    pub fn check_access(
        &self,
        record: Record,
        id: &str,
        owner: Option<&str>,
    ) -> Result<(), GatewayError> {
        if self.may_access(owner) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden {
                record,
                id: id.to_string(),
            })
        }
    }

    /// Refuses (403) a run of an agent the actor's scopes do not name (`*`,
    /// `agents:invoke` or `agents:invoke:<agent>`).
    pub fn check_run(&self, agent_id: &str) -> Result<(), GatewayError> {
        let Grant::Scopes { scopes, .. } = &self.grant else {
            return Ok(());
        };
        if may_invoke(scopes, agent_id) {
            Ok(())
        } else {
            Err(GatewayError::InsufficientScope {
                scope: format!("agents:invoke (or agents:invoke:{agent_id})"),
            })
        }
    }
}

impl From<Identity> for Actor {
    fn from(identity: Identity) -> Self {
        Self::user(identity.user_id, identity.scopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_admins_and_trusted_code_see_a_record() {
        let alice = Actor::user("alice", vec!["sessions:read".into()]);
        let admin = Actor::user("root", vec!["*".into()]);
        assert!(alice.may_access(Some("alice")));
        assert!(!alice.may_access(Some("bob")));
        assert!(!alice.may_access(None), "an unowned record is not a user's");
        assert!(admin.may_access(Some("bob")));
        assert!(Actor::system().may_access(Some("bob")));
        assert!(Actor::on_behalf_of("alice").may_access(Some("bob")));
        assert!(Actor::anonymous().may_access(Some("bob")));
        assert_eq!(alice.owner_filter(), Some("alice"));
        assert_eq!(admin.owner_filter(), None);
        assert_eq!(Actor::anonymous().owner_filter(), None);
        let public = Actor::public();
        assert!(!public.may_access(Some("bob")) && !public.may_access(None));
        assert_eq!(public.owner_filter(), Some(""), "lists nothing");
        assert!(public.check_run("any").is_ok(), "the public path runs");
    }

    #[test]
    fn runs_need_the_agents_scope() {
        let narrow = Actor::user("n", vec!["agents:invoke:helper".into()]);
        assert!(narrow.check_run("helper").is_ok());
        assert!(matches!(
            narrow.check_run("other"),
            Err(GatewayError::InsufficientScope { .. })
        ));
        assert!(
            Actor::user("w", vec!["agents:invoke".into()])
                .check_run("other")
                .is_ok()
        );
        assert!(Actor::system().check_run("other").is_ok());
        assert!(Actor::anonymous().check_run("other").is_ok());
    }
}
