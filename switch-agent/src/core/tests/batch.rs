//! BATCH: all or nothing, retransmissions, capacity.

use super::*;

fn batch_ack(m: &Message, txid: u64) -> Vec<u16> {
    match m {
        Message::BatchAck(b) if b.txid == txid => b.port_counts.clone(),
        other => panic!("expected BATCH_ACK of {txid}, got {other:?}"),
    }
}

#[test]
fn batch_applies_in_one_action_and_answers_each_item() {
    let mut s = Sim::new(switch());
    s.request(&set(1, x(9), &[4], 60_000));
    let applies = s.applies();
    let b = batch(
        2,
        vec![
            set_item(x(1), &[1, 2]),
            BatchItem::Clear { group: x(9) },
            BatchItem::Clear { group: x(8) },
            set_item(x(2), &[3]),
        ],
    );
    assert_eq!(batch_ack(&s.request(&b), 2), vec![2, 0, 0, 1]);
    assert_eq!(s.applies(), applies + 1, "one backend action for the batch");
    assert_eq!(s.on_switch(), [(x(1), vec![1, 2]), (x(2), vec![3])].into());
    // Retransmitted: the same BATCH_ACK, nothing applied again.
    assert_eq!(batch_ack(&s.request(&b), 2), vec![2, 0, 0, 1]);
    assert_eq!(s.applies(), applies + 1);
    assert_eq!(
        s.metric("subcast_agent_instructions_total{kind=\"BATCH\",result=\"ack\""),
        2.0
    );
}

#[test]
fn a_refused_item_refuses_the_batch_before_the_switch() {
    let mut s = Sim::new(switch());
    s.request(&set(1, x(9), &[4], 60_000));
    let before = s.on_switch();
    let applies = s.applies();
    let b = batch(
        2,
        vec![
            set_item(x(1), &[1, 2]),
            BatchItem::Clear { group: x(9) },
            set_item(x(2), &[5]), // h5 is not in Y
        ],
    );
    let (r, detail) = nak(&s.request(&b), 2);
    assert_eq!(r, NakReason::NotASubset);
    assert!(detail.starts_with("item 2 (ff15::5c00:2)"), "{detail}");
    assert_eq!(s.on_switch(), before);
    assert_eq!(s.applies(), applies);
    assert_eq!(s.agent.leases().len(), 1);
}

#[test]
fn a_switch_failure_part_way_undoes_the_batch() {
    let mut s = Sim::new(switch());
    s.request(&set(1, x(9), &[4], 60_000));
    let before = s.on_switch();
    s.sw.state().fail_groups.insert(x(2));
    let b = batch(
        2,
        vec![
            set_item(x(1), &[1, 2]),
            BatchItem::Clear { group: x(9) },
            set_item(x(2), &[3]),
        ],
    );
    let (r, detail) = nak(&s.request(&b), 2);
    assert_eq!(r, NakReason::BackendError);
    assert!(detail.starts_with("item 2"), "{detail}");
    assert_eq!(s.on_switch(), before, "x1 added and x9 removed were undone");
    assert_eq!(s.agent.leases().len(), 1);
    // Not cached: once the switch accepts, the same batch applies.
    s.sw.state().fail_groups.clear();
    assert_eq!(
        match s.request(&b) {
            Message::BatchAck(a) => a.port_counts,
            o => panic!("{o:?}"),
        },
        vec![2, 0, 1]
    );
}

/// The undo failed too: the switch state is uncertain, so the agent repairs
/// it back to its leases (retrying until the switch accepts).
#[test]
fn an_uncertain_failure_is_repaired() {
    let mut s = Sim::new(switch());
    s.request(&set(1, x(9), &[4], 60_000));
    {
        let mut st = s.sw.state();
        st.fail_groups.insert(x(2));
        st.fail_undo = true;
    }
    let b = batch(
        2,
        vec![
            set_item(x(1), &[1, 2]),
            BatchItem::Clear { group: x(9) },
            set_item(x(2), &[3]),
        ],
    );
    nak(&s.request(&b), 2);
    // The repair touched x2 as well and failed: x9 is not back yet.
    assert!(!s.on_switch().contains_key(&x(9)), "{:?}", s.on_switch());
    {
        let mut st = s.sw.state();
        st.fail_groups.clear();
        st.fail_undo = false;
    }
    s.advance(RETRY);
    assert_eq!(
        s.on_switch(),
        [(x(9), vec![4])].into(),
        "back to the leases"
    );
}

#[test]
fn capacity_is_enforced_before_the_switch() {
    let mut st = switch();
    st.capacity = Some(3);
    let mut s = Sim::new(st);
    let mut cfg = settings();
    cfg.table_capacity = Some(2);
    let mut s2 = Sim::with(switch(), cfg);
    for (s, cap) in [(&mut s, 3usize), (&mut s2, 2)] {
        let items: Vec<BatchItem> = (1..=cap as u16 + 1).map(|i| set_item(x(i), &[1])).collect();
        let (r, d) = nak(&s.request(&batch(1, items)), 1);
        assert_eq!(r, NakReason::TableFull, "{d}");
        assert!(d.contains(&format!("capacity is {cap}")), "{d}");
        assert_eq!(s.applies(), 0);
        let items: Vec<BatchItem> = (1..=cap as u16).map(|i| set_item(x(i), &[1])).collect();
        assert!(matches!(s.request(&batch(2, items)), Message::BatchAck(_)));
        assert_eq!(
            nak(&s.request(&set(3, x(50), &[1], 1000)), 3).0,
            NakReason::TableFull
        );
        // Full, but a refresh or a replacement needs no new entry.
        assert_eq!(ack_count(&s.request(&set(4, x(1), &[1], 1000)), 4), 1);
        assert_eq!(ack_count(&s.request(&set(5, x(1), &[2], 1000)), 5), 1);
        // A clear and a new group in one batch fit.
        let swap = batch(
            6,
            vec![BatchItem::Clear { group: x(1) }, set_item(x(50), &[3])],
        );
        assert!(matches!(s.request(&swap), Message::BatchAck(_)));
        assert_eq!(s.on_switch().len(), cap);
    }
    // The smaller of the backend's and the configured capacity is reported.
    assert_eq!(s2.agent.table_capacity(), Some(2));
    let mut st = switch();
    st.capacity = Some(1);
    let mut cfg = settings();
    cfg.table_capacity = Some(2);
    let s3 = Sim::with(st, cfg);
    assert_eq!(s3.hellos()[0].table_capacity, 1);
}
