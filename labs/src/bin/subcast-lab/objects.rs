//! Objects put and read back with `subcast-node` from a lab host, and the
//! lease check at the end of a run: what the attack and soak scenarios share.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::attack_setup::{controller_metrics, metric_sum};
use crate::putget::run_timeout;
use crate::scenario::Running;
use crate::stack::wait_for;

/// Longest a single `subcast-node put` or `get` may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `subcast-node put FILE --name NAME --transport rendezvous` from `sender`.
pub fn put(r: &Running, client: &str, sender: &str, name: &str, file: &Path) -> Result<()> {
    let node = r.bins.node.display().to_string();
    let f = file.display().to_string();
    let ns = r.lab.host(sender).netns.clone();
    let args = [
        node.as_str(),
        "--config",
        client,
        "put",
        &f,
        "--name",
        name,
        "--transport",
        "rendezvous",
        "--json",
        "-q",
    ];
    let (ok, _, err) = run_timeout(&r.lab, &ns, &args, CLIENT_TIMEOUT)?;
    if !ok {
        bail!("put {name} failed: {}", first_lines(&err));
    }
    Ok(())
}

/// `subcast-node get NAME -o BACK` from `sender`; whether BACK holds the
/// same bytes as `original` (BACK is removed afterwards).
pub fn get_same(
    r: &Running,
    client: &str,
    sender: &str,
    name: &str,
    original: &Path,
    back: &Path,
) -> Result<bool> {
    let node = r.bins.node.display().to_string();
    let b = back.display().to_string();
    let ns = r.lab.host(sender).netns.clone();
    let args = [
        node.as_str(),
        "--config",
        client,
        "get",
        name,
        "-o",
        &b,
        "-q",
    ];
    let (ok, _, err) = run_timeout(&r.lab, &ns, &args, CLIENT_TIMEOUT)?;
    if !ok {
        bail!("get {name} failed: {}", first_lines(&err));
    }
    let same = std::fs::read(back)? == std::fs::read(original)?;
    let _ = std::fs::remove_file(back);
    Ok(same)
}

/// A random object of `size` bytes written to the lab's scratch directory
/// as `{tag}-object-{i}.bin`, put as `lab/{tag}-{i}` and read back: whether
/// the bytes read equal those put.
pub fn put_one(
    r: &Running,
    client: &str,
    sender: &str,
    tag: &str,
    i: usize,
    size: usize,
) -> Result<bool> {
    let dir = r.lab.workdir();
    let obj = dir.join(format!("{tag}-object-{i}.bin"));
    let back = dir.join(format!("{tag}-object-{i}.back"));
    std::fs::write(&obj, crate::attack_setup::random_bytes(size)?)?;
    let name = format!("lab/{tag}-{i}");
    put(r, client, sender, &name, &obj)?;
    get_same(r, client, sender, &name, &obj, &back)
}

/// An error message without its backtrace.
pub fn first_lines(err: &str) -> String {
    err.lines()
        .take_while(|l| !l.starts_with("Stack backtrace"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

/// Leases left at the end of a run: `GET /v1/leases` polled until empty
/// (30 s: longer than any lease the lab grants lives), then the
/// controller's `subcast_controller_leases_live`. Returns (leaked, live
/// gauge, the last `/v1/leases` answer); leaked is 0 only when both say
/// none is left.
pub fn leases_leaked(r: &Running) -> Result<(usize, u64, Value)> {
    let mut leases = Value::Null;
    let gone = wait_for(
        "the controller's leases to end",
        Duration::from_secs(30),
        || {
            let (st, v) = r.stack.http(&r.lab, "GET", "/v1/leases", None)?;
            let empty = st == 200 && v.as_array().is_some_and(Vec::is_empty);
            leases = v;
            Ok(empty)
        },
    )
    .is_ok();
    let live = metric_sum(&controller_metrics(r)?, "subcast_controller_leases_live");
    let listed = leases.as_array().map_or(1, Vec::len);
    let leaked = if gone && live == 0 {
        0
    } else {
        listed.max(live as usize).max(1)
    };
    Ok((leaked, live, leases))
}
