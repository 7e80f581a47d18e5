//! What tests need from outside: the URL of a service (PostgreSQL, Redis, RabbitMQ), from the
//! environment, and copies of fixture folders.
//!
//! On a developer's machine a test whose service is not configured says so and is skipped.
//! In CI (`CI` set to anything non-empty) every test must run, so a missing URL fails the
//! test instead of letting it pass without having run.
//!
//! ```no_run
//! let Some(url) = test_services::service_url("TEST_REDIS_URL", "Redis") else {
//!     return; // skipped: not in CI, and no Redis configured
//! };
//! # let _ = url;
//! ```

#[cfg(feature = "otlp")]
pub mod otlp;

use std::ffi::OsStr;

/// The URL in the environment variable `var`, for a test that needs `what` (`"PostgreSQL"`,
/// `"Redis"`, ...).
///
/// Set and non-empty: the URL. Otherwise, when `CI` is set (non-empty), panics with a message
/// that names the variable and the service; without `CI`, prints a one-line note to stderr and
/// returns `None`, and the caller skips the test. A failure points at the calling test.
#[allow(
    clippy::panic,
    reason = "a test helper: failing the test that calls it is its job"
)]
#[track_caller]
pub fn service_url(var: &str, what: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    match decide(var, what, url, std::env::var_os("CI").as_deref()) {
        Decision::Run(url) => Some(url),
        Decision::Skip(note) => {
            eprintln!("{note}");
            None
        }
        Decision::Fail(message) => panic!("{message}"),
    }
}

/// What a test does about its service.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Run against this URL.
    Run(String),
    /// Skip, with this note.
    Skip(String),
    /// Fail with this message.
    Fail(String),
}

/// The decision for the values of `var` (`url`) and of `CI` (`ci`), taken apart from the
/// real environment so that each branch can be tested.
fn decide(var: &str, what: &str, url: Option<String>, ci: Option<&OsStr>) -> Decision {
    match url {
        Some(url) if !url.is_empty() => Decision::Run(url),
        _ if ci.is_some_and(|ci| !ci.is_empty()) => Decision::Fail(format!(
            "{var} is not set, but CI is: this test needs {what}"
        )),
        _ => Decision::Skip(format!(
            "note: {var} is not set; skipped (this test needs {what})"
        )),
    }
}

/// Copies the folder `from` (a workspace a test serves, say) to `to`, so the test can run on
/// it and change it without touching the original. Files whose extension is in `skip` (e.g.
/// `db`) are left out.
pub fn copy_tree(
    from: &std::path::Path,
    to: &std::path::Path,
    skip: &[&str],
) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target, skip)?;
        } else if !entry
            .path()
            .extension()
            .and_then(OsStr::to_str)
            .is_some_and(|e| skip.contains(&e))
        {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::{Decision, decide};

    fn ci_set_to(value: &str) -> Option<&OsStr> {
        Some(OsStr::new(value))
    }

    #[test]
    fn a_set_url_is_used_in_ci_or_not() {
        for ci in [None, ci_set_to("true")] {
            assert_eq!(
                decide("TEST_REDIS_URL", "Redis", Some("redis://h".into()), ci),
                Decision::Run("redis://h".into())
            );
        }
    }

    #[test]
    fn a_missing_or_empty_url_skips_outside_ci() {
        let skip = Decision::Skip(
            "note: TEST_POSTGRES_URL is not set; skipped (this test needs PostgreSQL)".into(),
        );
        assert_eq!(decide("TEST_POSTGRES_URL", "PostgreSQL", None, None), skip);
        assert_eq!(
            decide("TEST_POSTGRES_URL", "PostgreSQL", Some(String::new()), None),
            skip
        );
        // An empty CI is no CI.
        assert_eq!(
            decide("TEST_POSTGRES_URL", "PostgreSQL", None, ci_set_to("")),
            skip
        );
    }

    #[test]
    fn a_missing_or_empty_url_fails_in_ci() {
        let fail = Decision::Fail(
            "TEST_POSTGRES_URL is not set, but CI is: this test needs PostgreSQL".into(),
        );
        assert_eq!(
            decide("TEST_POSTGRES_URL", "PostgreSQL", None, ci_set_to("1")),
            fail
        );
        assert_eq!(
            decide(
                "TEST_POSTGRES_URL",
                "PostgreSQL",
                Some(String::new()),
                ci_set_to("1")
            ),
            fail
        );
    }
}
