//! choose_view_with_epochs: a view from a node that has seen a newer config epoch wins over
//! lagging nodes, and a view older than the map in use never replaces it (issue 12, finding 9).

use shardis_slots::{
    ConsensusError, Endpoint, Node, Shard, SlotRange, Topology, choose_view,
    choose_view_with_epochs, cluster_nodes_config_epoch,
};

/// Slots 0..=8191 on a, 8192..=16383 on `second` (a failover or migration changes it).
fn view(second: &str) -> Topology {
    let shard = |id: &str, a, b| Shard {
        primary: Node::primary(Endpoint::new(format!("10.0.0.{}", id.len()), 7000 + b % 7))
            .with_id(id),
        replicas: vec![],
        slots: vec![SlotRange::new(a, b).unwrap()],
    };
    Topology::new(vec![shard("a", 0, 8191), shard(second, 8192, 16383)]).unwrap()
}

#[test]
fn a_higher_epoch_beats_a_lagging_majority() {
    let (stale, fresh) = (view("b"), view("bb"));
    let views = [stale.clone(), stale.clone(), fresh.clone()];
    // Without epochs the majority wins...
    assert_eq!(choose_view(&views, Some(&stale)).unwrap().topology, &stale);
    // ...with them, the view that saw the newer config does.
    let epochs = [Some(5), Some(5), Some(7)];
    let choice = choose_view_with_epochs(&views, &epochs, Some(&stale), Some(5)).unwrap();
    assert_eq!(choice.topology, &fresh);
    assert_eq!(
        (choice.epoch, choice.agreeing, choice.responded),
        (Some(7), 1, 3)
    );
}

#[test]
fn a_view_older_than_the_map_in_use_never_replaces_it() {
    let (old, current) = (view("b"), view("bb"));
    // Two lagging nodes answer with the old owner (epoch 5); the map in use came from epoch
    // 7, and a third node has seen epoch 7 but answered with an empty view.
    let views = [old.clone(), old.clone(), Topology::empty()];
    let epochs = [Some(5), Some(5), Some(7)];
    assert_eq!(
        choose_view_with_epochs(&views, &epochs, Some(&current), Some(7)).err(),
        Some(ConsensusError::OlderEpoch {
            epoch: 5,
            previous: 7
        })
    );
    // Equal or higher epochs are eligible as usual.
    let views = [old.clone(), old.clone()];
    let choice =
        choose_view_with_epochs(&views, &[Some(7), Some(8)], Some(&current), Some(7)).unwrap();
    assert_eq!((choice.topology, choice.epoch), (&old, Some(8)));
}

#[test]
fn when_every_node_reports_a_lower_epoch_the_cluster_was_rebuilt() {
    let (old, rebuilt) = (view("b"), view("bb"));
    let views = [rebuilt.clone(), rebuilt.clone()];
    let choice = choose_view_with_epochs(&views, &[Some(1), Some(1)], Some(&old), Some(9)).unwrap();
    assert_eq!(choice.topology, &rebuilt);
}

#[test]
fn unknown_epochs_change_nothing() {
    let (a, b) = (view("b"), view("bb"));
    let views = [a.clone(), a.clone(), b.clone()];
    for previous in [None, Some(&a), Some(&b)] {
        let plain = choose_view(&views, previous).unwrap();
        let with = choose_view_with_epochs(&views, &[None, None, None], previous, Some(3)).unwrap();
        assert_eq!(plain.topology, with.topology);
        assert_eq!(with.epoch, None);
    }
}

#[test]
fn config_epoch_of_a_cluster_nodes_reply() {
    use redis::Value;
    let text = "a 10.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-8191\n\
                r 10.0.0.3:7000@17000 slave a 0 0 3 connected\n\
                b 10.0.0.2:7000@17000 master - 0 0 12 connected 8192-16383\n";
    assert_eq!(
        cluster_nodes_config_epoch(&Value::BulkString(text.into())),
        Some(12)
    );
    assert_eq!(
        cluster_nodes_config_epoch(&Value::BulkString(b"garbage line".to_vec())),
        None
    );
    assert_eq!(cluster_nodes_config_epoch(&Value::Int(3)), None);
}
