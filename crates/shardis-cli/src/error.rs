//! One error type: a single line a person can act on.

use std::fmt;

/// A failure of a command, already phrased for the person who ran it.
#[derive(Debug)]
pub struct CliError(String);

/// Result alias of the CLI.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// Wraps a message, folding it onto one line (multi-line server or tool output becomes
    /// `a | b | c`).
    pub fn new(message: impl Into<String>) -> Self {
        let message = message.into();
        let one_line = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        CliError(one_line)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Err(CliError)` from a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::CliError::new(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// Adds context to any displayable error.
pub trait Context<T> {
    /// `context: error`, on one line.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| CliError::new(format!("{}: {e}", context())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_onto_one_line() {
        let e = CliError::new("redis-cli failed:\nstdout:\n\n  [ERR] Nodes don't agree\n");
        assert_eq!(
            e.to_string(),
            "redis-cli failed: | stdout: | [ERR] Nodes don't agree"
        );
    }
}
