//! Where the gateway may connect for URLs it is given by configuration or the admin API
//! (webhooks, MCP servers over HTTP, agentgate sites): one policy, checked on the URL and again
//! on every address a host name resolves to, when the connection is made.
//!
//! Private, loopback, link-local, shared (CGNAT), multicast, reserved and unspecified
//! addresses, and the hosts `localhost` and `metadata.google.internal`, are refused unless
//! `outbound.allowed_private_hosts` lists the host (or `*`). The second check is a DNS resolver
//! inside the HTTP client, so neither a redirect nor a name that resolves elsewhere later
//! leads around the first. Model providers are not covered: their base URLs are the
//! operator's own choice of backend, often on the same machine.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use gateway_workspace::config::GatewayConfig;
use reqwest::Url;

/// A URL the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("invalid URL '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("URL '{url}' must be http or https")]
    Scheme { url: String },
    #[error(
        "'{host}' is a private, loopback or metadata address (allow it in outbound.allowed_private_hosts)"
    )]
    Private { host: String },
    #[error("cannot resolve '{host}': {reason}")]
    Resolve { host: String, reason: String },
}

/// The hosts allowed although private (`outbound.allowed_private_hosts`, plus the older
/// webhook-only `notifications.allowed_private_hosts`). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Arc<[String]>,
}

/// Host names that lead inside whatever they resolve to.
const INTERNAL_NAMES: [&str; 2] = ["localhost", "metadata.google.internal"];

/// Redirects a client built by [`OutboundPolicy::client_builder`] follows at most.
const MAX_REDIRECTS: usize = 10;

impl OutboundPolicy {
    /// A policy allowing `hosts` (names or addresses, `*` for every host).
    pub fn allowing(hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            allowed: hosts
                .into_iter()
                .map(|h| normalise_host(&h.into()))
                .collect(),
        }
    }

    pub fn from_config(config: &GatewayConfig) -> Self {
        Self::allowing(
            config
                .outbound
                .allowed_private_hosts
                .iter()
                .chain(&config.notifications.allowed_private_hosts)
                .cloned(),
        )
    }

    fn allows(&self, host: &str) -> bool {
        let host = normalise_host(host);
        self.allowed.iter().any(|a| a == "*" || *a == host)
    }

    /// `url` parsed, if the gateway may connect to it: http(s), a host, and not a private
    /// address or internal name (unless allowed). A host name is checked again when it is
    /// resolved (see [`OutboundPolicy::client_builder`]).
    pub fn check_url(&self, url: &str) -> Result<Url, OutboundError> {
        let parsed = Url::parse(url).map_err(|err| OutboundError::InvalidUrl {
            url: url.to_string(),
            reason: err.to_string(),
        })?;
        self.check_parsed(&parsed)?;
        Ok(parsed)
    }

    fn check_parsed(&self, url: &Url) -> Result<(), OutboundError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::Scheme {
                url: url.to_string(),
            });
        }
        let refused = match url.host() {
            None => {
                return Err(OutboundError::InvalidUrl {
                    url: url.to_string(),
                    reason: "it has no host".into(),
                });
            }
            Some(url::Host::Ipv4(ip)) => private(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => private(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => internal_name(name),
        };
        let host = url.host_str().unwrap_or_default();
        if refused && !self.allows(host) {
            return Err(OutboundError::Private {
                host: normalise_host(host),
            });
        }
        Ok(())
    }

    /// Refuses `addresses` (what `host` resolved to) if any is private and `host` is not
    /// allowed: one private answer is enough to be led inside.
    pub fn check_addresses(
        &self,
        host: &str,
        addresses: &[SocketAddr],
    ) -> Result<(), OutboundError> {
        if self.allows(host) {
            return Ok(());
        }
        if internal_name(host) || addresses.iter().any(|a| private(a.ip())) {
            return Err(OutboundError::Private {
                host: normalise_host(host),
            });
        }
        Ok(())
    }

    /// Resolves `url`'s host and checks every address: the address to pin a connection to
    /// (for clients that take one, as webhook deliveries do) with the host name.
    pub async fn resolve(&self, url: &str) -> Result<(String, SocketAddr), OutboundError> {
        let parsed = self.check_url(url)?;
        let host = normalise_host(parsed.host_str().unwrap_or_default());
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addresses = lookup(&host, port).await?;
        self.check_addresses(&host, &addresses)?;
        let first = addresses
            .first()
            .copied()
            .ok_or_else(|| OutboundError::Resolve {
                host: host.clone(),
                reason: "it has no address".into(),
            })?;
        Ok((host, first))
    }

    /// An HTTP client builder whose every connection obeys the policy: host names resolve
    /// through it, and each redirect's URL is checked before it is followed.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let redirects = self.clone();
        reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: self.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match redirects.check_parsed(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(err) => attempt.error(err),
                }
            }))
    }
}

/// `[::1]` and `::1`, `Example.com` and `example.com` name the same host.
fn normalise_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

fn internal_name(host: &str) -> bool {
    let host = normalise_host(host);
    let host = host.trim_end_matches('.');
    INTERNAL_NAMES.contains(&host) || host.ends_with(".localhost")
}

async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
    tokio::net::lookup_host((host, port))
        .await
        .map(Iterator::collect)
        .map_err(|err| OutboundError::Resolve {
            host: host.to_string(),
            reason: err.to_string(),
        })
}

/// The resolver of [`OutboundPolicy::client_builder`].
struct CheckedResolver {
    policy: OutboundPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // The connector puts the URL's port on each address.
            let addresses = lookup(&host, 0).await?;
            policy.check_addresses(&host, &addresses)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is not a public unicast address.
pub fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., high, low] = segments;
                let v4 = std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
                return private(IpAddr::V4(v4));
            }
            let first = segments[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    #[test]
    fn private_addresses_are_recognised() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(private(ip(text)), "{text}");
        }
        for text in ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(!private(ip(text)), "{text}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        let strict = OutboundPolicy::default();
        for url in [
            "http://127.0.0.1:9/x",
            "http://2130706433/",
            "http://[::1]/",
            "http://[::ffff:169.254.169.254]/",
            "https://localhost/",
            "https://api.localhost./",
            "http://METADATA.google.internal/computeMetadata",
        ] {
            assert!(
                matches!(strict.check_url(url), Err(OutboundError::Private { .. })),
                "{url}"
            );
        }
        assert!(matches!(
            strict.check_url("file:///etc/passwd"),
            Err(OutboundError::Scheme { .. })
        ));
        assert!(matches!(
            strict.check_url("not a url"),
            Err(OutboundError::InvalidUrl { .. })
        ));
        assert!(strict.check_url("https://example.com/hook").is_ok());
        let local = OutboundPolicy::allowing(["127.0.0.1", "[::1]", "LocalHost"]);
        for url in [
            "http://127.0.0.1:9/",
            "http://[::1]:8/",
            "http://localhost/",
        ] {
            assert!(local.check_url(url).is_ok(), "{url}");
        }
        assert!(local.check_url("http://10.0.0.1/").is_err());
        assert!(
            OutboundPolicy::allowing(["*"])
                .check_url("http://10.0.0.1/")
                .is_ok()
        );
    }

    #[test]
    fn every_resolved_address_counts() {
        let strict = OutboundPolicy::default();
        let public: SocketAddr = "93.184.216.34:443"
            .parse()
            .unwrap_or(([0, 0, 0, 0], 0).into());
        let inside: SocketAddr = "10.0.0.7:443".parse().unwrap_or(([0, 0, 0, 0], 0).into());
        assert!(strict.check_addresses("example.com", &[public]).is_ok());
        assert!(
            strict
                .check_addresses("example.com", &[public, inside])
                .is_err()
        );
        assert!(
            OutboundPolicy::allowing(["example.com"])
                .check_addresses("example.com", &[inside])
                .is_ok()
        );
    }

    #[tokio::test]
    async fn resolving_checks_the_name_and_its_addresses() {
        let strict = OutboundPolicy::default();
        let refused = strict.resolve("http://127.0.0.1:9/hook").await;
        assert!(matches!(refused, Err(OutboundError::Private { .. })));
        let loopback = OutboundPolicy::allowing(["127.0.0.1"]);
        assert!(
            loopback.resolve("http://localhost:9/hook").await.is_err(),
            "allowing an address does not allow the name localhost"
        );
        let pinned = loopback.resolve("http://127.0.0.1:9/hook").await;
        assert_eq!(
            pinned.map(|(host, address)| (host, address.port())),
            Ok(("127.0.0.1".to_string(), 9))
        );
        assert!(strict.resolve("ftp://example.com/x").await.is_err());
    }

    #[tokio::test]
    async fn a_client_refuses_a_name_that_resolves_inside() {
        // `localhost` resolves to a loopback address: refused at connection time too.
        let client = OutboundPolicy::default()
            .client_builder()
            .build()
            .unwrap_or_default();
        let Err(err) = client.get("http://localhost:9/").send().await else {
            panic!("a loopback name was reached");
        };
        // The policy's own message is in the error's chain, for whoever reports it.
        let mut chain = Vec::new();
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        while let Some(error) = source {
            chain.push(error.to_string());
            source = error.source();
        }
        assert!(
            chain
                .iter()
                .any(|e| e.contains("allow it in outbound.allowed_private_hosts")),
            "{chain:?}"
        );
    }
}
