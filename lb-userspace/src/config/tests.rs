//! Every rejection is asserted by variant, field path and line:column (the
//! numbers are counted by hand from the test text: value spans for values,
//! the header for tables).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    time::Duration,
};

use proptest::prelude::*;

use super::*;

const EXAMPLE: &str = include_str!("../../../config/xlb.example.toml");

/// Four lines; tests append from line 5 (still inside `[global]`).
const GLOBAL: &str = "[global]
interfaces = [\"eth0\"]
outer_source_v4 = \"10.0.0.2\"
outer_source_v6 = \"fd00::2\"
";

fn with_global(rest: &str) -> String {
    format!("{GLOBAL}{rest}")
}

fn parse(text: &str) -> Config {
    match Config::from_toml_str(text, None) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got: {e}\n{text}"),
    }
}

/// Parses `text`, expecting an error at `field` and `line`:`column`.
fn rejected(text: &str, line: usize, column: usize, field: &str) -> ConfigErrorKind {
    let e = match Config::from_toml_str(text, None) {
        Ok(_) => panic!("expected an error at {field} ({line}:{column})\n{text}"),
        Err(e) => e,
    };
    assert_eq!(
        (e.line(), e.column(), e.field.as_str()),
        (Some(line), Some(column), field),
        "wrong location for: {e}"
    );
    *e.kind
}

fn loc(line: usize, column: usize) -> Option<Location> {
    Some(Location { line, column })
}

// ---------------------------------------------------------------------------
// line:column
// ---------------------------------------------------------------------------

#[test]
fn line_column_counts_lines_and_characters() {
    let text = "ab\ncdé\r\nxyz";
    assert_eq!(line_column(text, 0), Location { line: 1, column: 1 });
    assert_eq!(line_column(text, 2), Location { line: 1, column: 3 });
    assert_eq!(line_column(text, 3), Location { line: 2, column: 1 });
    // 'é' is two bytes but one column.
    let x = text.find('x').unwrap_or_default();
    assert_eq!(line_column(text, x), Location { line: 3, column: 1 });
    let r = text.find('\r').unwrap_or_default();
    assert_eq!(line_column(text, r), Location { line: 2, column: 4 });
    // Inside 'é': clamped to its start; past the end: clamped to the end.
    assert_eq!(line_column(text, 6), Location { line: 2, column: 3 });
    assert_eq!(line_column(text, 999), Location { line: 3, column: 4 });
    assert_eq!(line_column("", 0), Location { line: 1, column: 1 });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Against a naive character walk.
    #[test]
    fn line_column_matches_a_naive_walk(text in "[a-zé\n]{0,40}", at in 0usize..50) {
        let mut expected = Location { line: 1, column: 1 };
        // Characters that end at or before `at` (an offset inside a
        // character counts from its start).
        for (i, c) in text.char_indices() {
            if i + c.len_utf8() > at {
                break;
            }
            if c == '\n' {
                expected = Location { line: expected.line + 1, column: 1 };
            } else {
                expected.column += 1;
            }
        }
        prop_assert_eq!(line_column(&text, at), expected);
    }
}

// ---------------------------------------------------------------------------
// Parsing, defaults, inheritance, dump
// ---------------------------------------------------------------------------

#[test]
fn example_parses_with_every_field() {
    let c = parse(EXAMPLE);
    let g = &c.global;
    assert_eq!(g.instance, "default");
    assert_eq!(g.interfaces, ["eth0", "eth1"]);
    assert_eq!(g.egress_interfaces, ["bond0"]);
    assert_eq!(g.outer_source_v4, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(g.bpf_log, BpfLogLevel::Off);
    assert_eq!(g.outer_ttl, 64);
    assert_eq!(c.vips.len(), 3);

    let web = &c.vips[0];
    assert_eq!(web.name, "web");
    let default = web.health_check.clone();
    assert_eq!(
        default.as_ref().map(|h| &h.kind),
        Some(&HealthCheckKind::Http {
            path: "/healthz".into(),
            expected_status: 200,
            host: Some("web.example.com".into()),
        })
    );
    let [inherits, own, disabled] = &web.backends[..] else {
        panic!("three backends expected");
    };
    assert_eq!(inherits.health_check, default);
    assert_eq!(inherits.health_check_mode, HealthCheckMode::Inherit);
    assert_eq!(own.health_check_mode, HealthCheckMode::Custom);
    assert_eq!(own.health_check.as_ref().map(|h| h.port), Some(80));
    assert_eq!((disabled.weight, &disabled.health_check), (0, &None));

    let dns = &c.vips[1];
    assert_eq!(dns.address.to_string(), "2001:db8::53");
    assert!(dns.address.is_ipv6() && dns.backends[0].address.is_ipv4());
    assert_eq!(
        (dns.protocol, dns.hashing, dns.flow_table),
        (Protocol::Udp, Hashing::SourceIp, false)
    );
    let quic = &c.vips[2];
    assert_eq!(
        (quic.protocol, quic.udp_idle_timeout),
        (Protocol::Udp, Duration::from_secs(30))
    );
    assert_eq!(c.global.gue_port, 6080);
    assert_eq!(web.forwarding, ForwardingMode::Ipip);
    assert_eq!(
        (quic.forwarding, quic.gue_port),
        (ForwardingMode::Gue, Some(6081))
    );
}

#[test]
fn example_round_trips_through_dump() {
    let c = parse(EXAMPLE);
    let dumped = c.to_toml_string();
    assert_eq!(parse(&dumped), c, "dump:\n{dumped}");
}

#[test]
fn defaults_are_applied() {
    let c = parse(&with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
",
    ));
    let g = &c.global;
    assert_eq!(g.instance, limits::DEFAULT_INSTANCE);
    assert_eq!(g.xdp_mode, XdpMode::Native);
    assert!(g.egress_interfaces.is_empty());
    assert_eq!(
        (g.table_size, g.flow_table_size, g.max_vips, g.max_backends),
        (65537, 262_144, 64, 4096)
    );
    assert_eq!(g.api_socket, Path::new("/run/xlb/xlb.sock"));
    assert_eq!(g.metrics_address.to_string(), "127.0.0.1:9431");
    assert_eq!(g.bpf_log, BpfLogLevel::Off);
    assert_eq!(g.outer_ttl, 64);
    let v = &c.vips[0];
    assert_eq!(v.name, "10.100.0.1:80/tcp");
    assert_eq!(
        (v.protocol, v.hashing, v.flow_table),
        (Protocol::Tcp, Hashing::FiveTuple, true)
    );
    assert_eq!(v.udp_idle_timeout, Duration::from_secs(30));
    assert_eq!(v.health_check, None);
    assert_eq!(v.backends[0].weight, 100);
    assert_eq!(v.backends[0].health_check, None);
    assert_eq!(v.backends[0].health_check_mode, HealthCheckMode::Inherit);
}

#[test]
fn health_check_defaults_inheritance_override_and_disable() {
    let c = parse(&with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 443
health_check = { kind = \"http\" }
[[vip.backend]]
address = \"10.0.0.11\"
[[vip.backend]]
address = \"10.0.0.12\"
health_check = { interval = \"10s\", timeout = \"3s\", rise = 1, fall = 5, port = 8443 }
[[vip.backend]]
address = \"10.0.0.13\"
health_check = false
",
    ));
    let v = &c.vips[0];
    let default = HealthCheck {
        kind: HealthCheckKind::Http {
            path: "/".into(),
            expected_status: 200,
            host: None,
        },
        port: 443,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
    };
    assert_eq!(v.health_check.as_ref(), Some(&default));
    assert_eq!(v.backends[0].health_check.as_ref(), Some(&default));
    let own = HealthCheck {
        kind: HealthCheckKind::Tcp,
        port: 8443,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(3),
        rise: 1,
        fall: 5,
    };
    assert_eq!(v.backends[1].health_check.as_ref(), Some(&own));
    assert_eq!(v.backends[2].health_check, None);
    assert_eq!(v.backends[2].health_check_mode, HealthCheckMode::Disabled);
    // The dump keeps the three forms apart.
    let dumped = c.to_toml_string();
    assert_eq!(parse(&dumped), c, "dump:\n{dumped}");
    assert!(dumped.contains("health_check = false"), "{dumped}");
}

#[test]
fn backend_check_port_defaults_to_the_vip_port() {
    let c = parse(&with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 25
[[vip.backend]]
address = \"10.0.0.11\"
health_check = {}
",
    ));
    assert_eq!(
        c.vips[0].backends[0].health_check.as_ref().map(|h| h.port),
        Some(25)
    );
}

#[test]
fn ipv6_vip_with_ipv4_backends_needs_only_the_v4_source() {
    let text = "[global]
interfaces = [\"eth0\"]
outer_source_v4 = \"10.0.0.2\"
[[vip]]
address = \"2001:db8::1\"
port = 443
[[vip.backend]]
address = \"10.0.0.11\"
";
    let c = parse(text);
    assert_eq!(c.vips[0].name, "[2001:db8::1]:443/tcp");
    assert_eq!(c.global.outer_source_v6, None);
}

#[test]
fn a_vip_without_backends_is_valid() {
    let c = parse(&with_global(
        "[[vip]]\naddress = \"10.100.0.1\"\nport = 0\n",
    ));
    assert!(c.vips[0].backends.is_empty());
}

#[test]
fn round_trip_keeps_default_names_implicit_and_custom_names() {
    let c = parse(&with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip]]
name = \"api\"
address = \"fd00:100::1\"
port = 0
protocol = \"udp\"
health_check = { port = 53 }
[[vip.backend]]
address = \"fd00::10\"
weight = 7
",
    ));
    let dumped = c.to_toml_string();
    assert_eq!(parse(&dumped), c, "dump:\n{dumped}");
    assert_eq!(dumped.matches("name = ").count(), 1, "{dumped}");
}

#[test]
fn from_file_reads_and_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("xlb.toml");
    std::fs::write(&path, with_global("table_size = 4\n")).unwrap_or_else(|e| panic!("{e}"));
    let e = match Config::from_file(&path) {
        Err(e) => e,
        Ok(_) => panic!("table_size 4 accepted"),
    };
    assert_eq!(e.path.as_deref(), Some(path.as_path()));
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5:14: global.table_size: table size 4 is not a prime (the next prime is 5)",
            path.display()
        )
    );

    std::fs::write(&path, EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert!(Config::from_file(&path).is_ok());

    let missing = dir.path().join("missing.toml");
    let e = match Config::from_file(&missing) {
        Err(e) => e,
        Ok(_) => panic!("a missing file parsed"),
    };
    assert!(matches!(*e.kind, ConfigErrorKind::Io { .. }), "{e}");
    assert_eq!(
        (e.path.as_deref(), e.location),
        (Some(missing.as_path()), None)
    );
}

#[test]
fn model_serializes_to_json_with_humantime_durations() {
    let c = parse(EXAMPLE);
    let json = serde_json::to_value(&c).unwrap_or_default();
    let web = &json["vips"][0];
    assert_eq!(web["hashing"], "five-tuple");
    assert_eq!(web["health_check"]["interval"], "2s");
    assert_eq!(web["health_check"]["kind"]["http"]["path"], "/healthz");
    assert_eq!(web["backends"][1]["health_check_mode"], "custom");
    assert_eq!(json["global"]["xdp_mode"], "native");
    assert_eq!(json["vips"][1]["health_check"]["timeout"], "500ms");
    let back: Config = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, c);
}

#[test]
fn vip_endpoint_text_round_trips() {
    for text in ["10.0.0.1:80/tcp", "[2001:db8::1]:0/udp"] {
        let e: VipEndpoint = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.to_string(), text);
    }
    assert!("10.0.0.1:80".parse::<VipEndpoint>().is_err());
    assert!("10.0.0.1:80/sctp".parse::<VipEndpoint>().is_err());
}

// ---------------------------------------------------------------------------
// TOML syntax and schema errors (the toml crate's spans)
// ---------------------------------------------------------------------------

#[test]
fn syntax_error() {
    let kind = rejected(&with_global("max_vips = 1 2\n"), 5, 14, "");
    assert!(matches!(kind, ConfigErrorKind::Syntax { .. }), "{kind}");
}

#[test]
fn unknown_field_is_located_at_its_key() {
    let kind = rejected(&with_global("max_vip = 4\n"), 5, 1, "global.max_vip");
    assert!(
        matches!(&kind, ConfigErrorKind::Schema { message } if message.starts_with("unknown field `max_vip`")),
        "{kind}"
    );
    let text = with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
health_check = { kind = \"tcp\", intervall = \"1s\" }
",
    );
    let kind = rejected(&text, 10, 32, "vip[0].backend[0].health_check.intervall");
    assert!(matches!(kind, ConfigErrorKind::Schema { .. }), "{kind}");
}

#[test]
fn wrong_types_and_values_are_located_at_the_value() {
    let vip = |line: &str| with_global(&format!("[[vip]]\naddress = \"10.100.0.1\"\n{line}\n"));
    let cases = [
        (vip("port = \"80\""), 7, 8, "vip[0].port"),
        (vip("port = 70000"), 7, 8, "vip[0].port"),
        (
            vip("port = 80\nprotocol = \"sctp\""),
            8,
            12,
            "vip[0].protocol",
        ),
        (
            vip("port = 80\nhashing = \"round-robin\""),
            8,
            11,
            "vip[0].hashing",
        ),
        (
            with_global("bpf_log = \"verbose\"\n"),
            5,
            11,
            "global.bpf_log",
        ),
        (
            with_global("xdp_mode = \"driver\"\n"),
            5,
            12,
            "global.xdp_mode",
        ),
        (
            with_global("metrics_address = \"localhost\"\n"),
            5,
            19,
            "global.metrics_address",
        ),
        (with_global("table_size = -1\n"), 5, 14, "global.table_size"),
    ];
    for (text, line, column, field) in cases {
        let kind = rejected(&text, line, column, field);
        assert!(matches!(kind, ConfigErrorKind::Schema { .. }), "{kind}");
    }
}

#[test]
fn malformed_addresses_and_weights() {
    let text = with_global(
        "[[vip]]
address = \"10.100.0.300\"
port = 80
",
    );
    let kind = rejected(&text, 6, 11, "vip[0].address");
    assert!(
        matches!(&kind, ConfigErrorKind::Schema { message } if message.contains("invalid IP address")),
        "{kind}"
    );
    let text = with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
weight = 65536
",
    );
    let kind = rejected(&text, 10, 10, "vip[0].backend[0].weight");
    assert!(matches!(kind, ConfigErrorKind::Schema { .. }), "{kind}");
}

#[test]
fn missing_required_fields_point_at_their_table() {
    let kind = rejected("[global]\ninstance = \"a\"\n", 1, 1, "global");
    assert!(
        matches!(&kind, ConfigErrorKind::Schema { message } if message.contains("missing field `interfaces`")),
        "{kind}"
    );
    let text = with_global("[[vip]]\naddress = \"10.100.0.1\"\nport = 80\n[[vip]]\nport = 81\n");
    let kind = rejected(&text, 8, 1, "vip[1]");
    assert!(
        matches!(&kind, ConfigErrorKind::Schema { message } if message.contains("missing field `address`")),
        "{kind}"
    );
}

#[test]
fn backend_health_check_true_is_refused() {
    let text = with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
health_check = true
",
    );
    let kind = rejected(&text, 10, 16, "vip[0].backend[0].health_check");
    assert!(
        matches!(&kind, ConfigErrorKind::Schema { message } if message.contains("`false` or a health check table")),
        "{kind}"
    );
}

/// The span index cannot read datetimes (toml hands them over as a private
/// map), so the field path is unknown; the location still comes from toml.
#[test]
fn a_datetime_value_is_an_error_not_a_panic() {
    let kind = rejected(&with_global("instance = 1979-05-27\n"), 5, 12, "");
    assert!(matches!(kind, ConfigErrorKind::Schema { .. }), "{kind}");
}

// ---------------------------------------------------------------------------
// Global settings
// ---------------------------------------------------------------------------

#[test]
fn instance_name() {
    for bad in [
        "\"\"",
        "\"a/b\"",
        "\"a.b\"",
        "\"x123456789012345678901234567890123\"",
    ] {
        let kind = rejected(
            &with_global(&format!("instance = {bad}\n")),
            5,
            12,
            "global.instance",
        );
        assert!(
            matches!(kind, ConfigErrorKind::InvalidInstance { .. }),
            "{kind}"
        );
    }
    parse(&with_global("instance = \"edge-1_b\"\n"));
}

#[test]
fn interfaces_required_and_non_empty() {
    let text = "[global]\ninterfaces = []\n";
    let kind = rejected(text, 2, 14, "global.interfaces");
    assert!(matches!(kind, ConfigErrorKind::NoInterfaces), "{kind}");
}

#[test]
fn interface_names() {
    let cases = [
        ("\"\"", "empty"),
        ("\"abcdefghijklmnop\"", "longer than 15"),
        ("\"eth0:1\"", "':'"),
        ("\"a/b\"", "'/'"),
        ("\"et h0\"", "whitespace"),
        ("\"..\"", "'..'"),
    ];
    for (name, reason_part) in cases {
        let text = format!("[global]\ninterfaces = [\"eth0\", {name}]\n");
        let kind = rejected(&text, 2, 23, "global.interfaces[1]");
        assert!(
            matches!(&kind, ConfigErrorKind::InvalidInterfaceName { reason, .. } if reason.contains(reason_part)),
            "{name}: {kind}"
        );
    }
    parse("[global]\ninterfaces = [\"abcdefghijklmno\", \"veth-0.1@x\"]\n");
}

#[test]
fn duplicate_interface_names_the_first() {
    let text = "[global]\ninterfaces = [\"eth0\", \"eth1\"]\negress_interfaces = [\"eth1\"]\n";
    let kind = rejected(text, 3, 22, "global.egress_interfaces[0]");
    match kind {
        ConfigErrorKind::DuplicateInterface { name, first } => {
            assert_eq!(name, "eth1");
            assert_eq!(
                first,
                Place {
                    field: "global.interfaces[1]".into(),
                    location: loc(2, 23)
                }
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn too_many_interfaces() {
    let names: Vec<String> = (0..65).map(|i| format!("\"e{i:02}\"")).collect();
    let text = format!("[global]\ninterfaces = [{}]\n", names.join(","));
    // Each entry is `"eNN",` = 6 characters, from column 15.
    let kind = rejected(&text, 2, 15 + 64 * 6, "global.interfaces[64]");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::TooManyInterfaces { count: 65, max: 64 }
        ),
        "{kind}"
    );
}

#[test]
fn outer_source_family() {
    let text = "[global]\ninterfaces = [\"eth0\"]\nouter_source_v4 = \"fd00::2\"\n";
    let kind = rejected(text, 3, 19, "global.outer_source_v4");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::OuterSourceFamily {
                expected: IpFamily::V4,
                ..
            }
        ),
        "{kind}"
    );
    let text = "[global]\ninterfaces = [\"eth0\"]\nouter_source_v6 = \"10.0.0.2\"\n";
    let kind = rejected(text, 3, 19, "global.outer_source_v6");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::OuterSourceFamily {
                expected: IpFamily::V6,
                ..
            }
        ),
        "{kind}"
    );
}

#[test]
fn outer_source_must_be_usable() {
    let text = "[global]\ninterfaces = [\"eth0\"]\nouter_source_v4 = \"0.0.0.0\"\n";
    let kind = rejected(text, 3, 19, "global.outer_source_v4");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::UnusableAddress {
                problem: AddressProblem::Unspecified,
                ..
            }
        ),
        "{kind}"
    );
}

#[test]
fn table_size_range_and_primality() {
    for size in ["1", "16777216", "5000000000"] {
        let kind = rejected(
            &with_global(&format!("table_size = {size}\n")),
            5,
            14,
            "global.table_size",
        );
        assert!(
            matches!(
                kind,
                ConfigErrorKind::TableSizeOutOfRange {
                    min: 2,
                    max: 16_777_213,
                    ..
                }
            ),
            "{size}: {kind}"
        );
    }
    let kind = rejected(
        &with_global("table_size = 65536\n"),
        5,
        14,
        "global.table_size",
    );
    assert!(
        matches!(
            kind,
            ConfigErrorKind::TableSizeNotPrime {
                size: 65536,
                next_prime: Some(65537)
            }
        ),
        "{kind}"
    );
    parse(&with_global("table_size = 7\nmax_vips = 1\n"));
    // 16 x 16_777_213 x 4 bytes is just under the 1 GiB limit.
    parse(&with_global("table_size = 16777213\nmax_vips = 16\n"));
}

#[test]
fn numeric_ranges() {
    let cases = [
        ("outer_ttl = 0", 13, "global.outer_ttl", 0),
        ("outer_ttl = 256", 13, "global.outer_ttl", 256),
        ("flow_table_size = 1023", 19, "global.flow_table_size", 1023),
        (
            "flow_table_size = 67108865",
            19,
            "global.flow_table_size",
            67_108_865,
        ),
        ("max_vips = 0", 12, "global.max_vips", 0),
        ("max_vips = 4097", 12, "global.max_vips", 4097),
        ("max_backends = 1", 16, "global.max_backends", 1),
        (
            "max_backends = 1048577",
            16,
            "global.max_backends",
            1_048_577,
        ),
        (
            "max_backends = 99999999999",
            16,
            "global.max_backends",
            99_999_999_999,
        ),
    ];
    for (line, column, field, value) in cases {
        let kind = rejected(&with_global(&format!("{line}\n")), 5, column, field);
        assert!(
            matches!(kind, ConfigErrorKind::OutOfRange { value: v, .. } if v == value),
            "{line}: {kind}"
        );
    }
}

#[test]
fn outer_ttl_is_configurable_from_1_to_255() {
    for ttl in [1u8, 32, 255] {
        let c = parse(&with_global(&format!("outer_ttl = {ttl}\n")));
        assert_eq!(c.global.outer_ttl, ttl);
        assert_eq!(parse(&c.to_toml_string()), c, "round trip");
    }
    let kind = rejected(&with_global("outer_ttl = -1\n"), 5, 13, "global.outer_ttl");
    assert!(matches!(kind, ConfigErrorKind::Schema { .. }), "{kind}");
}

const UDP_VIP: &str = "[[vip]]\naddress = \"10.100.0.1\"\nport = 53\nprotocol = \"udp\"\n";

#[test]
fn udp_idle_timeout_is_a_duration_of_udp_vips() {
    let c = parse(&with_global(&format!(
        "{UDP_VIP}udp_idle_timeout = \"2m 30s\"\n"
    )));
    assert_eq!(c.vips[0].udp_idle_timeout, Duration::from_secs(150));
    assert_eq!(parse(&c.to_toml_string()), c, "round trip");
    assert!(
        c.to_toml_string().contains("udp_idle_timeout = \"2m 30s\""),
        "{}",
        c.to_toml_string()
    );
    let c = parse(&with_global(UDP_VIP));
    assert_eq!(c.vips[0].udp_idle_timeout, limits::DEFAULT_UDP_IDLE_TIMEOUT);
    // A TCP VIP's dump does not write the key (it would be refused).
    let tcp = parse(&with_global(
        "[[vip]]\naddress = \"10.100.0.1\"\nport = 80\n",
    ));
    assert!(!tcp.to_toml_string().contains("udp_idle_timeout"));
    assert_eq!(parse(&tcp.to_toml_string()), tcp);
}

#[test]
fn udp_idle_timeout_errors() {
    // Lines 5-8 are the VIP; the key is line 9, its value at column 20.
    for (value, kind_is) in [
        ("\"500ms\"", "range"),
        ("\"2d\"", "range"),
        ("\"soon\"", "invalid"),
    ] {
        let kind = rejected(
            &with_global(&format!("{UDP_VIP}udp_idle_timeout = {value}\n")),
            9,
            20,
            "vip[0].udp_idle_timeout",
        );
        let ok = match kind_is {
            "range" => matches!(kind, ConfigErrorKind::DurationOutOfRange { .. }),
            _ => matches!(kind, ConfigErrorKind::InvalidDuration { .. }),
        };
        assert!(ok, "{value}: {kind}");
    }
    let kind = rejected(
        &with_global("[[vip]]\naddress = \"10.100.0.1\"\nport = 80\nudp_idle_timeout = \"10s\"\n"),
        8,
        20,
        "vip[0].udp_idle_timeout",
    );
    assert!(
        matches!(kind, ConfigErrorKind::UdpIdleTimeoutOnTcpVip),
        "{kind}"
    );
    assert!(
        kind.to_string().contains("only applies to udp vips"),
        "{kind}"
    );
}

#[test]
fn table_memory_limit() {
    // 4096 x 65537 x 4 = 1_073_758_208 bytes, just over 1 GiB.
    let kind = rejected(&with_global("max_vips = 4096\n"), 1, 1, "global.table_size");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::TableMemoryTooLarge {
                bytes: 1_073_758_208,
                ..
            }
        ),
        "{kind}"
    );
    let kind = rejected(
        &with_global("max_vips = 4096\ntable_size = 65537\n"),
        6,
        14,
        "global.table_size",
    );
    assert!(
        matches!(kind, ConfigErrorKind::TableMemoryTooLarge { .. }),
        "{kind}"
    );
    parse(&with_global("max_vips = 4096\ntable_size = 65521\n"));
}

#[test]
fn api_socket_path() {
    let kind = rejected(
        &with_global("api_socket = \"run/xlb.sock\"\n"),
        5,
        14,
        "global.api_socket",
    );
    assert!(
        matches!(kind, ConfigErrorKind::RelativeApiSocket { .. }),
        "{kind}"
    );
    let long = format!("/{}", "s".repeat(107));
    let kind = rejected(
        &with_global(&format!("api_socket = \"{long}\"\n")),
        5,
        14,
        "global.api_socket",
    );
    assert!(
        matches!(
            kind,
            ConfigErrorKind::ApiSocketPathTooLong {
                len: 108,
                max: 107,
                ..
            }
        ),
        "{kind}"
    );
}

// ---------------------------------------------------------------------------
// VIPs
// ---------------------------------------------------------------------------

/// A VIP at lines 5..=7 with `extra` from line 8.
fn vip(address: &str, extra: &str) -> String {
    with_global(&format!(
        "[[vip]]\naddress = \"{address}\"\nport = 80\n{extra}"
    ))
}

#[test]
fn unusable_vip_addresses() {
    let cases = [
        ("224.0.0.1", AddressProblem::Multicast),
        ("ff02::1", AddressProblem::Multicast),
        ("255.255.255.255", AddressProblem::Broadcast),
        ("0.0.0.0", AddressProblem::Unspecified),
        ("::", AddressProblem::Unspecified),
        ("127.0.0.1", AddressProblem::Loopback),
        ("::ffff:10.100.0.1", AddressProblem::Ipv4Mapped),
    ];
    for (address, expected) in cases {
        let kind = rejected(&vip(address, ""), 6, 11, "vip[0].address");
        assert!(
            matches!(kind, ConfigErrorKind::UnusableAddress { problem, .. } if problem == expected),
            "{address}: {kind}"
        );
    }
}

#[test]
fn vip_address_may_not_be_an_outer_source() {
    for address in ["10.0.0.2", "fd00::2"] {
        let kind = rejected(&vip(address, ""), 6, 11, "vip[0].address");
        assert!(
            matches!(kind, ConfigErrorKind::AddressIsOuterSource { .. }),
            "{kind}"
        );
    }
}

#[test]
fn duplicate_vip_names_the_first() {
    let text = with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip]]
address = \"10.100.0.1\"
port = 80
protocol = \"udp\"
[[vip]]
name = \"again\"
address = \"10.100.0.1\"
port = 80
",
    );
    let kind = rejected(&text, 12, 1, "vip[2]");
    match kind {
        ConfigErrorKind::DuplicateVip { endpoint, first } => {
            assert_eq!(endpoint.to_string(), "10.100.0.1:80/tcp");
            assert_eq!(
                first,
                Place {
                    field: "vip[0]".into(),
                    location: loc(5, 1)
                }
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn duplicate_vip_names() {
    let text = with_global(
        "[[vip]]
name = \"web\"
address = \"10.100.0.1\"
port = 80
[[vip]]
name = \"web\"
address = \"10.100.0.1\"
port = 443
",
    );
    let kind = rejected(&text, 10, 8, "vip[1].name");
    match kind {
        ConfigErrorKind::DuplicateVipName { name, first } => {
            assert_eq!(name, "web");
            assert_eq!(
                first,
                Place {
                    field: "vip[0].name".into(),
                    location: loc(6, 8)
                }
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn misleading_vip_name() {
    let text =
        with_global("[[vip]]\nname = \"10.9.9.9:80/tcp\"\naddress = \"10.100.0.1\"\nport = 80\n");
    let kind = rejected(&text, 6, 8, "vip[0].name");
    assert!(
        matches!(kind, ConfigErrorKind::MisleadingVipName { .. }),
        "{kind}"
    );
}

#[test]
fn a_default_name_can_collide_with_an_explicit_one() {
    let text = with_global(
        "[[vip]]
name = \"10.100.0.1:443/tcp\"
address = \"10.100.0.1\"
port = 443
[[vip]]
address = \"10.100.0.2\"
port = 443
[[vip]]
name = \"10.100.0.2:443/tcp\"
address = \"10.100.0.2\"
port = 444
",
    );
    // vip[2]'s name is vip[1]'s default name; vip[1] has no `name` key, so
    // the first place is its table.
    let kind = rejected(&text, 13, 8, "vip[2].name");
    match kind {
        ConfigErrorKind::DuplicateVipName { first, .. } => {
            assert_eq!(
                first,
                Place {
                    field: "vip[1].name".into(),
                    location: loc(9, 1)
                }
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn invalid_vip_names() {
    for (name, reason_part) in [
        ("\"\"", "empty"),
        ("\"my web\"", "whitespace"),
        (&format!("\"{}\"", "n".repeat(65)), "64"),
    ] {
        let text = with_global(&format!(
            "[[vip]]\nname = {name}\naddress = \"10.100.0.1\"\nport = 80\n"
        ));
        let kind = rejected(&text, 6, 8, "vip[0].name");
        assert!(
            matches!(&kind, ConfigErrorKind::InvalidVipName { reason, .. } if reason.contains(reason_part)),
            "{kind}"
        );
    }
}

#[test]
fn too_many_vips() {
    let text = with_global(
        "max_vips = 1
[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip]]
address = \"10.100.0.2\"
port = 80
",
    );
    let kind = rejected(&text, 9, 1, "vip[1]");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::TooManyVips {
                count: 2,
                max_vips: 1
            }
        ),
        "{kind}"
    );
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

#[test]
fn all_backends_drained() {
    let text = vip(
        "10.100.0.1",
        "[[vip.backend]]
address = \"10.0.0.11\"
weight = 0
[[vip.backend]]
address = \"10.0.0.12\"
weight = 0
",
    );
    let kind = rejected(&text, 5, 1, "vip[0]");
    assert!(
        matches!(kind, ConfigErrorKind::AllBackendsDrained { backends: 2 }),
        "{kind}"
    );
}

#[test]
fn duplicate_backend_names_the_first() {
    let text = vip(
        "10.100.0.1",
        "[[vip.backend]]
address = \"10.0.0.11\"
[[vip.backend]]
address = \"10.0.0.12\"
[[vip.backend]]
address = \"10.0.0.11\"
",
    );
    let kind = rejected(&text, 13, 11, "vip[0].backend[2].address");
    match kind {
        ConfigErrorKind::DuplicateBackend { address, first } => {
            assert_eq!(address, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)));
            assert_eq!(
                first,
                Place {
                    field: "vip[0].backend[0].address".into(),
                    location: loc(9, 11)
                }
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn more_backends_than_table_slots() {
    let text = with_global(
        "table_size = 2
[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
[[vip.backend]]
address = \"10.0.0.12\"
[[vip.backend]]
address = \"10.0.0.13\"
",
    );
    let kind = rejected(&text, 13, 1, "vip[0].backend[2]");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::BackendsExceedTableSize {
                backends: 3,
                table_size: 2
            }
        ),
        "{kind}"
    );
}

#[test]
fn backend_family_needs_an_outer_source() {
    let text = "[global]
interfaces = [\"eth0\"]
outer_source_v4 = \"10.0.0.2\"
[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
[[vip.backend]]
address = \"fd00::11\"
";
    let kind = rejected(text, 10, 11, "vip[0].backend[1].address");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::MissingOuterSource {
                family: IpFamily::V6,
                setting: "outer_source_v6",
                ..
            }
        ),
        "{kind}"
    );
}

#[test]
fn unusable_backend_addresses() {
    for (address, expected) in [
        ("::", AddressProblem::Unspecified),
        ("127.0.0.2", AddressProblem::Loopback),
        ("::ffff:10.0.0.11", AddressProblem::Ipv4Mapped),
    ] {
        let text = vip(
            "10.100.0.1",
            &format!("[[vip.backend]]\naddress = \"{address}\"\n"),
        );
        let kind = rejected(&text, 9, 11, "vip[0].backend[0].address");
        assert!(
            matches!(kind, ConfigErrorKind::UnusableAddress { problem, .. } if problem == expected),
            "{kind}"
        );
    }
    let text = vip("10.100.0.1", "[[vip.backend]]\naddress = \"10.0.0.2\"\n");
    let kind = rejected(&text, 9, 11, "vip[0].backend[0].address");
    assert!(
        matches!(kind, ConfigErrorKind::AddressIsOuterSource { .. }),
        "{kind}"
    );
}

#[test]
fn too_many_backends_in_all() {
    let text = with_global(
        "max_backends = 3
[[vip]]
address = \"10.100.0.1\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
[[vip]]
address = \"10.100.0.2\"
port = 80
[[vip.backend]]
address = \"10.0.0.11\"
[[vip.backend]]
address = \"10.0.0.12\"
",
    );
    let kind = rejected(&text, 16, 1, "vip[1].backend[1]");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::TooManyBackends {
                count: 3,
                max_backends: 3
            }
        ),
        "{kind}"
    );
}

// ---------------------------------------------------------------------------
// Health checks
// ---------------------------------------------------------------------------

/// A VIP default check with `body`, its table header at line 8.
fn check(body: &str) -> String {
    vip("10.100.0.1", &format!("[vip.health_check]\n{body}\n"))
}

#[test]
fn http_fields_on_a_tcp_check() {
    for (line, column, key) in [
        ("path = \"/x\"", 8, "path"),
        ("expected_status = 204", 19, "expected_status"),
        ("host = \"h\"", 8, "host"),
    ] {
        let kind = rejected(
            &check(&format!("kind = \"tcp\"\n{line}")),
            10,
            column,
            &format!("vip[0].health_check.{key}"),
        );
        assert!(
            matches!(kind, ConfigErrorKind::HttpFieldOnTcpCheck { field } if field == key),
            "{kind}"
        );
    }
    // Without `kind` a check is tcp: same error.
    let kind = rejected(&check("path = \"/x\""), 9, 8, "vip[0].health_check.path");
    assert!(
        matches!(kind, ConfigErrorKind::HttpFieldOnTcpCheck { .. }),
        "{kind}"
    );
}

#[test]
fn unparsable_duration() {
    let kind = rejected(
        &check("interval = \"2 fortnights\""),
        9,
        12,
        "vip[0].health_check.interval",
    );
    assert!(
        matches!(kind, ConfigErrorKind::InvalidDuration { .. }),
        "{kind}"
    );
}

#[test]
fn durations_out_of_range() {
    let kind = rejected(
        &check("interval = \"50ms\"\ntimeout = \"20ms\""),
        9,
        12,
        "vip[0].health_check.interval",
    );
    assert!(
        matches!(kind, ConfigErrorKind::DurationOutOfRange { value, .. } if value == Duration::from_millis(50)),
        "{kind}"
    );
    let kind = rejected(
        &check("interval = \"2h\""),
        9,
        12,
        "vip[0].health_check.interval",
    );
    assert!(
        matches!(kind, ConfigErrorKind::DurationOutOfRange { .. }),
        "{kind}"
    );
    let kind = rejected(
        &check("timeout = \"5ms\""),
        9,
        11,
        "vip[0].health_check.timeout",
    );
    assert!(
        matches!(kind, ConfigErrorKind::DurationOutOfRange { .. }),
        "{kind}"
    );
}

#[test]
fn timeout_must_be_below_interval() {
    let kind = rejected(
        &check("interval = \"1s\"\ntimeout = \"1s\""),
        10,
        11,
        "vip[0].health_check.timeout",
    );
    assert!(
        matches!(kind, ConfigErrorKind::TimeoutNotBelowInterval { .. }),
        "{kind}"
    );
    // The default timeout (1s) against a short interval: blamed on the
    // table, since `timeout` is not written.
    let kind = rejected(
        &check("interval = \"500ms\""),
        8,
        1,
        "vip[0].health_check.timeout",
    );
    assert!(
        matches!(kind, ConfigErrorKind::TimeoutNotBelowInterval { .. }),
        "{kind}"
    );
}

#[test]
fn check_port_zero() {
    let kind = rejected(&check("port = 0"), 9, 8, "vip[0].health_check.port");
    assert!(
        matches!(kind, ConfigErrorKind::HealthCheckPortZero),
        "{kind}"
    );
    // A port-0 VIP gives no default port: the check table is blamed.
    let text = with_global(
        "[[vip]]
address = \"10.100.0.1\"
port = 0
[[vip.backend]]
address = \"10.0.0.11\"
health_check = { kind = \"tcp\" }
",
    );
    let kind = rejected(&text, 10, 16, "vip[0].backend[0].health_check.port");
    assert!(
        matches!(kind, ConfigErrorKind::HealthCheckPortZero),
        "{kind}"
    );
}

#[test]
fn rise_fall_and_status_ranges() {
    let cases = [
        ("rise = 0", 8, "rise"),
        ("fall = 101", 8, "fall"),
        (
            "kind = \"http\"\nexpected_status = 600",
            19,
            "expected_status",
        ),
    ];
    for (body, column, key) in cases {
        let line = 8 + body.lines().count();
        let kind = rejected(
            &check(body),
            line,
            column,
            &format!("vip[0].health_check.{key}"),
        );
        assert!(
            matches!(kind, ConfigErrorKind::OutOfRange { .. }),
            "{body}: {kind}"
        );
    }
}

#[test]
fn http_path_and_host() {
    let kind = rejected(
        &check("kind = \"http\"\npath = \"healthz\""),
        10,
        8,
        "vip[0].health_check.path",
    );
    assert!(
        matches!(kind, ConfigErrorKind::InvalidHttpPath { .. }),
        "{kind}"
    );
    let kind = rejected(
        &check("kind = \"http\"\npath = \"/a b\""),
        10,
        8,
        "vip[0].health_check.path",
    );
    assert!(
        matches!(kind, ConfigErrorKind::InvalidHttpPath { .. }),
        "{kind}"
    );
    let kind = rejected(
        &check("kind = \"http\"\nhost = \"\""),
        10,
        8,
        "vip[0].health_check.host",
    );
    assert!(
        matches!(kind, ConfigErrorKind::InvalidHttpHost { .. }),
        "{kind}"
    );
}

// ---------------------------------------------------------------------------
// The runtime API path: models changed in code, JSON bodies
// ---------------------------------------------------------------------------

fn base() -> Config {
    parse(&vip(
        "10.100.0.1",
        "health_check = { interval = \"1s\", timeout = \"100ms\" }
[[vip.backend]]
address = \"10.0.0.11\"
",
    ))
}

#[test]
fn validate_names_fields_without_locations() {
    let mut c = base();
    let copy = c.vips[0].backends[0].clone();
    c.vips[0].backends.push(copy);
    let e = match c.validate() {
        Err(e) => e,
        Ok(()) => panic!("duplicate backend accepted"),
    };
    assert_eq!(
        (e.field.as_str(), e.location),
        ("vip[0].backend[1].address", None)
    );
    assert!(
        matches!(*e.kind, ConfigErrorKind::DuplicateBackend { .. }),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "vip[0].backend[1].address: backend 10.0.0.11 is already listed at vip[0].backend[0].address"
    );

    let mut c = base();
    c.vips[0].backends[0].weight = 0;
    let e = c.validate().err().map(|e| *e.kind);
    assert!(
        matches!(e, Some(ConfigErrorKind::AllBackendsDrained { .. })),
        "{e:?}"
    );

    let mut c = base();
    c.global.max_vips = 0;
    let e = c.validate().err().map(|e| e.field);
    assert_eq!(e.as_deref(), Some("global.max_vips"));
}

#[test]
fn inherited_checks_follow_the_vip_default() {
    let mut c = base();
    let mut changed = c.vips[0].health_check.clone();
    if let Some(hc) = &mut changed {
        hc.rise = 7;
    }
    // Changing only the VIP default leaves the inheriting backend stale.
    let mut stale = c.clone();
    stale.vips[0].health_check.clone_from(&changed);
    let e = stale.validate().err();
    assert!(
        matches!(&e, Some(e) if matches!(*e.kind, ConfigErrorKind::HealthCheckModeMismatch { mode: "inherit" })
            && e.field == "vip[0].backend[0].health_check"),
        "{e:?}"
    );
    c.vips[0].set_health_check(changed.clone());
    assert_eq!(c.validate().err().map(|e| e.to_string()), None);
    assert_eq!(c.vips[0].backends[0].health_check, changed);
}

#[test]
fn vip_from_json_applies_defaults_and_checks_against_global() {
    let c = base();
    let body = serde_json::json!({
        "address": "10.100.0.9",
        "port": 8080,
        "health_check": { "kind": "http", "path": "/ready" },
        "backend": [{ "address": "10.0.0.21" }, { "address": "10.0.0.22", "health_check": false }]
    });
    let v = vip_from_json(&body, &c.global).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.name, "10.100.0.9:8080/tcp");
    assert_eq!(v.backends[0].health_check, v.health_check);
    assert_eq!(v.backends[1].health_check, None);
    let mut with = c.clone();
    with.vips.push(v);
    assert_eq!(with.validate().err().map(|e| e.to_string()), None);

    let bad = serde_json::json!({ "address": "10.100.0.9", "port": 80, "backend": [{ "address": "fd00::1", "weight": 1 }, { "address": "10.0.0.2" }] });
    let e = vip_from_json(&bad, &c.global).err();
    assert!(
        matches!(&e, Some(e) if e.field == "backend[1].address"
            && matches!(*e.kind, ConfigErrorKind::AddressIsOuterSource { .. })),
        "{e:?}"
    );
    let e = vip_from_json(
        &serde_json::json!({ "address": "10.100.0.9", "prot": 80 }),
        &c.global,
    )
    .err();
    assert!(
        matches!(&e, Some(e) if matches!(*e.kind, ConfigErrorKind::Schema { .. })),
        "{e:?}"
    );
}

#[test]
fn backend_from_json_inherits_and_refuses_duplicates() {
    let c = base();
    let v = &c.vips[0];
    let b = backend_from_json(
        &serde_json::json!({ "address": "10.0.0.12", "weight": 5 }),
        v,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.weight, &b.health_check), (5, &v.health_check));

    let e = backend_from_json(&serde_json::json!({ "address": "10.0.0.11" }), v).err();
    assert!(
        matches!(&e, Some(e) if e.field == "address" && matches!(&*e.kind,
            ConfigErrorKind::DuplicateBackend { first, .. } if first.field == "backend[0].address")),
        "{e:?}"
    );
    let body = serde_json::json!({ "address": "10.0.0.13", "health_check": { "timeout": "5s" } });
    let e = backend_from_json(&body, v).err();
    assert!(
        matches!(&e, Some(e) if e.field == "health_check.timeout"
            && matches!(*e.kind, ConfigErrorKind::TimeoutNotBelowInterval { .. })),
        "{e:?}"
    );
    let e = backend_from_json(
        &serde_json::json!({ "address": "10.0.0.13", "weight": -1 }),
        v,
    )
    .err();
    assert!(
        matches!(&e, Some(e) if matches!(*e.kind, ConfigErrorKind::Schema { .. })),
        "{e:?}"
    );
}

#[test]
fn find_vip_by_name_or_endpoint() {
    let c = parse(EXAMPLE);
    assert_eq!(c.find_vip("web"), Some(0));
    assert_eq!(c.find_vip("10.100.0.1:80/tcp"), Some(0));
    assert_eq!(c.find_vip("[2001:db8::53]:53/udp"), Some(1));
    assert_eq!(c.find_vip("nope"), None);
}

// ---------------------------------------------------------------------------
// Forwarding modes
// ---------------------------------------------------------------------------

#[test]
fn forwarding_modes_parse_with_their_defaults_and_dump_back() {
    let text = with_global(
        "gue_port = 7000
[[vip]]
name = \"a\"
address = \"10.100.0.1\"
port = 80
[[vip]]
name = \"b\"
address = \"10.100.0.2\"
port = 80
forwarding = \"gue\"
[[vip]]
name = \"c\"
address = \"fd00:100::3\"
port = 80
forwarding = \"gue\"
gue_port = 6081
[[vip]]
name = \"d\"
address = \"10.100.0.4\"
port = 80
forwarding = \"l2-dsr\"
[[vip.backend]]
address = \"10.0.0.11\"
",
    );
    let c = parse(&text);
    assert_eq!(c.global.gue_port, 7000);
    let modes: Vec<(ForwardingMode, Option<u16>, u16)> = c
        .vips
        .iter()
        .map(|v| (v.forwarding, v.gue_port, v.effective_gue_port(&c.global)))
        .collect();
    assert_eq!(
        modes,
        [
            (ForwardingMode::Ipip, None, 7000),
            (ForwardingMode::Gue, None, 7000),
            (ForwardingMode::Gue, Some(6081), 6081),
            (ForwardingMode::L2Dsr, None, 7000),
        ]
    );
    assert_eq!(parse(&c.to_toml_string()), c, "the dump reads back");
    let defaults = parse(&with_global(""));
    assert_eq!(defaults.global.gue_port, 6080, "Katran's port by default");
}

#[test]
fn an_unknown_forwarding_mode_is_a_schema_error_at_its_value() {
    let e = Config::from_toml_str(
        &with_global("[[vip]]\naddress = \"10.100.0.1\"\nport = 80\nforwarding = \"dsr\"\n"),
        None,
    )
    .expect_err("unknown mode");
    assert_eq!((e.line(), e.column()), (Some(8), Some(14)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("unknown variant `dsr`") && msg.contains("l2-dsr"),
        "{msg}"
    );
}

#[test]
fn gue_ports_are_refused_where_they_mean_nothing() {
    // Lines 5-7 are the VIP; the key is line 8 (value at column 12).
    let vip = "[[vip]]\naddress = \"10.100.0.1\"\nport = 80\n";
    let kind = rejected(
        &with_global(&format!("{vip}gue_port = 6081\n")),
        8,
        12,
        "vip[0].gue_port",
    );
    assert!(
        matches!(
            kind,
            ConfigErrorKind::GuePortOnNonGueVip {
                forwarding: ForwardingMode::Ipip
            }
        ),
        "{kind}"
    );
    assert!(kind.to_string().contains("forwarding = \"gue\""), "{kind}");
    let kind = rejected(
        &with_global(&format!("{vip}forwarding = \"gue\"\ngue_port = 0\n")),
        9,
        12,
        "vip[0].gue_port",
    );
    assert!(matches!(kind, ConfigErrorKind::GuePortZero), "{kind}");
    let kind = rejected(&with_global("gue_port = 0\n"), 5, 12, "global.gue_port");
    assert!(matches!(kind, ConfigErrorKind::GuePortZero), "{kind}");
}

#[test]
fn l2_dsr_backends_must_be_of_the_vips_family() {
    // An IPv6 VIP with an IPv4 backend: fine for ipip and gue, refused for
    // l2-dsr (no outer header: the client's IPv6 packet cannot go to an
    // IPv4 address).
    let text = |mode: &str| {
        with_global(&format!(
            "[[vip]]
address = \"fd00:100::1\"
port = 80
forwarding = \"{mode}\"
[[vip.backend]]
address = \"fd00::11\"
[[vip.backend]]
address = \"10.0.0.11\"
"
        ))
    };
    parse(&text("ipip"));
    parse(&text("gue"));
    let kind = rejected(&text("l2-dsr"), 12, 11, "vip[0].backend[1].address");
    assert!(
        matches!(
            kind,
            ConfigErrorKind::BackendFamilyMismatch {
                backend_family: IpFamily::V4,
                vip_family: IpFamily::V6,
                forwarding: ForwardingMode::L2Dsr,
                ..
            }
        ),
        "{kind}"
    );
    let msg = kind.to_string();
    assert!(
        msg.contains("10.0.0.11 is IPv4, but the vip is IPv6") && msg.contains("l2-dsr"),
        "{msg}"
    );
}

#[test]
fn l2_dsr_needs_no_outer_source() {
    let text = "[global]
interfaces = [\"eth0\"]
[[vip]]
address = \"10.100.0.1\"
port = 80
forwarding = \"l2-dsr\"
[[vip.backend]]
address = \"10.0.0.11\"
";
    let c = parse(text);
    assert_eq!(c.vips[0].forwarding, ForwardingMode::L2Dsr);
    // The same backends by IP-in-IP need one.
    let kind = rejected(
        &text.replace("l2-dsr", "ipip"),
        8,
        11,
        "vip[0].backend[0].address",
    );
    assert!(
        matches!(kind, ConfigErrorKind::MissingOuterSource { .. }),
        "{kind}"
    );
}

#[test]
fn icmp_rate_limit_and_ping_are_configurable() {
    let c = parse(&with_global(UDP_VIP));
    assert_eq!(c.global.icmp_rate_limit, lb_common::DEFAULT_ICMP_RATE);
    assert!(c.vips[0].ping, "ping is answered by default");
    let c = parse(&with_global(&format!(
        "icmp_rate_limit = 0\n{UDP_VIP}ping = false\n"
    )));
    assert_eq!(c.global.icmp_rate_limit, 0);
    assert!(!c.vips[0].ping);
    assert_eq!(parse(&c.to_toml_string()), c, "round trip");
    let kind = rejected(
        &with_global("icmp_rate_limit = 1000001\n"),
        5,
        19,
        "global.icmp_rate_limit",
    );
    assert!(
        matches!(
            kind,
            ConfigErrorKind::OutOfRange {
                value: 1_000_001,
                ..
            }
        ),
        "{kind}"
    );
}
