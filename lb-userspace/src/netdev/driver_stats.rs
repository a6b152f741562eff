//! The driver's own statistics (what `ethtool -S` prints), read with the
//! ETHTOOL_GSTRINGS / ETHTOOL_GSTATS ioctls: these per-driver counters exist
//! only there (the ethtool netlink family carries the standard groups, not
//! the driver's private ones). xlb watches the XDP error counters among
//! them: a frame the program returned XDP_TX or XDP_REDIRECT for can still
//! be dropped by the driver (a full ring, a veth peer without XDP), and only
//! these counters see it.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use super::NetdevError;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

/// `struct ethtool_drvinfo` (linux/ethtool.h), for its `n_stats`.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// Every statistic of `ifname`'s driver, by name, in the driver's order;
/// empty for a driver without statistics (loopback, most virtual devices).
pub fn read(ifname: &str) -> Result<Vec<(String, u64)>, NetdevError> {
    let err = |call: &'static str| {
        let ifname = ifname.to_string();
        move |source| NetdevError::Ethtool {
            ifname,
            call,
            source,
        }
    };
    // SAFETY: socket() has no memory arguments; the result is checked
    // before it is owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("socket")(io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    // SAFETY: DrvInfo is plain integers and byte arrays: all zeroes is valid.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    ethtool(&sock, ifname, (&raw mut info).cast()).map_err(err("ETHTOOL_GDRVINFO"))?;
    let n = info.n_stats as usize;
    if n == 0 {
        return Ok(Vec::new());
    }

    // `struct ethtool_gstrings`: cmd, string_set, len, then len names of 32
    // bytes. u64 words keep the buffer aligned for the header.
    let mut names = vec![0u64; (12 + n * ETH_GSTRING_LEN).div_ceil(8)];
    let header = names.as_mut_ptr().cast::<u32>();
    // SAFETY: the buffer holds at least the three u32 header fields.
    unsafe {
        header.write(ETHTOOL_GSTRINGS);
        header.add(1).write(ETH_SS_STATS);
        header.add(2).write(n as u32);
    }
    ethtool(&sock, ifname, names.as_mut_ptr().cast()).map_err(err("ETHTOOL_GSTRINGS"))?;

    // `struct ethtool_stats`: cmd, n_stats, then n u64 values.
    let mut values = vec![0u64; n + 1];
    let header = values.as_mut_ptr().cast::<u32>();
    // SAFETY: the first u64 word holds the two u32 header fields.
    unsafe {
        header.write(ETHTOOL_GSTATS);
        header.add(1).write(n as u32);
    }
    ethtool(&sock, ifname, values.as_mut_ptr().cast()).map_err(err("ETHTOOL_GSTATS"))?;

    // SAFETY: `names` is (12 + n*32) bytes or more, initialised (zeroes,
    // then the kernel's strings).
    let bytes = unsafe {
        std::slice::from_raw_parts(names.as_ptr().cast::<u8>(), 12 + n * ETH_GSTRING_LEN)
    };
    Ok(bytes[12..]
        .chunks(ETH_GSTRING_LEN)
        .zip(&values[1..])
        .map(|(name, v)| {
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            (String::from_utf8_lossy(&name[..end]).into_owned(), *v)
        })
        .collect())
}

/// SIOCETHTOOL on `ifname` with the command buffer `data`.
fn ethtool(sock: &OwnedFd, ifname: &str, data: *mut libc::c_char) -> io::Result<()> {
    // SAFETY: ifreq is plain data: all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = data;
    // SAFETY: `req` names the interface and points at a command buffer the
    // caller sized for the command it holds; the kernel writes within it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The driver's XDP error counters of `ifname`, summed over queues:
/// (name without the queue prefix, value), e.g. veth's
/// `rx_queue_0_xdp_tx_errors` + `rx_queue_1_xdp_tx_errors` as
/// `xdp_tx_errors`. A counter is one whose name mentions XDP and an error or
/// failure; plain `xdp_drops` (the program's own XDP_DROP) is not.
pub fn xdp_errors(ifname: &str) -> Result<Vec<(String, u64)>, NetdevError> {
    Ok(xdp_error_counters(&read(ifname)?))
}

fn xdp_error_counters(stats: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for (name, value) in stats {
        let lower = name.to_ascii_lowercase();
        if !lower.contains("xdp") || !(lower.contains("err") || lower.contains("fail")) {
            continue;
        }
        let name = without_queue_prefix(name);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => *sum = sum.saturating_add(*value),
            None => out.push((name.to_string(), *value)),
        }
    }
    out
}

/// `rx_queue_3_xdp_tx_errors` -> `xdp_tx_errors`; other names unchanged.
fn without_queue_prefix(name: &str) -> &str {
    for dir in ["rx_queue_", "tx_queue_"] {
        if let Some(rest) = name.strip_prefix(dir) {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                if let Some(tail) = rest[digits..].strip_prefix('_') {
                    return tail;
                }
            }
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_errors_are_summed_over_queues_and_drops_are_not_errors() {
        let stats: Vec<(String, u64)> = [
            ("peer_ifindex", 5),
            ("rx_queue_0_xdp_packets", 900),
            ("rx_queue_0_xdp_drops", 40),
            ("rx_queue_0_xdp_tx", 800),
            ("rx_queue_0_xdp_tx_errors", 3),
            ("rx_queue_1_xdp_tx_errors", 4),
            ("tx_queue_0_xdp_xmit", 10),
            ("tx_queue_0_xdp_xmit_errors", 1),
            ("rx_xdp_redirect_fail", 2),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
        assert_eq!(
            xdp_error_counters(&stats),
            vec![
                ("xdp_tx_errors".to_string(), 7),
                ("xdp_xmit_errors".to_string(), 1),
                ("rx_xdp_redirect_fail".to_string(), 2),
            ]
        );
    }

    #[test]
    fn only_queue_prefixes_are_stripped() {
        assert_eq!(
            without_queue_prefix("rx_queue_12_xdp_tx_errors"),
            "xdp_tx_errors"
        );
        assert_eq!(without_queue_prefix("rx_queue_xdp"), "rx_queue_xdp");
        assert_eq!(without_queue_prefix("tx_xdp_err"), "tx_xdp_err");
    }
}
