//! Reading a hook's settings from the environment the binary passes in: one rule for blank
//! values, booleans, durations and counts, and one error shape naming the variable, for both
//! hooks. Libraries never read the environment themselves: the binary hands over a lookup
//! (`|k| std::env::var(k).ok()`).

use std::time::Duration;

/// A setting that is missing or cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// A required variable is unset or blank.
    #[error("{var} is not set: {hook} needs it ({why})")]
    Missing {
        /// The variable.
        var: &'static str,
        /// Which hook (`the docker hook`).
        hook: &'static str,
        /// What it is needed for.
        why: &'static str,
    },
    /// A variable has a value the hook cannot use.
    #[error("{var}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
}

/// A lookup over fixed `(name, value)` pairs, for settings that do not come from the process
/// environment (tests, an embedding program); a later pair wins over an earlier one.
///
/// ```
/// let lookup = hooklib::settings::lookup_from(&[("A", "1"), ("A", "2")]);
/// assert_eq!(lookup("A").as_deref(), Some("2"));
/// assert_eq!(lookup("B"), None);
/// ```
pub fn lookup_from<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// The environment as a hook sees it: a blank value is the same as an unset one.
pub struct Vars<F> {
    lookup: F,
}

impl<F> std::fmt::Debug for Vars<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be credentials: never printed.
        f.write_str("Vars")
    }
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// Wraps the binary's lookup.
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value of `var`, unless unset or blank.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// A required value.
    pub fn required(
        &self,
        var: &'static str,
        hook: &'static str,
        why: &'static str,
    ) -> Result<String, SettingError> {
        self.get(var)
            .ok_or(SettingError::Missing { var, hook, why })
    }

    /// Reads `var` with `parse`; unset or blank is `default`; `None` from `parse` is an error
    /// saying `expected`.
    pub fn parsed<T>(
        &self,
        var: &'static str,
        default: T,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, SettingError> {
        match self.get(var) {
            None => Ok(default),
            Some(value) => parse(value.trim()).ok_or(SettingError::Invalid {
                var,
                value,
                expected,
            }),
        }
    }

    /// A boolean: `true`/`false`/`1`/`0`, any case.
    pub fn boolean(&self, var: &'static str, default: bool) -> Result<bool, SettingError> {
        self.parsed(var, default, "true or false", |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            }
        })
    }

    /// A whole number of seconds greater than 0.
    pub fn positive_secs(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, SettingError> {
        self.parsed(var, default, "a whole number of seconds > 0", |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_secs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> Vars<impl Fn(&str) -> Option<String>> {
        Vars::new(lookup_from(pairs))
    }

    #[test]
    fn blank_is_unset() {
        let v = vars(&[("A", "  "), ("B", "x")]);
        assert_eq!(v.get("A"), None);
        assert_eq!(v.get("B").as_deref(), Some("x"));
        assert_eq!(
            v.required("A", "the docker hook", "why")
                .unwrap_err()
                .to_string(),
            "A is not set: the docker hook needs it (why)"
        );
    }

    #[test]
    fn booleans_and_seconds() {
        let v = vars(&[
            ("T", " TRUE "),
            ("Z", "0"),
            ("BAD", "yes"),
            ("S", "10"),
            ("S0", "0"),
        ]);
        assert_eq!(v.boolean("T", false), Ok(true));
        assert_eq!(v.boolean("Z", true), Ok(false));
        assert_eq!(v.boolean("UNSET", true), Ok(true));
        assert_eq!(
            v.boolean("BAD", true).unwrap_err().to_string(),
            "BAD=\"yes\" is invalid: true or false"
        );
        let d = Duration::from_secs(600);
        assert_eq!(v.positive_secs("S", d), Ok(Duration::from_secs(10)));
        assert_eq!(v.positive_secs("UNSET", d), Ok(d));
        assert!(v.positive_secs("S0", d).is_err());
    }
}
