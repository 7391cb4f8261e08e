//! Where a lab keeps its files (stores, bricks, configs, logs) on disk.
//!
//! On ext4 without a journal (the project machines' root file system), a
//! new inode is never one freed in the last 60 s (300 s while its inode
//! table block is dirty): every allocation walks past each such inode in
//! its block group. A lab deletes thousands of files when it ends, and
//! ext4 puts a new directory under `/tmp` in `/tmp`'s own block group, so
//! the next lab's storage nodes and GlusterFS bricks paid 0.6-1 ms of CPU
//! for every file they created (20-30 µs elsewhere on the same disk),
//! more the more labs had just run: measurements drifted run after run
//! and recovered after a minute idle. Marked "top directory", a scratch
//! directory has each subdirectory placed as ext4 places top-level ones,
//! in a block group with room chosen at random, away from the freed
//! inodes; both systems under test get the same.

use std::path::Path;

/// Has ext4 (and other file systems that know the flag) spread the
/// subdirectories of `dir` over block groups, as `chattr +T` does. A file
/// system without the flag leaves things as they were: nothing to do there.
pub fn spread_subdirs(dir: &Path) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    let set = std::fs::File::open(dir).and_then(|f| {
        let flags = ioctl_getflags(&f)?;
        if !flags.contains(IFlags::TOPDIR) {
            ioctl_setflags(&f, flags | IFlags::TOPDIR)?;
        }
        Ok(())
    });
    if let Err(e) = set {
        tracing::debug!(dir = %dir.display(), error = %e, "no top-directory flag (not ext4?)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_spreads_its_subdirectories_where_the_fs_can() {
        let dir = std::env::temp_dir().join(format!("scratch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        spread_subdirs(&dir);
        let flags = rustix::fs::ioctl_getflags(std::fs::File::open(&dir).unwrap());
        std::fs::remove_dir(&dir).unwrap();
        match flags {
            // A file system with inode flags (ext2/3/4) has it set now.
            Ok(f) => assert!(f.contains(rustix::fs::IFlags::TOPDIR), "flags {f:?}"),
            // One without them (tmpfs, overlayfs) refuses the ioctl.
            Err(e) => println!("no inode flags on {}: {e:?}", dir.display()),
        }
    }
}
