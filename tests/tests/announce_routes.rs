//! The announce routes in a real kernel table, in a namespace of the test's
//! own: what `ip route` shows of them, what a restart keeps, what a fresh
//! start and `xlb down` withdraw. (BIRD learning them is the fleet tests'
//! part.)

use std::{collections::BTreeSet, net::IpAddr, time::Duration};

use lb_userspace::{
    announce::{self, record, Announcer, Phase, RouteTable, VipFacts},
    config::{AnnounceConfig, AnnounceMode},
};
use xlb_tests::{
    netns::{unique_name, NetNs},
    privileged::require_root,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn vip(name: &str, address: &str, healthy: bool) -> VipFacts {
    VipFacts {
        name: name.into(),
        address: ip(address),
        mode: AnnounceMode::WhenHealthy,
        backends: vec![(100, healthy)],
    }
}

#[test]
fn routes_are_blackholes_of_protocol_static_in_the_table_and_only_ours_are_touched() {
    if !require_root("announce_routes") {
        return;
    }
    let ns = NetNs::create(&unique_name("annroutes"));
    let _in = ns.enter();
    // A table above 255 (only the netlink attribute can name it).
    let mut t = RouteTable::open(4242).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        t.list().unwrap_or_else(|e| panic!("{e}")).is_empty(),
        "no table yet: empty"
    );
    for a in ["10.200.0.1", "10.200.0.2", "fd20::1"] {
        t.add(ip(a)).unwrap_or_else(|e| panic!("{e}"));
    }
    t.add(ip("10.200.0.1"))
        .unwrap_or_else(|e| panic!("adding twice is fine: {e}"));
    // Someone else's routes in the table, and ours in another table, stay
    // out of it.
    ns.ip("route add 10.200.0.9/32 dev lo table 4242");
    ns.ip("route add blackhole 10.200.0.8/32 table 4243 proto static");
    let want: BTreeSet<IpAddr> = ["10.200.0.1", "10.200.0.2", "fd20::1"]
        .iter()
        .map(|a| ip(a))
        .collect();
    assert_eq!(t.list().unwrap_or_else(|e| panic!("{e}")), want);
    let shown = ns.ip("route show table 4242");
    assert!(
        shown.contains("blackhole 10.200.0.1 proto static"),
        "ip route show table 4242:\n{shown}"
    );
    assert!(
        ns.ip("-6 route show table 4242")
            .contains("blackhole fd20::1 dev lo proto static"),
        "IPv6 route missing"
    );
    assert!(
        !ns.ip("route show table main").contains("10.200.0.1"),
        "the main table must not see the announce routes"
    );
    t.remove(ip("10.200.0.2")).unwrap_or_else(|e| panic!("{e}"));
    t.remove(ip("10.200.0.2"))
        .unwrap_or_else(|e| panic!("removing twice is fine: {e}"));
    assert_eq!(t.list().unwrap_or_else(|e| panic!("{e}")).len(), 2);
    assert!(ns.ip("route show table 4242").contains("10.200.0.9 dev lo"));
}

#[test]
fn a_restart_keeps_the_routes_a_fresh_start_and_xlb_down_withdraw_them() {
    if !require_root("announce_routes") {
        return;
    }
    let name = unique_name("annlife");
    let ns = NetNs::create(&name);
    let _in = ns.enter();
    let records = tempfile_dir(&name);
    let config = AnnounceConfig {
        enabled: true,
        table: 100,
        drain_on_stop: Duration::from_secs(3),
    };
    let vips = [
        vip("web", "10.200.0.1", true),
        vip("dns", "10.200.0.1", false),
        vip("api", "10.200.0.2", false),
    ];
    let routes = || {
        RouteTable::open(100)
            .and_then(|mut t| t.list())
            .unwrap_or_else(|e| panic!("{e}"))
    };

    let mut a = Announcer::start(&config, &name, &records, false).unwrap_or_else(|e| panic!("{e}"));
    a.sync(&vips);
    assert!(
        routes().is_empty(),
        "nothing is announced before the program is attached"
    );
    a.attached(&vips);
    assert_eq!(routes(), [ip("10.200.0.1")].into_iter().collect());
    let dns = a.state(&vips[1], &vips);
    assert!(dns.announce, "dns shares web's address");
    assert!(
        dns.reason.contains("announced for vip web"),
        "{}",
        dns.reason
    );
    let rec = record::read(&record::path_in(&records, &name))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no record for xlb down"));
    assert_eq!(
        (rec.table, rec.drain_on_stop),
        (100, Duration::from_secs(3))
    );

    // A restart with the pins adopted: the routes stay through startup,
    // then follow the VIPs (api is healthy now).
    drop(a);
    let mut a = Announcer::start(&config, &name, &records, true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.phase(), Phase::Starting);
    a.sync(&vips);
    assert_eq!(routes().len(), 1, "a restart must not flap the routes");
    let healed = [
        vips[0].clone(),
        vips[1].clone(),
        vip("api", "10.200.0.2", true),
    ];
    a.attached(&healed);
    assert_eq!(routes().len(), 2);

    // A route removed behind xlb's back comes back at the next sync.
    ns.ip("route del blackhole 10.200.0.2/32 table 100");
    a.sync(&healed);
    assert_eq!(routes().len(), 2);

    // A fresh start (nothing attached): stale routes go at once.
    drop(a);
    let a = Announcer::start(&config, &name, &records, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        routes().is_empty(),
        "a fresh start must withdraw what a previous run left"
    );
    drop(a);

    // `xlb down` without a daemon: the record says which table.
    let mut t = RouteTable::open(100).unwrap_or_else(|e| panic!("{e}"));
    t.add(ip("10.200.0.1")).unwrap_or_else(|e| panic!("{e}"));
    let (withdrawn, rec) =
        announce::withdraw_recorded(&records, &name).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(withdrawn, [ip("10.200.0.1")]);
    assert_eq!(rec.map(|r| r.table), Some(100));
    assert!(routes().is_empty());
    assert!(
        !record::path_in(&records, &name).exists(),
        "xlb down removes the record"
    );
    let _ = std::fs::remove_dir_all(&records);
}

/// A directory for records, named after the test's namespace.
fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("{name}-records"));
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}
