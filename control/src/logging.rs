//! Logging: `tracing` events to stderr, as human-readable text or as one
//! JSON object per line (for journald or a log shipper).
//!
//! ```text
//! mycelium_control::logging::init("info", false)?;                              // text
//! mycelium_control::logging::init("info,mycelium_control::link=debug", true)?;  // JSON lines
//! ```
//!
//! `level` is an `EnvFilter` directive (`warn`, `info`, `debug`,
//! `mycelium_control=trace`, ...); `RUST_LOG`, when set and valid, takes
//! precedence.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The level does not parse as a filter directive.
    #[error("log level {level:?}: {reason} (e.g. info, debug, mycelium_control=trace)")]
    BadLevel {
        /// What was given.
        level: String,
        /// The parser's reason.
        reason: String,
    },
    /// A global subscriber is installed already.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// The filter for `level` (without looking at `RUST_LOG`).
pub fn parse_level(level: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(level).map_err(|e| LogError::BadLevel { level: level.to_owned(), reason: e.to_string() })
}

/// A subscriber writing events that pass `filter` to `writer`, as text or
/// (`json`) as JSON lines.
pub fn subscriber<W>(filter: EnvFilter, json: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if json { Box::new(builder.json().with_current_span(true).finish()) } else { Box::new(builder.finish()) }
}

/// Installs the global subscriber: events at `level` (or `RUST_LOG`) and
/// above to stderr. Call once, first thing in `main`.
pub fn init(level: &str, json: bool) -> Result<(), LogError> {
    let env = std::env::var("RUST_LOG").ok().and_then(|v| EnvFilter::try_new(v).ok());
    let filter = match env {
        Some(f) => f,
        None => parse_level(level)?,
    };
    tracing::subscriber::set_global_default(subscriber(filter, json, std::io::stderr)).map_err(|_| LogError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(level: &str, json: bool) -> String {
        let buf = Buffer::default();
        let out = buf.clone();
        let sub = subscriber(parse_level(level).unwrap(), json, move || out.clone());
        tracing::subscriber::with_default(sub, || {
            tracing::info!(peer = "udp://192.0.2.1:9651", "peer added");
            tracing::debug!("hidden at info");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_mode_writes_one_parseable_object_per_event() {
        let text = capture("info", true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "peer added");
        assert_eq!(v["fields"]["peer"], "udp://192.0.2.1:9651");
    }

    #[test]
    fn text_mode_writes_readable_lines_filtered_by_level() {
        let text = capture("info", false);
        assert!(text.contains("INFO") && text.contains("peer added"), "{text}");
        assert!(!text.contains("hidden"), "{text}");
        assert!(capture("debug", false).contains("hidden at info"));
    }

    #[test]
    fn a_level_that_does_not_parse_is_a_clear_error() {
        let err = parse_level("info,=x=y").unwrap_err();
        assert!(err.to_string().contains("log level"), "{err}");
        assert!(parse_level("info,mycelium_control=debug").is_ok());
    }
}
