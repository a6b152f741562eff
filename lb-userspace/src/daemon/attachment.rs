//! Attaching the balancer to its interfaces, adopting the links a previous
//! run pinned. A pinned link keeps the mode it was attached in: a run that
//! asks for another mode is refused before anything changes, rather than
//! silently running in the old one. Links of interfaces that left the config
//! are detached; links whose interface was recreated (the link died with the
//! old device) are replaced. Afterwards the kernel is asked whether the
//! program really runs on every interface, in the mode reported.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use aya::programs::links::{FdLink, PinnedLink};
use thiserror::Error;
use tracing::{info, warn};

use crate::{
    config::{GlobalConfig, XdpMode},
    dataplane::{
        attach::{attach_pinned, detach_pinned, error_chain, Attached, InstancePaths, Mode},
        Dataplane,
    },
    netdev::link::{self, Query},
};

/// A link pinned by an earlier run, and where its program runs now.
#[derive(Debug)]
pub struct PinnedAttachment {
    pub ifname: String,
    pub pin: PathBuf,
    /// "native" / "generic", or `None` when the program is not on the
    /// interface any more (the interface was deleted, maybe recreated).
    pub mode: Option<&'static str>,
}

#[derive(Debug, Error)]
pub enum AdoptionError {
    #[error(
        "{ifname} is attached in {pinned} mode by the pinned state of instance {instance} \
         ({}), but xdp_mode = \"{asked}\" is asked: an attachment keeps its mode when xlb \
         adopts it. Run with xdp_mode = \"{keep}\" (--xdp-mode {keep}), or run `xlb down{}` \
         first (traffic is then not balanced until the next `xlb run`)",
        pin.display(),
        if *instance == crate::config::limits::DEFAULT_INSTANCE { String::new() } else { format!(" --instance {instance}") }
    )]
    ModeChanged {
        ifname: String,
        instance: String,
        pin: PathBuf,
        pinned: &'static str,
        asked: &'static str,
        keep: &'static str,
    },
    #[error("reading the pinned link {}", pin.display())]
    ReadPin {
        pin: PathBuf,
        #[source]
        source: aya::programs::links::LinkError,
    },
}

fn config_mode(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Native => "native",
        XdpMode::Skb => "skb",
    }
}

/// The links pinned under `paths`, with the mode their program runs in.
pub async fn pinned(
    nl: &rtnetlink::Handle,
    paths: &InstancePaths,
) -> Result<Vec<PinnedAttachment>, AdoptionError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(paths.links()) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let pin = e.path();
        let ifname = e.file_name().to_string_lossy().into_owned();
        let read = |source| AdoptionError::ReadPin {
            pin: pin.clone(),
            source,
        };
        let fd: FdLink = PinnedLink::from_pin(&pin).map_err(read)?.into();
        let prog_id = fd.info().map_err(read)?.program_id();
        let mode = match link::get(nl, Query::Name(&ifname)).await {
            Ok(l) => l.xdp.mode_of(prog_id),
            Err(_) => None,
        };
        out.push(PinnedAttachment { ifname, pin, mode });
    }
    out.sort_by(|a, b| a.ifname.cmp(&b.ifname));
    Ok(out)
}

/// Refuses a mode that differs from the one a pinned link runs in. Native
/// asked and generic found is the same request as before when the driver
/// refused native mode then (the fallback marker says so).
pub fn check_modes(
    pinned: &[PinnedAttachment],
    g: &GlobalConfig,
    paths: &InstancePaths,
) -> Result<(), AdoptionError> {
    for p in pinned {
        if !g.interfaces.contains(&p.ifname) {
            continue;
        }
        let conflict = match (g.xdp_mode, p.mode) {
            (XdpMode::Skb, Some("native")) => true,
            (XdpMode::Native, Some("generic")) => !paths.fallback_marker(&p.ifname).exists(),
            _ => false,
        };
        if conflict {
            let pinned = p.mode.unwrap_or("unknown");
            return Err(AdoptionError::ModeChanged {
                ifname: p.ifname.clone(),
                instance: g.instance.clone(),
                pin: p.pin.clone(),
                pinned,
                asked: config_mode(g.xdp_mode),
                keep: if pinned == "native" { "native" } else { "skb" },
            });
        }
    }
    Ok(())
}

/// Attaches (or swaps into the pinned links) on every configured interface,
/// then detaches the links of interfaces no longer configured.
pub async fn attach_all(
    dp: &mut Dataplane,
    nl: &rtnetlink::Handle,
    paths: &InstancePaths,
    g: &GlobalConfig,
    pinned: &[PinnedAttachment],
) -> anyhow::Result<()> {
    let mode = match g.xdp_mode {
        XdpMode::Native => Mode::Native,
        XdpMode::Skb => Mode::Skb,
    };
    let prog_id = dp
        .program()?
        .info()
        .context("reading the loaded program's id")?
        .id();
    for ifname in &g.interfaces {
        if let Some(p) = pinned
            .iter()
            .find(|p| &p.ifname == ifname && p.mode.is_none())
        {
            // The link died with its device (the interface was deleted and
            // maybe recreated): swapping a program into it would attach
            // nothing.
            info!(interface = %ifname, "the pinned link no longer runs on the interface (recreated?): attaching anew");
            detach_pinned(&p.pin).with_context(|| format!("removing {}", p.pin.display()))?;
        }
        let outcome = attach_pinned(dp.program()?, ifname, mode, &paths.link(ifname))
            .with_context(|| format!("attaching to {ifname}"))?;
        let marker = paths.fallback_marker(ifname);
        match &outcome {
            Attached::Replaced => {
                info!(interface = %ifname, "replaced the program on the pinned link (no packet lost)")
            }
            Attached::New { mode } => {
                remove_marker(&marker);
                info!(interface = %ifname, mode, "attached")
            }
            Attached::Fallback { reason } => {
                std::fs::create_dir_all(&marker)
                    .with_context(|| format!("creating {}", marker.display()))?;
                warn!(interface = %ifname, %reason, "native XDP was refused; attached in generic (skb) mode, which is slower")
            }
        }
        verify(nl, ifname, prog_id).await?;
    }
    let configured: BTreeSet<&String> = g.interfaces.iter().collect();
    for p in pinned.iter().filter(|p| !configured.contains(&p.ifname)) {
        detach_pinned(&p.pin).with_context(|| format!("removing {}", p.pin.display()))?;
        remove_marker(&paths.fallback_marker(&p.ifname));
        warn!(interface = %p.ifname, "detached: the interface is no longer in global.interfaces");
    }
    Ok(())
}

fn remove_marker(marker: &Path) {
    if let Err(e) = std::fs::remove_dir(marker) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(marker = %marker.display(), error = %error_chain(&e), "could not remove the fallback marker");
        }
    }
}

/// The kernel's view: program `prog_id` runs on `ifname`.
async fn verify(nl: &rtnetlink::Handle, ifname: &str, prog_id: u32) -> anyhow::Result<()> {
    let l = link::get(nl, Query::Name(ifname)).await?;
    if l.xdp.mode_of(prog_id).is_none() {
        bail!(
            "attached to {ifname}, but the kernel shows another XDP program there (or none): \
             {:?}",
            l.xdp
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn global(mode: &str) -> GlobalConfig {
        let text = format!(
            "[global]\ninterfaces = [\"eth0\"]\nouter_source_v4 = \"10.0.0.1\"\nxdp_mode = \"{mode}\"\n"
        );
        Config::from_toml_str(&text, None)
            .unwrap_or_else(|e| panic!("{e}"))
            .global
    }

    fn pinned(ifname: &str, mode: Option<&'static str>) -> Vec<PinnedAttachment> {
        vec![PinnedAttachment {
            ifname: ifname.into(),
            pin: PathBuf::from(format!("/sys/fs/bpf/xlb/default/links/{ifname}")),
            mode,
        }]
    }

    #[test]
    fn a_changed_mode_is_refused_and_a_native_fallback_is_not() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let paths = InstancePaths {
            root: dir.path().to_path_buf(),
        };
        let err = check_modes(&pinned("eth0", Some("native")), &global("skb"), &paths)
            .err()
            .unwrap_or_else(|| panic!("skb over native accepted"));
        let text = err.to_string();
        assert!(
            text.contains("attached in native mode") && text.contains("--xdp-mode native"),
            "{text}"
        );
        assert!(check_modes(&pinned("eth0", Some("generic")), &global("native"), &paths).is_err());
        // Native was asked before too, and the driver refused it.
        std::fs::create_dir_all(paths.fallback_marker("eth0")).unwrap_or_else(|e| panic!("{e}"));
        assert!(check_modes(&pinned("eth0", Some("generic")), &global("native"), &paths).is_ok());
        // The same mode; a link whose device is gone; an interface that
        // left the config (detached, not refused).
        for (p, mode) in [
            (pinned("eth0", Some("native")), "native"),
            (pinned("eth0", Some("generic")), "skb"),
            (pinned("eth0", None), "skb"),
            (pinned("eth1", Some("native")), "skb"),
        ] {
            assert!(
                check_modes(&p, &global(mode), &paths).is_ok(),
                "{p:?} {mode}"
            );
        }
    }
}
