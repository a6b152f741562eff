//! Attaching the balancer to interfaces with pinned bpf_links, so the program
//! keeps running when the daemon exits and a restarted daemon (same or new
//! binary) swaps its program in atomically (`bpf_link_update`): no packet sees
//! an interface without a program.
//!
//! Layout under bpffs, per instance:
//! `/sys/fs/bpf/xlb/<instance>/maps/<MAP>` and `/sys/fs/bpf/xlb/<instance>/links/<ifname>`.

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::programs::{
    links::{FdLink, PinnedLink},
    xdp::XdpLink,
    Xdp, XdpMode,
};
use thiserror::Error;

pub const BPFFS: &str = "/sys/fs/bpf";

/// The pin paths of one xlb instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstancePaths {
    pub root: PathBuf,
}

impl InstancePaths {
    pub fn new(instance: &str) -> Self {
        Self {
            root: Path::new(BPFFS).join("xlb").join(instance),
        }
    }

    pub fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }

    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    pub fn link(&self, ifname: &str) -> PathBuf {
        self.links().join(ifname)
    }

    /// Links of `xlb_pass` on veth peers (`xlb pass attach`, `xlb run
    /// --veth-peer attach`); they go with the instance.
    pub fn pass_links(&self) -> PathBuf {
        self.root.join("pass")
    }

    pub fn pass_link(&self, name: &str) -> PathBuf {
        self.pass_links().join(name)
    }

    /// An empty directory marking that native mode was asked for `ifname`
    /// and the driver refused it (the link runs in generic mode): bpffs
    /// holds only directories and pins, and this fact must outlive the
    /// daemon so that the next run can tell a fallback from a mode change.
    pub fn fallback_marker(&self, ifname: &str) -> PathBuf {
        self.root.join("native-refused").join(ifname)
    }
}

#[derive(Debug, Error)]
pub enum AttachError {
    #[error("cannot mount bpffs on {BPFFS}")]
    MountBpffs(#[source] io::Error),
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("interface {ifname} does not exist")]
    NoSuchInterface { ifname: String },
    #[error(
        "attaching to {ifname} in {mode} mode failed (is another XDP program attached? \
         `ip link show {ifname}` shows it)"
    )]
    Attach {
        ifname: String,
        mode: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("the kernel attached {ifname} without a bpf_link (kernel < 5.9?); xlb needs links to survive restarts")]
    NoLink { ifname: String },
    #[error("the pinned link {} cannot be opened", path.display())]
    OpenPin {
        path: PathBuf,
        #[source]
        source: aya::programs::links::LinkError,
    },
    #[error("replacing the program behind the pinned link {}", path.display())]
    Replace {
        path: PathBuf,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("pinning the link at {}", path.display())]
    Pin {
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("removing {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Requested attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Native (driver) mode; falls back to generic mode with a warning.
    Native,
    /// Generic (skb) mode, as asked.
    Skb,
}

/// What happened on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A pinned link existed: its program was replaced atomically.
    Replaced,
    /// Newly attached in this mode.
    New { mode: &'static str },
    /// Native mode failed, generic mode was used instead; `reason` says why.
    Fallback { reason: String },
}

/// Mounts bpffs on /sys/fs/bpf when nothing is mounted there (fresh machines),
/// as production daemons do. Returns whether it had to mount it: then the pins
/// live in this process's mount namespace, which outlives the process only if
/// it is the host's (not under `ip netns exec`, which makes a private one).
pub fn ensure_bpffs() -> Result<bool, AttachError> {
    if is_bpffs(Path::new(BPFFS)) {
        return Ok(false);
    }
    nix::mount::mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| AttachError::MountBpffs(io::Error::from(e)))?;
    Ok(true)
}

fn is_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

fn mkdir(path: &Path) -> Result<(), AttachError> {
    std::fs::create_dir_all(path).map_err(|source| AttachError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Attaches `program` to `ifname`, or swaps it into the link pinned at `pin`.
pub fn attach_pinned(
    program: &mut Xdp,
    ifname: &str,
    mode: Mode,
    pin: &Path,
) -> Result<Attached, AttachError> {
    if let Some(dir) = pin.parent() {
        mkdir(dir)?;
    }
    if pin.exists() {
        let pinned = PinnedLink::from_pin(pin).map_err(|source| AttachError::OpenPin {
            path: pin.to_path_buf(),
            source,
        })?;
        let fd_link: FdLink = pinned.into();
        let link = XdpLink::try_from(fd_link).map_err(|source| AttachError::OpenPin {
            path: pin.to_path_buf(),
            source,
        })?;
        program
            .attach_to_link(link)
            .map_err(|source| AttachError::Replace {
                path: pin.to_path_buf(),
                source,
            })?;
        return Ok(Attached::Replaced);
    }
    // if_nametoindex answers for the calling thread's network namespace
    // (/sys/class/net shows the namespace sysfs was mounted in).
    if nix::net::if_::if_nametoindex(ifname).is_err() {
        return Err(AttachError::NoSuchInterface {
            ifname: ifname.to_string(),
        });
    }
    let (id, outcome) = match mode {
        Mode::Skb => (
            attach(program, ifname, XdpMode::Skb, "generic")?,
            Attached::New { mode: "generic" },
        ),
        Mode::Native => match attach(program, ifname, XdpMode::Driver, "native") {
            Ok(id) => (id, Attached::New { mode: "native" }),
            Err(native) => {
                let reason = error_chain(&native);
                let id = attach(program, ifname, XdpMode::Skb, "generic")?;
                (id, Attached::Fallback { reason })
            }
        },
    };
    let link = program
        .take_link(id)
        .map_err(|source| AttachError::Attach {
            ifname: ifname.to_string(),
            mode: "native",
            source,
        })?;
    let fd_link = FdLink::try_from(link).map_err(|_| AttachError::NoLink {
        ifname: ifname.to_string(),
    })?;
    fd_link.pin(pin).map_err(|source| AttachError::Pin {
        path: pin.to_path_buf(),
        source,
    })?;
    Ok(outcome)
}

fn attach(
    program: &mut Xdp,
    ifname: &str,
    mode: XdpMode,
    name: &'static str,
) -> Result<aya::programs::xdp::XdpLinkId, AttachError> {
    program
        .attach(ifname, mode)
        .map_err(|source| AttachError::Attach {
            ifname: ifname.to_string(),
            mode: name,
            source,
        })
}

/// Detaches by removing the link pin (the last reference) and returns whether
/// there was one.
pub fn detach_pinned(pin: &Path) -> Result<bool, AttachError> {
    if !pin.exists() {
        return Ok(false);
    }
    let pinned = PinnedLink::from_pin(pin).map_err(|source| AttachError::OpenPin {
        path: pin.to_path_buf(),
        source,
    })?;
    // Unpinning drops the last reference once the returned fd closes.
    let fd = pinned.unpin().map_err(|source| AttachError::Remove {
        path: pin.to_path_buf(),
        source,
    })?;
    drop(fd);
    Ok(true)
}

/// Detaches every pinned link of an instance and removes all its pins.
/// Returns the interfaces that were detached.
pub fn remove_instance(paths: &InstancePaths) -> Result<Vec<String>, AttachError> {
    let mut detached = Vec::new();
    if let Ok(entries) = std::fs::read_dir(paths.links()) {
        for e in entries.flatten() {
            if detach_pinned(&e.path())? {
                detached.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    if paths.root.exists() {
        std::fs::remove_dir_all(&paths.root).map_err(|source| AttachError::Remove {
            path: paths.root.clone(),
            source,
        })?;
    }
    // Leave /sys/fs/bpf/xlb if other instances remain; remove it when empty.
    if let Some(parent) = paths.root.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(detached)
}

/// "a: b: c" from an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
