//! Logging setup shared by the hook binaries: `tracing` to stderr, stdout left to the step.

use tracing_subscriber::EnvFilter;

/// The environment variable whose value (an `EnvFilter` directive such as
/// `debug,kube=trace`) overrides the log filter.
pub const LOG_FILTER_VAR: &str = "CONTAINER_HOOKS_LOG";

/// How verbose the hook's own log is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `RUNNER_DEBUG=1`: the runner's debug logging is on.
    pub debug: bool,
    /// [`LOG_FILTER_VAR`], when set: replaces the default filter entirely.
    pub filter: Option<String>,
}

impl LogSettings {
    /// Reads the settings through `lookup` (pass `|k| std::env::var(k).ok()` at the binary edge;
    /// libraries never read the environment themselves).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            debug: lookup("RUNNER_DEBUG").is_some_and(|v| v.trim() == "1"),
            filter: lookup(LOG_FILTER_VAR).filter(|f| !f.trim().is_empty()),
        }
    }

    /// The filter directive in force.
    pub fn directive(&self) -> String {
        if let Some(f) = &self.filter {
            return f.clone();
        }
        let quiet = "hyper=warn,hyper_util=warn,rustls=warn,tower=warn,h2=warn,tungstenite=warn";
        let level = if self.debug { "debug" } else { "info" };
        format!("{level},kube=warn,kube_client=warn,bollard=warn,{quiet}")
    }
}

/// Installs the global subscriber: plain text on stderr, no colours, no timestamps (the runner
/// timestamps every log line). Calling it twice is harmless.
pub fn init_logging(settings: &LogSettings) {
    let filter = EnvFilter::try_new(settings.directive()).unwrap_or_else(|e| {
        eprintln!("warning: invalid {LOG_FILTER_VAR} filter ({e}); using the default");
        EnvFilter::new(
            LogSettings {
                filter: None,
                ..settings.clone()
            }
            .directive(),
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(settings.debug)
        .try_init();
}
