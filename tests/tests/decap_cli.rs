//! `xlb decap attach` as an operator runs it (the real binary): refused where
//! its pins would vanish when it exits (`ip netns exec`), accepted in a
//! private mount namespace that kept the host's bpffs, and bound to the
//! network namespace it was first attached in.

use std::process::{Command, Output};

use lb_userspace::dataplane::attach::InstancePaths;
use xlb_tests::{
    netns::{unique_name, NetNs},
    privileged::require_root,
    topology::PinGuard,
    xlb_process::{xlb, xlb_binary},
};

const DEV: &str = "xlbd0";

/// A namespace with a veth pair `xlbd0`/`xlbd1`, both up.
fn namespace(name: &str) -> NetNs {
    let ns = NetNs::create(name);
    ns.ip(&format!("link add {DEV} type veth peer name xlbd1"));
    ns.ip(&format!("link set {DEV} up"));
    ns.ip("link set xlbd1 up");
    ns
}

/// The id of the XDP program on `dev` in `ns`, if any (from `ip -j`).
fn xdp_prog_id(ns: &NetNs, dev: &str) -> Option<u64> {
    let json = ns.ip(&format!("-j link show {dev}"));
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("ip -j link show: {e}: {json}"));
    v[0]["xdp"]["prog"]["id"].as_u64()
}

fn attach_args(instance: &str) -> Vec<String> {
    [
        "decap",
        "attach",
        "--interface",
        DEV,
        "--address",
        "10.0.0.11",
        "--allow-source",
        "10.0.0.1",
        "--vip",
        "10.100.0.1",
        "--instance",
        instance,
    ]
    .map(String::from)
    .to_vec()
}

fn run(mut cmd: Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn attach_under_ip_netns_exec_is_refused_and_changes_nothing() {
    if !require_root("decap_cli") {
        return;
    }
    let ns = namespace(&unique_name("dcexec"));
    let instance = format!("decap-{}", ns.name());
    let pins = PinGuard(InstancePaths::new(&instance));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name()])
        .arg(xlb_binary())
        .args(attach_args(&instance));
    let out = run(cmd, "xlb decap attach under ip netns exec");
    let said = text(&out);
    assert!(
        !out.status.success(),
        "attach in a private bpffs must fail: {said}"
    );
    assert!(said.contains("private mount namespace"), "{said}");
    assert!(said.contains("nsenter --net=/var/run/netns/NAME"), "{said}");
    assert_eq!(xdp_prog_id(&ns, DEV), None, "nothing may stay attached");
    assert!(!pins.0.root.exists(), "no pins in the host's bpffs");
}

#[test]
fn attach_in_a_private_mount_namespace_with_the_hosts_bpffs_lasts() {
    if !require_root("decap_cli") {
        return;
    }
    let ns = namespace(&unique_name("dcunsh"));
    let instance = format!("decap-{}", ns.name());
    let pins = PinGuard(InstancePaths::new(&instance));
    // `unshare --mount` copies the mount table, bpffs included: pins made
    // there are the host's. (nsenter then switches the network namespace.)
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--", "nsenter"])
        .arg(format!("--net=/var/run/netns/{}", ns.name()))
        .arg("--")
        .arg(xlb_binary())
        .args(attach_args(&instance));
    let out = run(cmd, "xlb decap attach under unshare --mount");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        xdp_prog_id(&ns, DEV).is_some(),
        "attached after the command exited"
    );
    assert!(
        pins.0.link(DEV).exists(),
        "the link pin is in the host's bpffs"
    );
}

#[test]
fn an_instance_stays_in_the_network_namespace_it_was_attached_in() {
    if !require_root("decap_cli") {
        return;
    }
    let a = namespace(&format!("{}-a", unique_name("dcnetns")));
    let b = namespace(&format!("{}-b", unique_name("dcnetns")));
    let instance = format!("decap-{}", a.name());
    let pins = PinGuard(InstancePaths::new(&instance));
    let args = attach_args(&instance);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let first = xlb(a.name(), &args);
    assert!(first.status.success(), "{}", text(&first));
    let in_a = xdp_prog_id(&a, DEV).unwrap_or_else(|| panic!("attached in {}", a.name()));
    // Same instance and interface name in the same namespace: an update.
    let again = xlb(a.name(), &args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("updated xlb_decap on xlbd0"),
        "{}",
        text(&again)
    );
    let in_a = xdp_prog_id(&a, DEV)
        .filter(|id| *id != in_a)
        .unwrap_or_else(|| panic!("re-attaching in the same namespace swaps in the new program"));

    // The same in another namespace must not touch the first one's.
    let other = xlb(b.name(), &args);
    let said = text(&other);
    assert!(
        !other.status.success(),
        "a second namespace took over: {said}"
    );
    assert!(said.contains("another network namespace"), "{said}");
    assert!(said.contains("--instance"), "{said}");
    assert_eq!(
        xdp_prog_id(&a, DEV),
        Some(in_a),
        "the first namespace's program"
    );
    assert_eq!(xdp_prog_id(&b, DEV), None, "nothing attached in the second");

    // With its own instance it works, and both stay attached.
    let b_instance = format!("decap-{}", b.name());
    let _b_pins = PinGuard(InstancePaths::new(&b_instance));
    let own = attach_args(&b_instance);
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    let out = xlb(b.name(), &own);
    assert!(out.status.success(), "{}", text(&out));
    assert!(xdp_prog_id(&b, DEV).is_some());
    assert_eq!(xdp_prog_id(&a, DEV), Some(in_a));

    // Detaching works from any namespace (it only removes pins).
    let out = xlb(b.name(), &["decap", "detach", "--instance", &instance]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        xdp_prog_id(&a, DEV),
        None,
        "detached from the first namespace"
    );
    assert!(!pins.0.root.exists());
}
