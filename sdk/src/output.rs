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
