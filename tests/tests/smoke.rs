use std::net::IpAddr;
use xlb_tests::{balancer_fixture::BalancerFixture, frames::Frame};

#[test]
fn loads_and_balances_one_packet() {
    let Some(mut f) = BalancerFixture::new("loads_and_balances_one_packet") else { return };
    let vip: IpAddr = "10.100.0.1".parse().unwrap();
    let be: IpAddr = "10.0.0.11".parse().unwrap();
    f.add_vip(vip, 80, 6, 0, &[be]);
    let frame = Frame::tcp("192.0.2.7".parse().unwrap(), 40000, vip, 80, f.if_mac).build();
    let r = f.run(&frame);
    println!("action {} out {:02x?}", r.action, r.out);
    let v = f.dp.verdicts().unwrap();
    for x in lb_common::Verdict::ALL { if v[x as usize] > 0 { println!("{:?} = {}", x, v[x as usize]); } }
    assert_eq!(r.action, 3);
}
