//! The `[announce]` table and the per-VIP `announce` key: defaults, values,
//! rejections located by field and line:column, and dumps that read back.

use std::time::Duration;

use super::*;

const GLOBAL: &str = "[global]
interfaces = [\"eth0\"]
outer_source_v4 = \"10.0.0.2\"
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, None)
}

fn valid(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected a valid config, got: {e}\n{text}"))
}

/// The error of `text`, checked to be at `field`, `line`:`column`.
fn rejected(text: &str, line: usize, column: usize, field: &str) -> ConfigErrorKind {
    let e = match parse(text) {
        Ok(_) => panic!("expected an error at {field}\n{text}"),
        Err(e) => e,
    };
    assert_eq!(
        (e.line(), e.column(), e.field.as_str()),
        (Some(line), Some(column), field),
        "wrong location for: {e}"
    );
    *e.kind
}

const VIP: &str = "[[vip]]
address = \"10.100.0.1\"
port = 80
";

#[test]
fn announcing_is_off_by_default_and_vips_announce_when_healthy() {
    let c = valid(&format!("{GLOBAL}{VIP}"));
    assert_eq!(c.announce, AnnounceConfig::default());
    assert!(!c.announce.enabled);
    assert_eq!(c.announce.table, limits::DEFAULT_ANNOUNCE_TABLE);
    assert_eq!(c.announce.drain_on_stop, Duration::ZERO);
    assert_eq!(c.vips[0].announce, AnnounceMode::WhenHealthy);
}

#[test]
fn every_announce_setting_is_read_and_dumped() {
    let text = format!(
        "{GLOBAL}[announce]
enabled = true
table = 100
drain_on_stop = \"2s 500ms\"
{VIP}announce = \"always\"
[[vip]]
address = \"10.100.0.2\"
port = 80
announce = \"never\"
"
    );
    let c = valid(&text);
    assert_eq!(
        c.announce,
        AnnounceConfig {
            enabled: true,
            table: 100,
            drain_on_stop: Duration::from_millis(2500),
        }
    );
    assert_eq!(
        (c.vips[0].announce, c.vips[1].announce),
        (AnnounceMode::Always, AnnounceMode::Never)
    );
    let dumped = c.to_toml_string();
    assert!(dumped.contains("[announce]"), "{dumped}");
    assert_eq!(valid(&dumped), c, "dump:\n{dumped}");
}

#[test]
fn reserved_and_out_of_range_tables_are_refused() {
    for (table, column) in [("0", 9), ("253", 9), ("254", 9), ("255", 9)] {
        let text = format!("{GLOBAL}[announce]\ntable = {table}\n");
        let kind = rejected(&text, 5, column, "announce.table");
        assert!(
            matches!(kind, ConfigErrorKind::ReservedRouteTable { .. }),
            "{table}: {kind}"
        );
        assert!(kind.to_string().contains("4242"), "{kind}");
    }
    let text = format!("{GLOBAL}[announce]\ntable = 4294967296\n");
    let kind = rejected(&text, 5, 9, "announce.table");
    assert!(matches!(kind, ConfigErrorKind::OutOfRange { .. }), "{kind}");
    // 256 and above only fit the netlink attribute, and are fine.
    assert_eq!(
        valid(&format!("{GLOBAL}[announce]\ntable = 65536\n"))
            .announce
            .table,
        65536
    );
}

#[test]
fn drain_on_stop_is_a_duration_of_at_most_ten_minutes() {
    let text = format!("{GLOBAL}[announce]\ndrain_on_stop = \"soon\"\n");
    let kind = rejected(&text, 5, 17, "announce.drain_on_stop");
    assert!(
        matches!(kind, ConfigErrorKind::InvalidDuration { .. }),
        "{kind}"
    );
    let text = format!("{GLOBAL}[announce]\ndrain_on_stop = \"11m\"\n");
    let kind = rejected(&text, 5, 17, "announce.drain_on_stop");
    assert!(
        matches!(kind, ConfigErrorKind::DurationOutOfRange { .. }),
        "{kind}"
    );
}

#[test]
fn unknown_announce_keys_and_modes_are_refused() {
    let text = format!("{GLOBAL}[announce]\nenable = true\n");
    let kind = rejected(&text, 5, 1, "announce.enable");
    assert!(matches!(kind, ConfigErrorKind::Schema { .. }), "{kind}");
    let text = format!("{GLOBAL}{VIP}announce = \"sometimes\"\n");
    let kind = rejected(&text, 7, 12, "vip[0].announce");
    assert!(
        matches!(&kind, ConfigErrorKind::Schema { message } if message.contains("when-healthy")),
        "{kind}"
    );
}

#[test]
fn an_api_vip_body_may_set_its_announce_mode() {
    let c = valid(GLOBAL);
    let body = serde_json::json!({"address": "10.100.0.9", "port": 443, "announce": "never"});
    let v = vip_from_json(&body, &c.global).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.announce, AnnounceMode::Never);
}

#[test]
fn the_example_documents_announcing() {
    let c = valid(include_str!("../../../config/xlb.example.toml"));
    assert_eq!(
        c.announce,
        AnnounceConfig {
            enabled: true,
            table: 4242,
            drain_on_stop: Duration::from_secs(2),
        }
    );
    assert_eq!(c.vips[0].announce, AnnounceMode::WhenHealthy);
}
