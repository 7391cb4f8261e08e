//! Writes `draft-spec/vectors/*.json` and the draft's Appendix A from
//! `subcast-proto`. Run after any wire change, then review the diff.

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;

/// Regenerate the wire test vectors of the subcast Internet-Draft.
#[derive(Parser, Debug)]
struct Args {
    /// The draft-spec directory (holds vectors/ and the draft).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR")))]
    dir: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let vectors = subcast_draft_spec::vectors();
    let dir = args.dir.join("vectors");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, v) in vectors.iter().enumerate() {
        let path = dir.join(format!("{:02}-{}.json", i + 1, v.name()));
        let text = serde_json::to_string_pretty(v)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let draft = args.dir.join(subcast_draft_spec::DRAFT_FILE);
    let text =
        std::fs::read_to_string(&draft).with_context(|| format!("reading {}", draft.display()))?;
    let spliced =
        subcast_draft_spec::splice_appendix(&text, &vectors).map_err(anyhow::Error::msg)?;
    std::fs::write(&draft, spliced).with_context(|| format!("writing {}", draft.display()))?;
    println!(
        "wrote {} vectors to {} and Appendix A of {}",
        vectors.len(),
        dir.display(),
        draft.display()
    );
    Ok(())
}
