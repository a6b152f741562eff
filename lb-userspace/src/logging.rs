//! Where the daemon's and the CLI's logs go: standard error, as human text
//! (the default) or as one JSON object per line (`--log-format json`) for
//! log collectors (journald's JSON export, Loki, Elasticsearch, ...).
//!
//! Both formats carry the same information: timestamp, level, message, every
//! field of the event (`vip=web backend=10.0.0.11` in text, `"vip":"web"`
//! beside `"message"` at the top level of the JSON object) and the spans the
//! event happened in. Neither prints the module path (`target`): the
//! messages say what happened without it.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

/// The format of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2025-01-01T10:00:00.000000Z  INFO xlb is running api=/run/xlb/xlb.sock`
    #[default]
    Text,
    /// `{"timestamp":"...","level":"INFO","message":"xlb is running","api":"/run/xlb/xlb.sock"}`
    Json,
}

/// Installs the process-wide logger: `filter` in tracing's EnvFilter syntax
/// (an invalid one falls back to `info`), lines in `format` on standard
/// error. Also routes the `log` crate (aya-log, the XDP programs' logs)
/// into it.
pub fn init(filter: &str, format: LogFormat) {
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let subscriber = subscriber(filter, format, std::io::stderr, ansi);
    // Fails only when a logger is already installed (never in the binary).
    let _ = tracing::subscriber::set_global_default(subscriber);
    let _ = tracing_log::LogTracer::init();
}

/// The logger [`init`] installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(
    filter: &str,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        // The event's fields beside "message" rather than nested under
        // "fields", so a collector indexes them directly; the full span
        // context, as the text format prints it.
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        io::Write,
        sync::{Arc, Mutex},
    };

    use tracing::{info, warn};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// The lines the daemon's two typical events produce in `format`.
    fn lines(format: LogFormat) -> Vec<String> {
        let out = Captured::default();
        let subscriber = subscriber("info", format, out.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            info!(api = "/run/xlb/xlb.sock", writes = 12_u64, "xlb is running");
            let span = tracing::info_span!("reload", file = "/etc/xlb/xlb.toml");
            let _entered = span.enter();
            warn!(
                vip = "web",
                backend = "10.0.0.11",
                reason = "connection refused",
                "backend failed its health check"
            );
            tracing::debug!("filtered out at info");
        });
        let text = String::from_utf8(out.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_else(|e| panic!("{e}"));
        text.lines().map(str::to_string).collect()
    }

    /// `key=value` pairs of a text line after the message; values may be
    /// quoted (`reason="connection refused"`).
    fn text_fields(line: &str) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        let mut rest = line;
        while let Some(eq) = rest.find('=') {
            let key_start = rest[..eq].rfind([' ', '{']).map_or(0, |i| i + 1);
            let key = rest[key_start..eq].to_string();
            let after = &rest[eq + 1..];
            let (value, tail) = if let Some(q) = after.strip_prefix('"') {
                let end = q.find('"').unwrap_or(q.len());
                (q[..end].to_string(), &q[(end + 1).min(q.len())..])
            } else {
                let end = after.find([' ', '}', ':']).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            };
            fields.insert(key, value);
            rest = tail;
        }
        fields
    }

    fn json_fields(
        line: &str,
    ) -> (
        serde_json::Map<String, serde_json::Value>,
        BTreeMap<String, String>,
    ) {
        let serde_json::Value::Object(obj) =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
        else {
            panic!("not a JSON object: {line}");
        };
        let mut fields = BTreeMap::new();
        let mut collect = |m: &serde_json::Map<String, serde_json::Value>, skip: &[&str]| {
            for (k, v) in m {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                fields.insert(k.clone(), v);
            }
        };
        collect(&obj, &["timestamp", "level", "message", "spans"]);
        if let Some(spans) = obj.get("spans").and_then(|s| s.as_array()) {
            for s in spans.iter().filter_map(|s| s.as_object()) {
                collect(s, &["name"]);
            }
        }
        (obj, fields)
    }

    #[test]
    fn text_and_json_lines_carry_the_same_fields() {
        let text = lines(LogFormat::Text);
        let json = lines(LogFormat::Json);
        assert_eq!(text.len(), 2, "{text:?}");
        assert_eq!(json.len(), 2, "{json:?}");
        for (t, j) in text.iter().zip(&json) {
            let (obj, jf) = json_fields(j);
            let message = obj["message"].as_str().unwrap_or_else(|| panic!("{j}"));
            let level = obj["level"].as_str().unwrap_or_else(|| panic!("{j}"));
            assert!(t.contains(message), "text line {t:?} lacks {message:?}");
            assert!(t.contains(level), "text line {t:?} lacks {level:?}");
            assert!(obj.contains_key("timestamp"), "{j}");
            assert!(!obj.contains_key("target") && !t.contains("lb_userspace"));
            assert_eq!(text_fields(t), jf, "text {t:?} / json {j:?}");
        }
        let (_, running) = json_fields(&json[0]);
        assert_eq!(running["api"], "/run/xlb/xlb.sock");
        assert_eq!(running["writes"], "12");
        // The span's field reaches both formats.
        assert_eq!(json_fields(&json[1]).1["file"], "/etc/xlb/xlb.toml");
        assert!(
            text[1].contains("reload{file=\"/etc/xlb/xlb.toml\"}"),
            "{}",
            text[1]
        );
    }
}
