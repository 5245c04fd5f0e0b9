//! Reading and validating the one line the runner writes on stdin.

use crate::input::{Command, Input, Request};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;

/// Why the input could not be used. Each variant renders as one actionable line.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// stdin could not be read.
    #[error("could not read the hook input from stdin: {0}")]
    Io(#[from] std::io::Error),
    /// stdin was empty (or only white space).
    #[error(
        "no input on stdin: the runner sends one JSON line; run this hook through ACTIONS_RUNNER_CONTAINER_HOOKS, or pipe an input such as examples/prepare_job.json"
    )]
    Empty,
    /// stdin is not UTF-8.
    #[error("the hook input is not valid UTF-8 (byte {0})")]
    NotUtf8(usize),
    /// Not JSON, or truncated.
    #[error("the hook input is not valid JSON: {0}")]
    Syntax(serde_json::Error),
    /// More than one JSON document.
    #[error(
        "the hook input holds more than one JSON document (extra data at line {line}, column {column}); the runner sends exactly one"
    )]
    Trailing {
        /// 1-based line of the extra data.
        line: usize,
        /// 1-based column of the extra data.
        column: usize,
    },
    /// The command is not one of the four.
    #[error(
        "unknown command {0:?}: expected one of prepare_job, run_script_step, run_container_step, cleanup_job"
    )]
    UnknownCommand(String),
    /// A field has the wrong type or is missing.
    #[error("invalid hook input at `{path}`: {message}")]
    Field {
        /// JSON path of the offending field, e.g. `args.container.portMappings[0]`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    command: String,
    response_file: PathBuf,
    #[serde(default)]
    args: serde_json::Value,
    #[serde(default)]
    state: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeOut<'a> {
    command: Command,
    response_file: &'a PathBuf,
    args: serde_json::Value,
    state: &'a Option<serde_json::Value>,
}

/// Reads one hook input from `reader` (the runner's stdin) and validates it completely.
///
/// The whole stream is read: the runner writes one line and closes stdin.
pub fn read_input(mut reader: impl Read) -> Result<Input, InputError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    parse_input(&bytes)
}

/// Parses one hook input from bytes. See [`read_input`].
pub fn parse_input(bytes: &[u8]) -> Result<Input, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|e| InputError::NotUtf8(e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(InputError::Empty);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_json::Value::deserialize(&mut de).map_err(InputError::Syntax)?;
    if let Err(e) = de.end() {
        return Err(InputError::Trailing {
            line: e.line(),
            column: e.column(),
        });
    }
    let envelope: Envelope = typed(value, "")?;
    let request = match envelope.command.as_str() {
        "prepare_job" => Request::PrepareJob(typed(envelope.args, "args")?),
        "run_script_step" => Request::RunScriptStep(typed(envelope.args, "args")?),
        "run_container_step" => Request::RunContainerStep(typed(envelope.args, "args")?),
        "cleanup_job" => Request::CleanupJob,
        other => return Err(InputError::UnknownCommand(other.to_owned())),
    };
    Ok(Input {
        request,
        response_file: envelope.response_file,
        state: envelope.state.filter(|s| !s.is_null()),
    })
}

fn typed<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner.as_str()) {
            (true, ".") => "(top level)".to_owned(),
            (true, _) => inner,
            (false, ".") => prefix.to_owned(),
            (false, _) => format!("{prefix}.{inner}"),
        };
        InputError::Field {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

impl Input {
    /// The input as the runner would have sent it (one JSON value), e.g. for tests and examples.
    pub fn to_json(&self) -> serde_json::Value {
        let args = match &self.request {
            Request::PrepareJob(a) => serde_json::to_value(a),
            Request::RunScriptStep(a) => serde_json::to_value(a),
            Request::RunContainerStep(a) => serde_json::to_value(a),
            Request::CleanupJob => Ok(serde_json::json!({})),
        }
        .unwrap_or_default();
        serde_json::to_value(EnvelopeOut {
            command: self.request.command(),
            response_file: &self.response_file,
            args,
            state: &self.state,
        })
        .unwrap_or_default()
    }
}
