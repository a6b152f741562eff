//! An established flow finds its VIP through its connection-table entry
//! (entry -> backend -> the backend's VIP id's index in `XLB_VIP_CFG_IX` ->
//! its slot in `XLB_VIP_CFG`) instead of
//! a hash lookup of the VIP key; the answer must always be the one the
//! lookup gives (`VipSlot::is_exact_vip_of`). These tests hold the cases
//! where the two could part: a removed VIP, a port-0 VIP outranked by an
//! exact one added later, a VIP changed in place, a VIP id handed to
//! another VIP or a VIP moved to another id, and maps adopted from a daemon
//! that kept no slots; and a changed VIP never rewrites the slot packets
//! may be reading.
//! Runs the real object through BPF_PROG_TEST_RUN (root); forwarded frames
//! are checked byte for byte.

use std::net::IpAddr;

use aya::maps::{Array, HashMap, MapData};
use lb_common::{map_names, Verdict, VipSlot, PROTO_TCP};
use lb_userspace::dataplane::{
    attach::{remove_instance, InstancePaths},
    Dataplane, LoadOptions, LEGACY_VIP_SLOTS,
};
use xlb_tests::{
    balancer_fixture::{BalancerFixture, TEST_SIZES},
    expect::{assert_encapsulated, Encapsulated, XDP_PASS, XDP_TX},
    frames::{with_flags, Frame, TCP_ACK},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const CLIENT: &str = "192.0.2.7";
const VIP: &str = "10.100.0.1";

/// Sends `fr`, checks it left encapsulated toward `backend`, byte for byte.
fn assert_sent_to(f: &mut BalancerFixture, fr: &Frame, backend: IpAddr, what: &str) {
    let input = fr.build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX, "{what}");
    assert_encapsulated(&r.out, &Encapsulated::toward(f, &input, fr, backend), what);
}

fn verdict_count(f: &BalancerFixture, v: Verdict) -> u64 {
    f.dp.verdicts().unwrap_or_else(|e| panic!("{e}"))[v as usize]
}

/// Opens `fr`'s connection (SYN, then the handshake's ACK, which creates
/// the entry) toward `backend`.
fn establish(f: &mut BalancerFixture, fr: &Frame, backend: IpAddr) {
    assert_sent_to(f, fr, backend, "SYN");
    assert_sent_to(f, &with_flags(fr, TCP_ACK), backend, "handshake ACK");
}

#[test]
fn a_removed_vip_is_not_reached_through_its_flows() {
    let Some(mut f) = BalancerFixture::new("slot_removed_vip") else {
        return;
    };
    let vip = f.add_vip(ip(VIP), 80, PROTO_TCP, 0, &[ip("10.0.0.20")]);
    let fr = Frame::tcp(ip(CLIENT), 40000, ip(VIP), 80, f.if_mac);
    establish(&mut f, &fr, ip("10.0.0.20"));
    assert_eq!(
        f.dp.vip_slot(vip.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(VipSlot::new(vip.key, vip.info)),
        "set_vip fills the VIP's slot"
    );

    // The VIP goes; its backend slot and the flow's entry are still there
    // (the reconciler frees backends after the VIP).
    f.dp.remove_vip(&vip.key).unwrap_or_else(|e| panic!("{e}"));
    let not_vip = verdict_count(&f, Verdict::NotVip);
    let r = f.run(&with_flags(&fr, TCP_ACK).build());
    assert_eq!(r.action, XDP_PASS, "a removed VIP's flow is not ours");
    assert_eq!(verdict_count(&f, Verdict::NotVip), not_vip + 1);
    assert_eq!(
        f.dp.vip_slot(vip.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
}

#[test]
fn an_exact_vip_added_later_outranks_the_port_0_vip_of_established_flows() {
    let Some(mut f) = BalancerFixture::new("slot_exact_outranks") else {
        return;
    };
    f.add_vip(ip(VIP), 0, PROTO_TCP, 0, &[ip("10.0.0.20")]);
    let fr = Frame::tcp(ip(CLIENT), 40000, ip(VIP), 8080, f.if_mac);
    establish(&mut f, &fr, ip("10.0.0.20"));
    assert_sent_to(
        &mut f,
        &with_flags(&fr, TCP_ACK),
        ip("10.0.0.20"),
        "the flow follows its entry",
    );

    // Port 8080 gets a VIP of its own: the lookup finds it first, so the
    // flow's entry (a backend of the port-0 VIP) is no longer followed.
    f.add_vip(ip(VIP), 8080, PROTO_TCP, 0, &[ip("10.0.0.30")]);
    assert_sent_to(
        &mut f,
        &with_flags(&fr, TCP_ACK),
        ip("10.0.0.30"),
        "the exact VIP takes the port's packets",
    );
}

#[test]
fn a_vip_changed_in_place_reaches_its_established_flows() {
    let Some(mut f) = BalancerFixture::new("slot_changed_in_place") else {
        return;
    };
    let mut vip = f.add_vip(ip(VIP), 80, PROTO_TCP, 0, &[ip("10.0.0.20")]);
    let fr = Frame::tcp(ip(CLIENT), 40000, ip(VIP), 80, f.if_mac);
    establish(&mut f, &fr, ip("10.0.0.20"));
    // The same VIP (key and id) switches to GUE: the established flow's
    // next packet leaves with the new mode's 28 bytes, not IP-in-IP's 20.
    f.set_forwarding(&mut vip, lb_common::Forwarding::Gue, 6080);
    let input = with_flags(&fr, TCP_ACK).build();
    let r = f.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.out.len(), input.len() + 28, "IPv4 + UDP pushed");
    assert_eq!(r.out[14 + 9], 17, "outer protocol UDP");
    assert_eq!(u16::from_be_bytes([r.out[36], r.out[37]]), 6080, "GUE port");
    assert_eq!(
        f.dp.vip_slot(vip.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(VipSlot::new(vip.key, vip.info))
    );
}

#[test]
fn a_vip_id_handed_on_keeps_the_slot_of_its_new_vip() {
    let Some(mut f) = BalancerFixture::new("slot_id_handed_on") else {
        return;
    };
    let a = f.add_vip(ip(VIP), 80, PROTO_TCP, 0, &[ip("10.0.0.20")]);
    let b = f.add_vip(ip("10.100.0.2"), 80, PROTO_TCP, 0, &[ip("10.0.0.30")]);
    let fr_b = Frame::tcp(ip(CLIENT), 40000, ip("10.100.0.2"), 80, f.if_mac);
    establish(&mut f, &fr_b, ip("10.0.0.30"));

    // VIP b moves to a's id (its backend follows), then a is removed: as
    // the reconciler may order a recycled id, the new owner is written
    // first. b's old slot is emptied, a's removal leaves b's new slot.
    let moved = lb_common::VipInfo::new(a.info.vip_id, 0, b.info.table_offset, b.info.table_size);
    let backend = lb_common::Backend::new(ip("10.0.0.30"), a.info.vip_id, 100, true);
    f.dp.set_backend(b.backend_ids[0], &backend)
        .unwrap_or_else(|e| panic!("{e}"));
    f.dp.set_vip(&b.key, &moved)
        .unwrap_or_else(|e| panic!("{e}"));
    let slot = |f: &BalancerFixture, id: u32| f.dp.vip_slot(id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(slot(&f, b.info.vip_id), None, "b's old id");
    f.dp.remove_vip(&a.key).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(slot(&f, a.info.vip_id), Some(VipSlot::new(b.key, moved)));
    assert_sent_to(
        &mut f,
        &with_flags(&fr_b, TCP_ACK),
        ip("10.0.0.30"),
        "b's flow under its new id",
    );
}

#[test]
fn adopted_maps_get_the_slots_of_their_vips() {
    let Some(mut f) = BalancerFixture::new("slot_adopted") else {
        return;
    };
    // The fixture's own balancer is not pinned; this one is, and a second
    // load adopts its maps, as a restarted daemon does.
    let paths = InstancePaths::new(&xlb_tests::netns::unique_name("xlbslot"));
    let _cleanup = PinsRemoved(&paths);
    let opts = LoadOptions {
        sizes: TEST_SIZES,
        pin_dir: Some(paths.maps()),
        ..Default::default()
    };
    let vip = f.add_vip(ip(VIP), 80, PROTO_TCP, 0, &[ip("10.0.0.20")]);
    {
        let mut first = Dataplane::load(&opts).unwrap_or_else(|e| panic!("{e:#}"));
        first
            .set_vip(&vip.key, &vip.info)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // The VIP's id without a config index, as in maps another daemon left
    // (one before these maps existed creates them empty).
    let mut index = pinned_index(&paths);
    index
        .set(vip.info.vip_id, 0, 0)
        .unwrap_or_else(|e| panic!("{e}"));

    let adopted = Dataplane::load(&opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        adopted
            .vip_slot(vip.info.vip_id)
            .unwrap_or_else(|e| panic!("{e}")),
        Some(VipSlot::new(vip.key, vip.info)),
        "loading rebuilds the slots from XLB_VIPS"
    );
}

/// A changed VIP gets a new slot at a fresh index: the slot a packet may
/// be reading at that moment stays as it was (it is reused only after a
/// grace period), and the id points at the new one.
#[test]
fn a_changed_vip_never_rewrites_the_slot_packets_read() {
    let Some(mut f) = BalancerFixture::new("slot_fresh_index") else {
        return;
    };
    let paths = InstancePaths::new(&xlb_tests::netns::unique_name("xlbslotix"));
    let _cleanup = PinsRemoved(&paths);
    let opts = LoadOptions {
        sizes: TEST_SIZES,
        pin_dir: Some(paths.maps()),
        ..Default::default()
    };
    let vip = f.add_vip(ip(VIP), 80, PROTO_TCP, 0, &[ip("10.0.0.20")]);
    let mut dp = Dataplane::load(&opts).unwrap_or_else(|e| panic!("{e:#}"));
    dp.set_vip(&vip.key, &vip.info)
        .unwrap_or_else(|e| panic!("{e}"));
    let index = pinned_index(&paths);
    let configs = pinned_configs(&paths);
    let id = vip.info.vip_id;
    let first = index.get(&id, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(first, 0, "the VIP has a slot");
    let old = VipSlot::new(vip.key, vip.info);
    let changed = vip.info.with_forwarding(lb_common::Forwarding::Gue, 6080);
    for round in 0..3 {
        let info = if round % 2 == 0 { changed } else { vip.info };
        let before = index.get(&id, 0).unwrap_or_else(|e| panic!("{e}"));
        let slot_before = configs
            .get(&(before as u32), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        dp.set_vip(&vip.key, &info)
            .unwrap_or_else(|e| panic!("{e}"));
        let after = index.get(&id, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(after, before, "round {round}: a fresh index");
        assert_eq!(
            configs
                .get(&(before as u32), 0)
                .unwrap_or_else(|e| panic!("{e}")),
            slot_before,
            "round {round}: the slot packets may be reading is untouched"
        );
        assert_eq!(
            configs
                .get(&(after as u32), 0)
                .unwrap_or_else(|e| panic!("{e}")),
            VipSlot::new(vip.key, info)
        );
    }
    assert_eq!(
        configs
            .get(&(first as u32), 0)
            .unwrap_or_else(|e| panic!("{e}")),
        old
    );
    // Setting what the VIP already has takes no index.
    let now = index.get(&id, 0).unwrap_or_else(|e| panic!("{e}"));
    dp.set_vip(&vip.key, &changed)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(index.get(&id, 0).unwrap_or_else(|e| panic!("{e}")), now);
    dp.remove_vip(&vip.key).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        index.get(&id, 0).unwrap_or_else(|e| panic!("{e}")),
        0,
        "removed"
    );
}

/// An xlb before `XLB_VIP_CFG` reached established flows' VIPs through the
/// hash map `XLB_VIP_SLOTS`, and its program may still run (pinned links)
/// while a new daemon loads: loading empties that map (the old program
/// then looks every VIP up in `XLB_VIPS`, which stays right) and unpins it.
#[test]
fn a_legacy_slot_map_is_emptied_and_unpinned() {
    let Some(f) = BalancerFixture::new("slot_legacy") else {
        return;
    };
    let paths = InstancePaths::new(&xlb_tests::netns::unique_name("xlbslotold"));
    let _cleanup = PinsRemoved(&paths);
    let opts = LoadOptions {
        sizes: TEST_SIZES,
        pin_dir: Some(paths.maps()),
        ..Default::default()
    };
    drop(Dataplane::load(&opts).unwrap_or_else(|e| panic!("{e:#}")));
    let vip = VipSlot::new(
        lb_common::VipKey::new(ip(VIP), 80, PROTO_TCP),
        lb_common::VipInfo::new(1, 0, 0, 0),
    );
    let mut legacy: HashMap<MapData, u32, VipSlot> =
        HashMap::create(64, 0).unwrap_or_else(|e| panic!("{e}"));
    legacy.insert(1, vip, 0).unwrap_or_else(|e| panic!("{e}"));
    let pin = paths.maps().join(LEGACY_VIP_SLOTS);
    legacy.pin(&pin).unwrap_or_else(|e| panic!("{e}"));
    // What the old program holds: the map, whether pinned or not.
    let held: HashMap<MapData, u32, VipSlot> = HashMap::try_from(aya::maps::Map::HashMap(
        MapData::from_pin(&pin).unwrap_or_else(|e| panic!("{e}")),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held.keys().count(), 1);

    drop(Dataplane::load(&opts).unwrap_or_else(|e| panic!("{e:#}")));
    assert!(!pin.exists(), "the legacy pin is removed");
    assert_eq!(
        held.keys().count(),
        0,
        "the legacy map the old program reads is emptied"
    );
    drop(f);
}

/// The instance's pinned `XLB_VIP_CFG_IX`.
fn pinned_index(paths: &InstancePaths) -> Array<MapData, u64> {
    let pin = paths.maps().join(map_names::VIP_CFG_IX);
    Array::try_from(aya::maps::Map::Array(
        MapData::from_pin(&pin).unwrap_or_else(|e| panic!("{}: {e}", pin.display())),
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The instance's pinned `XLB_VIP_CFG`.
fn pinned_configs(paths: &InstancePaths) -> Array<MapData, VipSlot> {
    let pin = paths.maps().join(map_names::VIP_CFG);
    Array::try_from(aya::maps::Map::Array(
        MapData::from_pin(&pin).unwrap_or_else(|e| panic!("{}: {e}", pin.display())),
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Removes the instance's pins when dropped (also on a failed assertion).
struct PinsRemoved<'a>(&'a InstancePaths);

impl Drop for PinsRemoved<'_> {
    fn drop(&mut self) {
        if let Err(e) = remove_instance(self.0) {
            eprintln!("warning: removing pins {}: {e}", self.0.root.display());
        }
    }
}
