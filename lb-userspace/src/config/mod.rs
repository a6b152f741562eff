//! The daemon's config: the TOML schema, its validation, and the validated
//! model the daemon, reconciler and runtime API work with.
//!
//! Layers:
//! - [`raw`]: what the file (or an API body) says, as serde types with
//!   optional fields; also what `xlb config dump` serializes.
//! - the model ([`Config`], [`VipConfig`], ...): typed fields, defaults
//!   resolved, health check inheritance applied.
//! - validation: checks on the model that name the offending field by path
//!   (`vip[2].backend[1].address`); for a file, the path is turned into
//!   line:column through the spans of the document. The runtime API runs the
//!   same checks on the effective config it is about to apply.
//!
//! Nothing is applied from an invalid config: every entry point returns the
//! first problem, in document order, as a [`ConfigError`].
//!
//! Decisions worth knowing:
//! - a VIP without backends is valid (it drops its traffic): the API adds a
//!   VIP before its backends. A VIP whose backends all have weight 0 is not:
//!   that is almost always a mistake, and removing the backends says "drop"
//!   explicitly.
//! - backends of an encapsulating VIP (`ipip`, `gue`) may be of the other
//!   family than their VIP (IPv6 VIP, IPv4 backends): the outer header
//!   follows the backend, so only the backend's family needs an
//!   `outer_source_*`. An `l2-dsr` VIP sends the client's own packet, so its
//!   backends must be of its family (and need no outer source).
//! - a backend's `health_check` is absent (inherit the VIP's), `false`
//!   (never checked) or its own table; the model keeps both the effective
//!   check and that mode ([`HealthCheckMode`]) so dumps reproduce the file.
//! - defaults and limits are in [`limits`]; `config/xlb.example.toml`
//!   documents every key.

pub mod diff;
mod error;
pub mod limits;
mod lower;
mod model;
pub mod nat;
pub mod policy;
pub mod raw;
mod spans;
mod validate;

#[cfg(test)]
mod announce_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{line_column, AddressProblem, ConfigError, ConfigErrorKind, Location, Place};
pub(crate) use model::humantime_text;
pub use model::{
    AnnounceConfig, AnnounceMode, BackendConfig, BpfLogLevel, Config, ForwardingMode, GlobalConfig,
    Hashing, HealthCheck, HealthCheckKind, HealthCheckMode, IpFamily, IpPrefix, Protocol,
    RateLimit, SourceRateLimit, VipConfig, VipEndpoint, XdpMode,
};
use raw::{RawBackend, RawConfig, RawVip};
use serde::Deserialize;
use spans::SpanIndex;
pub use validate::check_instance_name;

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: Some(path.to_path_buf()),
            location: None,
            field: String::new(),
            kind: Box::new(ConfigErrorKind::Io { error: e.into() }),
        })?;
        Config::from_toml_str(&text, Some(path))
    }

    /// Parses and validates TOML text; `path` is only used in errors.
    pub fn from_toml_str(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = path.map(Path::to_path_buf);
        // toml::Table accepts any TOML, so its errors are syntax errors and
        // those of the typed parse below are schema errors.
        if let Err(e) = text.parse::<toml::Table>() {
            let kind = ConfigErrorKind::Syntax {
                message: one_line(e.message()),
            };
            return Err(toml_error(text, &e, kind, &SpanIndex::default(), path));
        }
        let index = SpanIndex::build(text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let kind = ConfigErrorKind::Schema {
                message: one_line(e.message()),
            };
            toml_error(text, &e, kind, &index, path.clone())
        })?;
        let locate = |field: &str| index.span_of(field).map(|s| line_column(text, s.start));
        let config = lower::config_from_raw(raw).map_err(|e| e.locate(path.clone(), locate))?;
        validate::check_config(&config).map_err(|e| e.locate(path, locate))?;
        Ok(config)
    }

    /// The config in config-file form, e.g. for `xlb config dump`: every
    /// setting written out (except a VIP name equal to its default and
    /// inherited checks), and reading it back gives an equal `Config`.
    pub fn to_toml_string(&self) -> String {
        match toml::to_string(&RawConfig::from(self)) {
            Ok(text) => text,
            // Not expected: the raw types hold only strings, integers,
            // booleans, arrays and tables, which TOML can all represent.
            Err(e) => format!("# the config could not be written as TOML: {e}\n"),
        }
    }

    /// Checks a model built or changed in code (the runtime API applies a
    /// change to a copy of the effective config and validates the copy).
    /// Errors name the field path (`vip[3].backend[0].address`) but have no
    /// location.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::check_config(self)
    }
}

/// A VIP from an API body: a `[[vip]]` table as JSON (same keys, same
/// defaults, backends included), checked on its own against `global`.
/// Error field paths are relative to the body (`backend[0].address`).
/// Checks that involve other VIPs (duplicates, capacities) happen when the
/// caller validates the resulting config.
pub fn vip_from_json(
    value: &serde_json::Value,
    global: &GlobalConfig,
) -> Result<VipConfig, ConfigError> {
    let raw = RawVip::deserialize(value).map_err(json_error)?;
    let vip = lower::vip_from_raw(raw, "")?;
    validate::check_vip(&vip, global, "")?;
    Ok(vip)
}

/// A backend from an API body: a `[[vip.backend]]` table as JSON, resolved
/// against `vip` (which check it inherits, the default check port) and
/// checked on its own and against the VIP's other backends. The family check
/// (is there an outer source for it) happens when the caller validates the
/// resulting config.
pub fn backend_from_json(
    value: &serde_json::Value,
    vip: &VipConfig,
) -> Result<BackendConfig, ConfigError> {
    let raw = RawBackend::deserialize(value).map_err(json_error)?;
    let backend = lower::backend_from_raw(raw, vip.health_check.as_ref(), vip.port, "")?;
    validate::check_backend(&backend, vip.health_check.as_ref(), "")?;
    if let Some(k) = vip
        .backends
        .iter()
        .position(|b| b.address == backend.address)
    {
        let kind = ConfigErrorKind::DuplicateBackend {
            address: backend.address,
            first: Place::at(format!("backend[{k}].address")),
        };
        return Err(ConfigError::new("address", kind));
    }
    Ok(backend)
}

fn json_error(e: serde_json::Error) -> ConfigError {
    ConfigError::new(
        "",
        ConfigErrorKind::Schema {
            message: e.to_string(),
        },
    )
}

/// An error of the toml crate, located by its own span.
fn toml_error(
    text: &str,
    e: &toml::de::Error,
    kind: ConfigErrorKind,
    index: &SpanIndex,
    path: Option<std::path::PathBuf>,
) -> ConfigError {
    let span = e.span();
    ConfigError {
        path,
        location: span.as_ref().map(|s| line_column(text, s.start)),
        field: span
            .and_then(|s| index.field_at(&s).map(str::to_string))
            .unwrap_or_default(),
        kind: Box::new(kind),
    }
}

/// toml's messages may span lines ("invalid string\nexpected ..."); errors
/// are printed on one line.
fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
