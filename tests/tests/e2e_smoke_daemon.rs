use xlb_tests::{
    clients::{many_connections, tally},
    privileged::require_root,
    rack::{rack_lock, standard_vips, Rack},
};

#[test]
fn daemon_balances_real_connections() {
    if !require_root("daemon_balances_real_connections") {
        return;
    }
    let _l = rack_lock();
    let rack = Rack::start(
        &format!("xlb-e2e{}", std::process::id()),
        2,
        standard_vips(),
    );
    println!("{}", rack.daemon.cli(&["vip", "list"]));
    let r = many_connections(&rack.topo.clients[0], rack.vip("web").target(), 300, 6);
    println!("{:?}", tally(&r));
    println!("{}", rack.daemon.cli(&["stats"]));
    println!("LOG:\n{}", rack.daemon.log_text());
    assert!(r.iter().all(|x| x.is_ok()));
}
