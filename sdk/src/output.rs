//! Heroku-style build output.
//!
//! The host streams every line a buildpack prints to the build's output as it happens, so print
//! progress as you go rather than at the end.

/// Prints a step header: `-----> Installing dependencies`.
pub fn header(message: &str) {
    println!("-----> {message}");
}

/// Prints a detail line under a header, indented to line up with the header's text.
pub fn info(message: &str) {
    for line in message.lines() {
        println!("       {line}");
    }
}

/// Prints a warning: ` !     message`.
pub fn warning(message: &str) {
    for line in message.lines() {
        println!(" !     {line}");
    }
}

/// Prints an error on stderr: ` !     message`.
pub fn error(message: &str) {
    for line in message.lines() {
        eprintln!(" !     {line}");
    }
}

/// Prints an error and what to do about it, on stderr, as Heroku's buildpacks do:
///
/// ```text
///  !     package-lock.json is missing
///  !
///  !     Run `npm install` and commit package-lock.json.
/// ```
pub fn error_with_hint(message: &str, hint: &str) {
    error(message);
    eprintln!(" !");
    error(hint);
}

/// A build failure with a hint for the user; return it from a phase
/// (`return Err(Failure::new("...").hint("...").into())`) and the output shows both, the hint
/// set apart, while the build's error is the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what the user can do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Formats a byte count the way Heroku does (`1.2M`, `340K`, `12B`).
pub fn human_size(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b >= K * K * K {
        format!("{:.1}G", b / (K * K * K))
    } else if b >= K * K {
        format!("{:.1}M", b / (K * K))
    } else if b >= K {
        format!("{:.0}K", b / K)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_heroku() {
        assert_eq!(human_size(12), "12B");
        assert_eq!(human_size(2048), "2K");
        assert_eq!(human_size(1_258_291), "1.2M");
    }
}
