//! Listing the manifests of a bucket across every negotiating group (the
//! catalog form of MANIFEST_QUERY, see [`crate::catalog`]) and fetching
//! manifests and small objects by id.

use crate::catalog::{catalog_hash, cursor_of};
use crate::chunking::{chunk_id, name_hash};
use crate::client::{Client, Finished, Task, new_txid};
use crate::get::{GetMachine, GetTimers, ManifestLookup};
use crate::manifest::Manifest;
use crate::placement::ng_index;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use subcast_proto::replicast::{Hash32, MAX_OFFERED_VERSIONS};

/// A manifest some node listed: where, its id and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub group: Ipv6Addr,
    pub id: Hash32,
    pub size: u32,
}

/// The negotiating group of a name's manifests.
pub fn group_of_name(client: &Client, name: &str) -> Ipv6Addr {
    let g = &client.cfg.negotiating_groups;
    g[ng_index(&name_hash(name), g.len())]
}

/// Every manifest of `bucket` (`""`: of every bucket) that the members of
/// each negotiating group hold. Fails unless, in every group, enough
/// members answered every page that a holder of each manifest did (with
/// the group's N members known: N - R + 1; with none known: one), so that
/// `gc` can trust that what is not listed does not exist.
pub async fn list_bucket(client: &mut Client, bucket: &str) -> anyhow::Result<Vec<Listed>> {
    let hash = catalog_hash(bucket);
    let (port, r) = (client.cfg.port, client.cfg.replicas);
    let mut cursors: BTreeMap<Ipv6Addr, u64> = client
        .cfg
        .negotiating_groups
        .iter()
        .map(|g| (*g, 0))
        .collect();
    let mut found: HashMap<Hash32, Listed> = HashMap::new();
    while !cursors.is_empty() {
        let mut pending: Vec<(Ipv6Addr, u64)> = cursors.iter().map(|(g, c)| (*g, *c)).collect();
        let mut pages = Vec::new();
        client
            .run(
                pending.len(),
                |now| {
                    let (g, c) = pending.pop()?;
                    Some(Task::Lookup(Box::new(ManifestLookup::new(
                        new_txid(),
                        hash,
                        c,
                        g,
                        port,
                        r,
                        GetTimers {
                            offer_timeout: Duration::from_millis(150),
                            ..GetTimers::default()
                        },
                        now,
                    ))))
                },
                |_, f| {
                    if let Finished::Lookup(m) = f {
                        pages.push(m);
                    }
                    Ok(())
                },
            )
            .await?;
        for m in pages {
            let g = m.group();
            let (answered, known) = (m.responders().len(), m.known_members());
            let need = crate::versions::quorum(known, r);
            anyhow::ensure!(
                answered >= need,
                "listing of negotiating group {g}: only {answered} of {known} members answered (need {need} so that a holder of every manifest did): retry when the nodes are back"
            );
            // Members that filled a page have more: go on after the lowest
            // of their last entries (entries of others beyond it are kept).
            let mut next: Option<u64> = None;
            for node in m.responders() {
                let mine: Vec<u64> = m
                    .versions
                    .iter()
                    .filter(|(_, f)| f.holders.contains(node))
                    .map(|(k, _)| cursor_of(&k.manifest_id))
                    .collect();
                if mine.len() >= MAX_OFFERED_VERSIONS {
                    let last = mine.iter().copied().max().unwrap_or(0);
                    next = Some(next.map_or(last, |n: u64| n.min(last)));
                }
            }
            for (k, f) in &m.versions {
                found.insert(
                    k.manifest_id,
                    Listed {
                        group: g,
                        id: k.manifest_id,
                        size: f.size,
                    },
                );
            }
            match next {
                Some(last) if last < u64::MAX => {
                    cursors.insert(g, last + 1);
                }
                _ => {
                    cursors.remove(&g);
                }
            }
        }
    }
    let mut v: Vec<Listed> = found.into_values().collect();
    v.sort_unstable_by_key(|l| l.id);
    Ok(v)
}

/// Fetches chunks by id from the given groups, verified; results by id
/// (those no node served are missing).
pub async fn fetch_chunks(
    client: &mut Client,
    items: &[(Ipv6Addr, Hash32, Option<usize>)],
) -> anyhow::Result<HashMap<Hash32, Vec<u8>>> {
    let (port, per) = (client.cfg.port, client.cfg.datagram_payload(1));
    let parallel = client.cfg.parallel.max(1);
    let mut it = items.iter();
    let mut out = HashMap::with_capacity(items.len());
    client
        .run(
            parallel,
            |now: Instant| {
                let (g, id, size) = it.next()?;
                Some(Task::Get(Box::new(GetMachine::new(
                    new_txid(),
                    *id,
                    *g,
                    port,
                    per,
                    16 << 20,
                    *size,
                    GetTimers::default(),
                    now,
                ))))
            },
            |_, f| {
                // A chunk no node serves is left out: the caller sees it
                // missing (a manifest gc collected since it was listed).
                if let Finished::Get(Ok(bytes)) = f {
                    out.insert(chunk_id(&bytes), bytes);
                }
                Ok(())
            },
        )
        .await?;
    Ok(out)
}

/// Lists `bucket` and fetches every listed manifest. A manifest listed
/// but then served by nobody is one `gc` collected meanwhile (only
/// versions no one needs any more): the bucket is listed again, and only
/// a manifest still listed and still not served is an error.
pub async fn list_and_fetch(
    client: &mut Client,
    bucket: &str,
) -> anyhow::Result<(usize, Vec<(Hash32, Manifest)>)> {
    let mut listed = list_bucket(client, bucket).await?;
    let mut have: HashMap<Hash32, Manifest> = HashMap::new();
    for round in 0..3 {
        let want: Vec<Listed> = listed
            .iter()
            .filter(|l| !have.contains_key(&l.id))
            .copied()
            .collect();
        let items: Vec<_> = want
            .iter()
            .map(|l| (l.group, l.id, Some(l.size as usize)))
            .collect();
        let got = fetch_chunks(client, &items).await?;
        for (id, b) in got {
            let m = Manifest::decode(&b).map_err(|e| {
                anyhow::anyhow!("manifest {} does not decode: {e}", hex::encode(id))
            })?;
            have.insert(id, m);
        }
        if listed.iter().all(|l| have.contains_key(&l.id)) {
            break;
        }
        anyhow::ensure!(
            round < 2,
            "{} listed manifests could not be read from any node: retry",
            listed.iter().filter(|l| !have.contains_key(&l.id)).count()
        );
        listed = list_bucket(client, bucket).await?;
        have.retain(|id, _| listed.iter().any(|l| l.id == *id));
    }
    let n = listed.len();
    let mut out: Vec<(Hash32, Manifest)> = have.into_iter().collect();
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok((n, out))
}

/// Fetches and decodes the listed manifests.
pub async fn fetch_manifests(
    client: &mut Client,
    listed: &[Listed],
) -> anyhow::Result<Vec<(Hash32, Manifest)>> {
    let items: Vec<_> = listed
        .iter()
        .map(|l| (l.group, l.id, Some(l.size as usize)))
        .collect();
    let got = fetch_chunks(client, &items).await?;
    let mut out = Vec::with_capacity(listed.len());
    for l in listed {
        let b = got
            .get(&l.id)
            .ok_or_else(|| anyhow::anyhow!("manifest {} not received", hex::encode(l.id)))?;
        let m = Manifest::decode(b)
            .map_err(|e| anyhow::anyhow!("manifest {} does not decode: {e}", hex::encode(l.id)))?;
        out.push((l.id, m));
    }
    Ok(out)
}

/// Fetches the manifest `id` of `name` (placed by the name).
pub async fn fetch_manifest(
    client: &mut Client,
    name: &str,
    id: Hash32,
) -> anyhow::Result<Manifest> {
    let g = group_of_name(client, name);
    let l = Listed {
        group: g,
        id,
        size: 0,
    };
    let items = [(l.group, l.id, None)];
    let got = fetch_chunks(client, &items).await?;
    let b = got
        .get(&id)
        .ok_or_else(|| anyhow::anyhow!("manifest {} of {name:?} not received", hex::encode(id)))?;
    let m = Manifest::decode(b)
        .map_err(|e| anyhow::anyhow!("manifest {} does not decode: {e}", hex::encode(id)))?;
    anyhow::ensure!(
        m.name == name,
        "manifest {} names {:?}, not {name:?}",
        hex::encode(id),
        m.name
    );
    Ok(m)
}

/// The whole (small) object `m` describes, in memory, verified.
pub async fn fetch_object(client: &mut Client, m: &Manifest) -> anyhow::Result<Vec<u8>> {
    if let Some(b) = &m.inline {
        anyhow::ensure!(
            *blake3::hash(b).as_bytes() == m.object_hash,
            "object {:?} version {}: the bytes inside its manifest do not match its hash",
            m.name,
            m.version
        );
        return Ok(b.clone());
    }
    let groups = client.cfg.negotiating_groups.clone();
    let items: Vec<_> = m
        .chunks
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                groups[ng_index(id, groups.len())],
                *id,
                Some(m.chunk_len(i) as usize),
            )
        })
        .collect();
    let got = fetch_chunks(client, &items).await?;
    let mut out = Vec::with_capacity(m.size as usize);
    for id in &m.chunks {
        let b = got.get(id).ok_or_else(|| {
            anyhow::anyhow!("chunk {} of {:?} not received", hex::encode(id), m.name)
        })?;
        out.extend_from_slice(b);
    }
    anyhow::ensure!(
        *blake3::hash(&out).as_bytes() == m.object_hash,
        "object {:?} version {}: whole-object hash does not match its manifest",
        m.name,
        m.version
    );
    Ok(out)
}

/// Manifests grouped by object name, each name's oldest first (by
/// version, writer, manifest id).
pub fn by_name(ms: Vec<(Hash32, Manifest)>) -> BTreeMap<String, Vec<(Hash32, Manifest)>> {
    let mut out: BTreeMap<String, Vec<(Hash32, Manifest)>> = BTreeMap::new();
    for (id, m) in ms {
        out.entry(m.name.clone()).or_default().push((id, m));
    }
    for v in out.values_mut() {
        v.sort_by_key(|(id, m)| (m.version, m.writer, *id));
    }
    out
}
