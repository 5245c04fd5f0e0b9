//! What one command works with, built once in `lib.rs` and passed down: the settings, the
//! cancellation request, and the cluster client — connected on first use and then shared, so a
//! Dockerfile step builds and runs over one connection, and input errors are still found before
//! any connection is made. No command module calls back into [`crate::K8sHook`].

use crate::client;
use crate::error::Error;
use crate::mounts::Layout;
use crate::objects::Cluster;
use crate::settings::Settings;
use crate::template::Customization;
use hooklib::Cancel;

/// The context of one command.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The settings in force.
    pub settings: &'a Settings,
    /// The runner's SIGINT/SIGTERM for this invocation.
    pub cancel: &'a Cancel,
    cluster: tokio::sync::OnceCell<Cluster>,
}

impl<'a> Ctx<'a> {
    /// A context with no connection yet.
    pub fn new(settings: &'a Settings, cancel: &'a Cancel) -> Self {
        Self {
            settings,
            cancel,
            cluster: tokio::sync::OnceCell::new(),
        }
    }

    /// The cluster client, connected on the first call.
    pub async fn cluster(&self) -> Result<&Cluster, Error> {
        self.cluster
            .get_or_try_init(|| async {
                let (client, namespace) = client::connect(self.settings).await?;
                Ok::<_, Error>(Cluster::new(client, namespace, self.settings.heartbeat))
            })
            .await
    }

    /// Host paths of the runner's work tree.
    pub fn layout(&self) -> Result<Layout, Error> {
        Layout::new(
            self.settings.runner_temp.as_deref(),
            self.settings.runner_workspace.as_deref(),
            self.settings.github_workspace.as_deref(),
        )
        .ok_or(Error::MissingEnv(
            "RUNNER_TEMP",
            "work folder (_work/_temp)",
        ))
    }

    /// The administrator's pod template and patch, loaded.
    pub fn customization(&self) -> Result<Customization, Error> {
        Ok(Customization::load(
            self.settings.template.as_deref(),
            self.settings.template_patch.as_deref(),
        )?)
    }
}
