//! Credentials for `AUTH`, fixed or from a [`CredentialsProvider`] asked on every new
//! connection (rotating tokens).

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::Error;
use crate::settings::{Secret, Settings};

/// What a provider's failure is: any error, shown in [`Error::Auth`] (keep secrets out of it).
pub type CredentialsError = Box<dyn std::error::Error + Send + Sync>;

/// An ACL user (or the default user when `None`) and its password or token.
///
/// ```
/// let creds = shardis::Credentials::new(Some("app"), "short-lived-token");
/// assert_eq!(creds.username(), Some("app"));
/// assert!(!format!("{creds:?}").contains("short-lived-token"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    username: Option<String>,
    password: Secret,
}

impl Credentials {
    /// `AUTH [username] password`.
    pub fn new(username: Option<impl Into<String>>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.map(Into::into),
            password: Secret::new(password),
        }
    }

    /// The ACL user, `None` for the default user.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password or token.
    pub fn password(&self) -> &Secret {
        &self.password
    }
}

/// Gives the credentials of each new connection: asked again every time the client opens a
/// connection (shared, dedicated, subscribed, topology loads), never cached by the client, so a
/// rotating token (ElastiCache IAM auth, a vault lease) is picked up by the next connection
/// without rebuilding the client. Connections already authenticated stay as they are, as with
/// Redis itself.
///
/// Object-safe: the future is boxed. A provider that fails makes that connection fail with
/// [`Error::Auth`], carrying the provider's message.
///
/// ```
/// use futures::future::BoxFuture;
/// use shardis::{Credentials, CredentialsError, CredentialsProvider};
///
/// struct FromEnv;
/// impl CredentialsProvider for FromEnv {
///     fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
///         Box::pin(async {
///             let token = std::env::var("REDIS_TOKEN")?;
///             Ok(Credentials::new(Some("app"), token))
///         })
///     }
/// }
/// let builder = shardis::Client::builder()
///     .cluster(["cache.example.com:6379"])
///     .credentials_provider(FromEnv);
/// ```
pub trait CredentialsProvider: Send + Sync + 'static {
    /// The credentials for the connection being opened now.
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>>;
}

/// The provider as the settings hold it: `Debug` without asking it anything.
#[derive(Clone)]
pub(crate) struct Provider(pub Arc<dyn CredentialsProvider>);

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialsProvider")
    }
}

/// The credentials a new connection to `label` authenticates with: the provider's (asked
/// now, within the connect timeout), else the fixed user and password, else none.
pub(crate) async fn for_connection(
    settings: &Settings,
    label: &str,
) -> Result<Option<Credentials>, Error> {
    let Some(Provider(provider)) = &settings.credentials_provider else {
        return Ok(settings.password.as_ref().map(|password| Credentials {
            username: settings.username.clone(),
            password: password.clone(),
        }));
    };
    let refused = |message: String| Error::Auth {
        node: label.to_string(),
        user: None,
        message,
    };
    match tokio::time::timeout(settings.connect_timeout, provider.credentials()).await {
        Ok(Ok(credentials)) => Ok(Some(credentials)),
        Ok(Err(e)) => Err(refused(format!("the credentials provider failed: {e}"))),
        Err(_) => Err(refused(format!(
            "the credentials provider gave nothing within {:?}",
            settings.connect_timeout
        ))),
    }
}
