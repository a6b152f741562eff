//! Checks an ELF header, like `file` does, for the built eBPF objects.

use anyhow::{bail, Result};

/// `e_machine` of eBPF objects.
pub const EM_BPF: u16 = 247;

/// Describes an eBPF object from its first bytes ("ELF 64-bit LSB
/// relocatable, eBPF"); fails unless it is a 64-bit little-endian ELF file
/// for EM_BPF (what the bpfel target produces).
pub fn describe_bpf_object(header: &[u8]) -> Result<String> {
    if header.len() < 20 || header[..4] != *b"\x7fELF" {
        bail!("not an ELF file");
    }
    let class = match header[4] {
        1 => "32-bit",
        2 => "64-bit",
        other => bail!("bad ELF class {other}"),
    };
    let (order, read_u16): (_, fn([u8; 2]) -> u16) = match header[5] {
        1 => ("LSB", u16::from_le_bytes),
        2 => ("MSB", u16::from_be_bytes),
        other => bail!("bad ELF data encoding {other}"),
    };
    let e_type = read_u16([header[16], header[17]]);
    let e_machine = read_u16([header[18], header[19]]);
    let kind = match e_type {
        1 => "relocatable",
        2 => "executable",
        3 => "shared object",
        other => bail!("unexpected ELF type {other}"),
    };
    let found = format!("ELF {class} {order} {kind}, e_machine {e_machine}");
    if e_machine != EM_BPF {
        bail!("{found}: not eBPF (EM_BPF is {EM_BPF})");
    }
    if class != "64-bit" || order != "LSB" {
        bail!("{found}: eBPF, but not the 64-bit little-endian bpfel kind");
    }
    Ok(format!(
        "ELF {class} {order} {kind}, eBPF (e_machine {EM_BPF})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1];
        h.resize(16, 0);
        if data == 2 {
            h.extend(e_type.to_be_bytes());
            h.extend(machine.to_be_bytes());
        } else {
            h.extend(e_type.to_le_bytes());
            h.extend(machine.to_le_bytes());
        }
        h.resize(64, 0);
        h
    }

    #[test]
    fn accepts_bpfel_relocatable() {
        assert_eq!(
            describe_bpf_object(&header(2, 1, 1, 247)).unwrap(),
            "ELF 64-bit LSB relocatable, eBPF (e_machine 247)"
        );
    }

    #[test]
    fn rejects_host_objects_and_other_bpf_flavours() {
        let x86_64 = describe_bpf_object(&header(2, 1, 1, 62)).unwrap_err();
        assert!(x86_64.to_string().contains("not eBPF"), "{x86_64}");
        assert!(describe_bpf_object(&header(2, 2, 1, 247)).is_err());
        assert!(describe_bpf_object(b"#!/bin/sh\n echo hello, this is no ELF").is_err());
        assert!(describe_bpf_object(b"\x7fELF").is_err());
    }
}
