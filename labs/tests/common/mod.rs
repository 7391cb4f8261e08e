//! Helpers shared by the lab tests that run `subcast-lab` with the daemons.

use std::path::PathBuf;

/// The directory of `subcast-lab`, where the daemons must have been built.
pub fn daemons_dir() -> PathBuf {
    let lab = PathBuf::from(env!("CARGO_BIN_EXE_subcast-lab"));
    let dir = lab.parent().unwrap().to_path_buf();
    for b in ["subcast-agent", "subcast-controller", "subcast-node"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: run `cargo build -p subcast-agent -p subcast-controller \
             -p subcast-node --bins` before this test",
            dir.join(b).display()
        );
    }
    dir
}
