//! Is GlusterFS installed? A clear answer naming what to install.

use std::path::Path;

use super::error::{GlusterError, INSTALL_HINT, Result};

const BIN_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

fn have_bin(name: &str) -> bool {
    BIN_DIRS.iter().any(|d| Path::new(d).join(name).exists())
}

/// Directories where a shared library may be (the multiarch ones included).
pub(crate) fn lib_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    for base in ["/usr/lib", "/lib", "/usr/lib64", "/lib64"] {
        dirs.push(Path::new(base).to_path_buf());
        if let Ok(rd) = std::fs::read_dir(base) {
            dirs.extend(
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with("-linux-gnu"))
                    .map(|e| e.path()),
            );
        }
    }
    dirs
}

fn have_lib(name: &str) -> bool {
    lib_dirs().iter().any(|d| d.join(name).exists())
}

/// What the GlusterFS peer needs and is missing, as (thing, Debian package).
pub fn missing() -> Vec<(&'static str, &'static str)> {
    missing_with(have_bin, have_lib, Path::new("/dev/fuse").exists())
}

fn missing_with(
    bin: impl Fn(&str) -> bool,
    lib: impl Fn(&str) -> bool,
    fuse: bool,
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for (b, pkg) in [
        ("glusterd", "glusterfs-server"),
        ("gluster", "glusterfs-server"),
        ("glusterfs", "glusterfs-client"),
        ("python3", "python3"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
        ("ethtool", "ethtool"),
    ] {
        if !bin(b) {
            out.push((b, pkg));
        }
    }
    if !lib("libgfapi.so.0") {
        out.push(("libgfapi.so.0", "glusterfs-client"));
    }
    if !fuse {
        out.push(("/dev/fuse", "fuse3 (or load the fuse module)"));
    }
    out
}

/// `Ok` when everything the peer needs is here; otherwise an error naming what is
/// missing and the `apt-get install` line that brings it.
pub fn check_installed() -> Result<()> {
    error_for(&missing())
}

fn error_for(miss: &[(&str, &str)]) -> Result<()> {
    if miss.is_empty() {
        return Ok(());
    }
    let mut pkgs: Vec<&str> = INSTALL_HINT
        .trim_start_matches("apt-get install ")
        .split(' ')
        .collect();
    for (_, p) in miss {
        if !p.contains(' ') && !pkgs.contains(p) {
            pkgs.push(p);
        }
    }
    Err(GlusterError::Missing {
        missing: miss.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", "),
        install: format!("apt-get install {}", pkgs.join(" ")),
    })
}

/// Whether the GlusterFS peer can run here (root, iproute2 and the packages). When
/// [`crate::REQUIRE_ENV`] is set this panics with the install line instead of
/// returning false, so CI cannot skip the peer's tests.
pub fn available() -> bool {
    if !crate::lab_tests_enabled() {
        return false;
    }
    match check_installed() {
        Ok(()) => true,
        Err(e) => {
            assert!(!crate::required(), "{}: {e}", crate::REQUIRE_ENV);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_the_install_line() {
        let all = missing_with(|_| true, |_| true, true);
        assert!(all.is_empty());
        assert!(error_for(&all).is_ok());

        // No GlusterFS at all: the error names the binaries and the install line.
        let none = missing_with(|b| !b.starts_with("gluster"), |_| false, true);
        let names: Vec<&str> = none.iter().map(|(m, _)| *m).collect();
        assert_eq!(names, ["glusterd", "gluster", "glusterfs", "libgfapi.so.0"]);
        let text = error_for(&none).unwrap_err().to_string();
        assert!(
            text.contains("missing glusterd, gluster, glusterfs"),
            "{text}"
        );
        assert!(
            text.ends_with("install with `apt-get install glusterfs-server glusterfs-client`"),
            "{text}"
        );

        // Other missing tools add their packages to the same line.
        let some = missing_with(|b| b != "ethtool" && b != "nsenter", |_| true, false);
        let text = error_for(&some).unwrap_err().to_string();
        assert!(
            text.contains("apt-get install glusterfs-server glusterfs-client util-linux ethtool`"),
            "{text}"
        );
        assert!(text.contains("/dev/fuse"), "{text}");
    }

    #[test]
    fn finds_a_library_that_exists() {
        // libc is everywhere glibc is; a made-up name is nowhere.
        assert!(have_lib("libc.so.6"));
        assert!(!have_lib("libsubcast-no-such-library.so.0"));
    }
}
