//! Repairing `entryPointArgs`.

/// `entryPointArgs` could not be repaired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot split the container arguments {joined:?}: unbalanced quotes (check `args:` in the workflow or the action's `runs.args`)"
)]
pub struct ArgsError {
    /// The arguments joined with spaces, as the workflow wrote them.
    pub joined: String,
}

/// Undoes the runner's splitting of `args:`.
///
/// The runner splits the workflow's `args` string on single spaces and keeps the quotes, so
/// `args: "Hello world"` arrives as `["\"Hello", "world\""]`. This joins the pieces with spaces
/// and splits the result again with POSIX shell rules, giving `["Hello world"]`.
///
/// ```
/// let args = vec!["\"Hello".to_owned(), "world\"".to_owned(), "--flag".to_owned()];
/// assert_eq!(hooklib::repair_entry_point_args(&args).unwrap(), ["Hello world", "--flag"]);
/// ```
pub fn repair_entry_point_args(args: &[String]) -> Result<Vec<String>, ArgsError> {
    let joined = args.join(" ");
    shlex::split(&joined).ok_or(ArgsError { joined })
}
