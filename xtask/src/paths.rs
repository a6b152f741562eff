//! Where things are: the workspace root, `$CARGO_HOME`, and programs on PATH.

use std::{
    env,
    ffi::OsString,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .with_context(|| format!("{} has no parent directory", manifest_dir.display()))
}

/// `$CARGO_HOME`, else `~/.cargo`, as cargo and rustup resolve it.
pub fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    match env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cargo")),
        None => bail!("neither CARGO_HOME nor HOME is set: cannot find the cargo home directory"),
    }
}

/// Puts `$CARGO_HOME/bin` (where rustup's proxies and `cargo install` put
/// programs) first on this process's PATH, so every child process the xtask
/// starts finds `cargo`, `rustup` and `bpf-linker` there. Call it once at
/// start-up, before any thread exists.
pub fn prepend_cargo_bin_to_path() -> Result<()> {
    let bin = cargo_home()?.join("bin");
    let old = env::var_os("PATH").unwrap_or_default();
    let new = path_with_first(&old, &bin)?;
    // Edition 2021: `set_var` is safe; nothing else runs yet (single thread).
    env::set_var("PATH", new);
    Ok(())
}

/// `path` with `dir` first (and no other copy of it).
fn path_with_first(path: &OsString, dir: &Path) -> Result<OsString> {
    let rest = env::split_paths(path).filter(|p| p != dir);
    env::join_paths(std::iter::once(dir.to_path_buf()).chain(rest))
        .with_context(|| format!("cannot put {} on PATH", dir.display()))
}

/// The first executable file called `name` in PATH's directories.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_bin_goes_first_once() {
        let old = OsString::from("/usr/bin:/root/.cargo/bin:/bin");
        let new = path_with_first(&old, Path::new("/root/.cargo/bin")).unwrap();
        assert_eq!(new, OsString::from("/root/.cargo/bin:/usr/bin:/bin"));
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().unwrap().join("xtask/Cargo.toml").is_file());
    }
}
