//! What replacing one valid config with another changes, as `xlb check
//! --diff` shows it before a reload: VIPs and backends added or removed,
//! weights and other settings changed, and the `[global]` and `[announce]`
//! settings a reload cannot change (the daemon refuses the reload; they need
//! a restart).
//!
//! Pure: two [`Config`]s in, a [`ConfigDiff`] out. Settings are compared in
//! the file's own form (the [`RawConfig`] that `xlb config dump` writes) and
//! shown as TOML values, so the diff speaks the language of the file. A VIP
//! is identified by what identifies it in the data plane, its address, port
//! and protocol: a VIP whose address changes is one VIP removed and another
//! added, a renamed one is a change of its `name`. Backends are identified by
//! address within their VIP.

use std::{fmt, net::IpAddr};

use super::{
    raw::{RawBackend, RawConfig, RawVip},
    Config, VipEndpoint,
};

/// The keys a running daemon cannot change (`section.key`): they size or
/// place the data plane (pinned maps, attachments, sockets) or own a routing
/// table. A reload that changes one is refused; `xlb down` and a new `xlb
/// run` apply it.
pub const RESTART_KEYS: &[&str] = &[
    "global.instance",
    "global.table_size",
    "global.max_vips",
    "global.max_backends",
    "global.flow_table_size",
    "global.interfaces",
    "global.xdp_mode",
    "global.egress_interfaces",
    "global.api_socket",
    "global.metrics_address",
    "global.bpf_log",
    "global.hash_seed",
    "announce.enabled",
    "announce.table",
    // The NAT session maps are created with their size at load.
    "nat.table_size",
];

/// Everything that differs between a running config and a new one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// `[global]` keys, sorted by key.
    pub global: Vec<SettingChange>,
    /// `[announce]` keys, sorted by key.
    pub announce: Vec<SettingChange>,
    /// `[nat]` keys (as their effective values: an absent `[nat]` is its
    /// defaults), sorted by key.
    pub nat: Vec<SettingChange>,
    /// Removed VIPs first (in the old config's order), then added and
    /// changed ones in the new config's order.
    pub vips: Vec<VipDiff>,
}

/// One key whose value differs; `None` = not set on that side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingChange {
    pub key: String,
    /// The old value as TOML (`"eth0"`, `65537`, `{ kind = "tcp", ... }`).
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VipDiff {
    Added {
        name: String,
        endpoint: VipEndpoint,
        /// (address, weight) of each backend.
        backends: Vec<(IpAddr, u16)>,
    },
    Removed {
        name: String,
        endpoint: VipEndpoint,
        backends: usize,
    },
    Changed {
        /// The new name.
        name: String,
        endpoint: VipEndpoint,
        /// The VIP's own keys (`name`, `hashing`, `flow_table`,
        /// `health_check`), sorted by key.
        settings: Vec<SettingChange>,
        backends: Vec<BackendDiff>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendDiff {
    Added {
        address: IpAddr,
        weight: u16,
    },
    Removed {
        address: IpAddr,
        weight: u16,
    },
    Changed {
        address: IpAddr,
        /// `(old, new)` when reweighted (a new weight of 0 drains).
        weight: Option<(u16, u16)>,
        /// Other keys (`health_check`).
        settings: Vec<SettingChange>,
    },
}

impl ConfigDiff {
    /// What replacing `old` (e.g. the running daemon's effective config)
    /// with `new` (e.g. the file a reload would read) changes.
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let (old_raw, new_raw) = (RawConfig::from(old), RawConfig::from(new));
        let global = table_changes(
            &toml_table(&old_raw.global),
            &toml_table(&new_raw.global),
            &[],
        );
        let announce = table_changes(
            &toml_table(&old_raw.announce.clone().unwrap_or_default()),
            &toml_table(&new_raw.announce.clone().unwrap_or_default()),
            &[],
        );
        let nat = table_changes(
            &toml_table(&super::nat::raw_nat(&old.nat)),
            &toml_table(&super::nat::raw_nat(&new.nat)),
            &[],
        );
        let mut vips = Vec::new();
        for o in &old.vips {
            if !new.vips.iter().any(|n| n.endpoint() == o.endpoint()) {
                vips.push(VipDiff::Removed {
                    name: o.name.clone(),
                    endpoint: o.endpoint(),
                    backends: o.backends.len(),
                });
            }
        }
        for (n, n_raw) in new.vips.iter().zip(&new_raw.vips) {
            let found = old
                .vips
                .iter()
                .zip(&old_raw.vips)
                .find(|(o, _)| o.endpoint() == n.endpoint());
            let Some((o, o_raw)) = found else {
                vips.push(VipDiff::Added {
                    name: n.name.clone(),
                    endpoint: n.endpoint(),
                    backends: n.backends.iter().map(|b| (b.address, b.weight)).collect(),
                });
                continue;
            };
            let mut settings = vip_settings(o_raw, n_raw);
            if o.name != n.name {
                settings.push(SettingChange {
                    key: "name".into(),
                    old: Some(toml_text(&o.name)),
                    new: Some(toml_text(&n.name)),
                });
                settings.sort_by(|a, b| a.key.cmp(&b.key));
            }
            let backends = backend_diffs(&o_raw.backends, &n_raw.backends);
            if !settings.is_empty() || !backends.is_empty() {
                vips.push(VipDiff::Changed {
                    name: n.name.clone(),
                    endpoint: n.endpoint(),
                    settings,
                    backends,
                });
            }
        }
        ConfigDiff {
            global,
            announce,
            nat,
            vips,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty()
            && self.announce.is_empty()
            && self.nat.is_empty()
            && self.vips.is_empty()
    }

    /// The changed `[global]` keys a reload cannot apply, in
    /// [`RESTART_KEYS`] order.
    pub fn needs_restart(&self) -> Vec<&'static str> {
        let changed = |section: &[SettingChange], prefix: &str, key: &str| {
            key.strip_prefix(prefix)
                .is_some_and(|k| section.iter().any(|c| c.key == k))
        };
        RESTART_KEYS
            .iter()
            .copied()
            .filter(|k| {
                changed(&self.global, "global.", k)
                    || changed(&self.announce, "announce.", k)
                    || changed(&self.nat, "nat.", k)
            })
            .collect()
    }
}

/// The [`RESTART_KEYS`] that differ between `old` and `new`, in that order:
/// what makes the daemon refuse a reload or API change.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let raw = |c: &Config| {
        let mut r = RawConfig::from(&Config {
            vips: Vec::new(),
            ..c.clone()
        });
        // Effective values: an absent `[nat]` is its defaults, not "unset".
        r.nat = Some(super::nat::raw_nat(&c.nat));
        toml_table(&r)
    };
    let (a, b) = (raw(old), raw(new));
    let at = |t: &toml::Table, key: &str| -> Option<toml::Value> {
        let (section, k) = key.split_once('.')?;
        t.get(section)?.as_table()?.get(k).cloned()
    };
    RESTART_KEYS
        .iter()
        .copied()
        .filter(|k| at(&a, k) != at(&b, k))
        .collect()
}

fn vip_settings(old: &RawVip, new: &RawVip) -> Vec<SettingChange> {
    // Identity is compared by the caller; the name as the model has it (the
    // raw form leaves a default name out).
    const NOT_SETTINGS: &[&str] = &["address", "port", "protocol", "backend", "name"];
    table_changes(&toml_table(old), &toml_table(new), NOT_SETTINGS)
}

fn backend_diffs(old: &[RawBackend], new: &[RawBackend]) -> Vec<BackendDiff> {
    let weight = |b: &RawBackend| b.weight.unwrap_or(super::limits::DEFAULT_WEIGHT);
    let mut out = Vec::new();
    for o in old {
        if !new.iter().any(|n| n.address == o.address) {
            out.push(BackendDiff::Removed {
                address: o.address,
                weight: weight(o),
            });
        }
    }
    for n in new {
        let Some(o) = old.iter().find(|o| o.address == n.address) else {
            out.push(BackendDiff::Added {
                address: n.address,
                weight: weight(n),
            });
            continue;
        };
        let reweighted = (weight(o) != weight(n)).then(|| (weight(o), weight(n)));
        let settings = table_changes(&toml_table(o), &toml_table(n), &["address", "weight"]);
        if reweighted.is_some() || !settings.is_empty() {
            out.push(BackendDiff::Changed {
                address: n.address,
                weight: reweighted,
                settings,
            });
        }
    }
    out
}

/// `value` as a TOML table (the raw types are tables of TOML-representable
/// values; anything else yields an empty table, which cannot happen).
fn toml_table<T: serde::Serialize>(value: &T) -> toml::Table {
    match toml::Value::try_from(value) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

fn toml_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    toml::Value::try_from(value).map_or_else(|e| format!("<{e}>"), |v| v.to_string())
}

/// The keys of `old` and `new` (but `skip`) whose values differ, by key.
fn table_changes(old: &toml::Table, new: &toml::Table, skip: &[&str]) -> Vec<SettingChange> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| SettingChange {
            key: k.clone(),
            old: old.get(k).map(toml::Value::to_string),
            new: new.get(k).map(toml::Value::to_string),
        })
        .collect()
}

impl fmt::Display for SettingChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unset = "(not set)";
        write!(
            f,
            "{}: {} -> {}",
            self.key,
            self.old.as_deref().unwrap_or(unset),
            self.new.as_deref().unwrap_or(unset)
        )
    }
}

/// One line per change: `+` added, `-` removed, `~` changed, `!` a global
/// setting a reload cannot change.
impl fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        let restart = self.needs_restart();
        for (section, changes) in [
            ("global", &self.global),
            ("announce", &self.announce),
            ("nat", &self.nat),
        ] {
            for c in changes {
                let key = format!("{section}.{}", c.key);
                let mark = if restart.contains(&key.as_str()) {
                    "!"
                } else {
                    "~"
                };
                write!(f, "{mark} {section}.{c}")?;
                if mark == "!" {
                    write!(f, " (needs a restart)")?;
                }
                writeln!(f)?;
            }
        }
        for v in &self.vips {
            match v {
                VipDiff::Added {
                    name,
                    endpoint,
                    backends,
                } => {
                    writeln!(f, "+ vip {name} ({endpoint})")?;
                    for (address, weight) in backends {
                        writeln!(f, "    + backend {address} weight {weight}")?;
                    }
                }
                VipDiff::Removed {
                    name,
                    endpoint,
                    backends,
                } => writeln!(
                    f,
                    "- vip {name} ({endpoint}) with its {backends} backend(s)"
                )?,
                VipDiff::Changed {
                    name,
                    endpoint,
                    settings,
                    backends,
                } => {
                    writeln!(f, "~ vip {name} ({endpoint})")?;
                    for s in settings {
                        writeln!(f, "    ~ {s}")?;
                    }
                    for b in backends {
                        write_backend(f, b)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn write_backend(f: &mut fmt::Formatter<'_>, b: &BackendDiff) -> fmt::Result {
    match b {
        BackendDiff::Added { address, weight } => {
            writeln!(f, "    + backend {address} weight {weight}")
        }
        BackendDiff::Removed { address, weight } => {
            writeln!(f, "    - backend {address} (weight {weight})")
        }
        BackendDiff::Changed {
            address,
            weight,
            settings,
        } => {
            if let Some((old, new)) = weight {
                let drain = if *new == 0 { " (drain)" } else { "" };
                writeln!(f, "    ~ backend {address} weight {old} -> {new}{drain}")?;
            }
            for s in settings {
                writeln!(f, "    ~ backend {address} {s}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[global]
interfaces = ["eth0"]
outer_source_v4 = "10.0.0.2"

[[vip]]
name = "web"
address = "10.100.0.1"
port = 80
  [vip.health_check]
  kind = "tcp"
  [[vip.backend]]
  address = "10.0.0.11"
  weight = 100
  [[vip.backend]]
  address = "10.0.0.12"
  weight = 200

[[vip]]
address = "10.100.0.1"
port = 53
protocol = "udp"
  [[vip.backend]]
  address = "10.0.0.21"
"#;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text, None).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn diff(old: &str, new: &str) -> ConfigDiff {
        ConfigDiff::between(&config(old), &config(new))
    }

    fn endpoint(s: &str) -> VipEndpoint {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn identical_configs_have_no_changes() {
        let d = diff(BASE, BASE);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.to_string(), "no changes\n");
    }

    #[test]
    fn a_config_equals_its_own_dump() {
        // `xlb check --diff` compares the file with the daemon's dump.
        let c = config(BASE);
        let dumped = config(&c.to_toml_string());
        assert!(ConfigDiff::between(&dumped, &c).is_empty());
    }

    #[test]
    fn backends_added_removed_and_reweighted() {
        let new = BASE
            .replace(
                "address = \"10.0.0.11\"\n  weight = 100",
                "address = \"10.0.0.13\"\n  weight = 50",
            )
            .replace("weight = 200", "weight = 0");
        let d = diff(BASE, &new);
        assert!(d.global.is_empty());
        assert_eq!(
            d.vips,
            [VipDiff::Changed {
                name: "web".into(),
                endpoint: endpoint("10.100.0.1:80/tcp"),
                settings: vec![],
                backends: vec![
                    BackendDiff::Removed {
                        address: ip("10.0.0.11"),
                        weight: 100
                    },
                    BackendDiff::Added {
                        address: ip("10.0.0.13"),
                        weight: 50
                    },
                    BackendDiff::Changed {
                        address: ip("10.0.0.12"),
                        weight: Some((200, 0)),
                        settings: vec![]
                    },
                ],
            }]
        );
        assert_eq!(
            d.to_string(),
            "~ vip web (10.100.0.1:80/tcp)\n    - backend 10.0.0.11 (weight 100)\n    \
             + backend 10.0.0.13 weight 50\n    ~ backend 10.0.0.12 weight 200 -> 0 (drain)\n"
        );
        assert!(d.needs_restart().is_empty());
    }

    #[test]
    fn vips_added_and_removed_by_endpoint() {
        // The UDP VIP moves to another address: removed and added; a new
        // VIP appears.
        let new = format!(
            "{}\n[[vip]]\nname = \"extra\"\naddress = \"10.100.0.9\"\nport = 443\n  \
             [[vip.backend]]\n  address = \"10.0.0.31\"\n  weight = 7\n",
            BASE.replace(
                "address = \"10.100.0.1\"\nport = 53",
                "address = \"10.100.0.2\"\nport = 53"
            )
        );
        let d = diff(BASE, &new);
        assert_eq!(
            d.vips,
            [
                VipDiff::Removed {
                    name: "10.100.0.1:53/udp".into(),
                    endpoint: endpoint("10.100.0.1:53/udp"),
                    backends: 1
                },
                VipDiff::Added {
                    name: "10.100.0.2:53/udp".into(),
                    endpoint: endpoint("10.100.0.2:53/udp"),
                    backends: vec![(ip("10.0.0.21"), 100)]
                },
                VipDiff::Added {
                    name: "extra".into(),
                    endpoint: endpoint("10.100.0.9:443/tcp"),
                    backends: vec![(ip("10.0.0.31"), 7)]
                },
            ]
        );
        let text = d.to_string();
        assert!(
            text.starts_with("- vip 10.100.0.1:53/udp (10.100.0.1:53/udp) with its 1 backend(s)\n"),
            "{text}"
        );
        assert!(
            text.ends_with("+ vip extra (10.100.0.9:443/tcp)\n    + backend 10.0.0.31 weight 7\n"),
            "{text}"
        );
    }

    #[test]
    fn vip_settings_and_rename_are_changes_of_the_same_vip() {
        let new = BASE
            .replace("name = \"web\"", "name = \"www\"\nhashing = \"source-ip\"")
            .replace("  [vip.health_check]\n  kind = \"tcp\"\n", "");
        let d = diff(BASE, &new);
        let [VipDiff::Changed {
            name,
            settings,
            backends,
            ..
        }] = d.vips.as_slice()
        else {
            panic!("{d:?}");
        };
        assert_eq!(name, "www");
        assert!(
            backends.is_empty(),
            "inherited checks follow the VIP's: {backends:?}"
        );
        let keys: Vec<&str> = settings.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["hashing", "health_check", "name"]);
        assert_eq!(
            settings[0].to_string(),
            "hashing: \"five-tuple\" -> \"source-ip\""
        );
        assert_eq!(settings[1].new, None);
        assert!(
            settings[1]
                .old
                .as_deref()
                .is_some_and(|o| o.contains("kind = \"tcp\"")),
            "{:?}",
            settings[1]
        );
        assert_eq!(settings[2].to_string(), "name: \"web\" -> \"www\"");
    }

    #[test]
    fn a_backend_check_of_its_own_is_a_backend_setting() {
        let new = BASE.replace(
            "address = \"10.0.0.21\"\n",
            "address = \"10.0.0.21\"\n  health_check = false\n",
        );
        let d = diff(BASE, &new);
        let text = d.to_string();
        assert_eq!(
            text,
            "~ vip 10.100.0.1:53/udp (10.100.0.1:53/udp)\n    \
             ~ backend 10.0.0.21 health_check: (not set) -> false\n"
        );
    }

    #[test]
    fn global_changes_say_which_need_a_restart() {
        let new = BASE.replace(
            "outer_source_v4 = \"10.0.0.2\"",
            "outer_source_v4 = \"10.0.0.3\"\ntable_size = 131071",
        );
        let d = diff(BASE, &new);
        assert_eq!(
            d.global,
            [
                SettingChange {
                    key: "outer_source_v4".into(),
                    old: Some("\"10.0.0.2\"".into()),
                    new: Some("\"10.0.0.3\"".into())
                },
                SettingChange {
                    key: "table_size".into(),
                    old: Some("65537".into()),
                    new: Some("131071".into())
                },
            ]
        );
        assert_eq!(d.needs_restart(), ["global.table_size"]);
        assert_eq!(
            d.to_string(),
            "~ global.outer_source_v4: \"10.0.0.2\" -> \"10.0.0.3\"\n\
             ! global.table_size: 65537 -> 131071 (needs a restart)\n"
        );
    }

    /// Turning NAT on by reload (a `[nat]` table with sources, the default
    /// map size) needs no restart: an absent `[nat]` is its defaults.
    #[test]
    fn enabling_nat_with_the_default_size_is_a_reload() {
        let base = config(BASE);
        let mut with_nat = base.clone();
        with_nat.nat.sources = vec!["10.0.0.5".parse().unwrap_or_else(|e| panic!("{e}"))];
        assert!(restart_needed(&base, &with_nat).is_empty());
        let d = ConfigDiff::between(&base, &with_nat);
        assert!(d.needs_restart().is_empty(), "{d}");
        assert_eq!(d.nat.len(), 1, "{d:?}");
        assert_eq!(d.nat[0].key, "sources");
    }

    #[test]
    fn every_restart_key_is_a_config_key_and_detected() {
        let mut base = config(BASE);
        // Optional keys appear in the file form only when set.
        base.global.hash_seed = Some(7);
        base.nat.sources = vec!["10.0.0.5".parse().unwrap_or_else(|e| panic!("{e}"))];
        let raw = toml_table(&RawConfig::from(&base));
        for key in RESTART_KEYS {
            let (section, k) = key.split_once('.').unwrap_or_else(|| panic!("{key}"));
            assert!(
                raw.get(section)
                    .and_then(|t| t.as_table())
                    .is_some_and(|t| t.contains_key(k)),
                "{key} is not a key of the config"
            );
        }
        let mut changed = base.clone();
        changed.global.interfaces.push("eth1".into());
        changed.global.metrics_address = "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}"));
        changed.global.outer_source_v6 = Some("fd00::2".parse().unwrap_or_else(|e| panic!("{e}")));
        changed.announce.table = 4243;
        changed.announce.drain_on_stop = std::time::Duration::from_secs(3);
        changed.nat.table_size = base.nat.table_size * 2;
        changed.nat.port_min = 2000;
        assert_eq!(
            restart_needed(&base, &changed),
            [
                "global.interfaces",
                "global.metrics_address",
                "announce.table",
                "nat.table_size"
            ]
        );
        assert!(restart_needed(&base, &base).is_empty());
        let d = ConfigDiff::between(&base, &changed);
        assert_eq!(
            d.needs_restart(),
            [
                "global.interfaces",
                "global.metrics_address",
                "announce.table",
                "nat.table_size"
            ]
        );
        assert!(d.announce.iter().any(|c| c.key == "drain_on_stop"), "{d:?}");
        // The NAT ports apply on reload; the diff shows them, unflagged.
        assert!(d.nat.iter().any(|c| c.key == "ports"), "{d:?}");
        assert!(d.to_string().contains("~ nat.ports"), "{d}");
        assert!(d.to_string().contains("! nat.table_size"), "{d}");
    }
}
