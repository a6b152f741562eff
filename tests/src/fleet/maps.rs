//! A node's Maglev table as its pinned maps hold it, slot by slot, named by
//! backend *address*: the VIP's entry in `XLB_VIPS` gives its table's place
//! in `XLB_MAGLEV`, each slot a backend id, and `XLB_BACKENDS` that id's
//! address. Ids are each node's own; addresses are what must agree.

use std::net::IpAddr;

use aya::maps::{Array, HashMap, Map, MapData};
use lb_common::{map_names, Backend, VipInfo, VipKey, NO_BACKEND};
use lb_userspace::dataplane::{attach::InstancePaths, MaglevTable};

/// One VIP's table on one node.
#[derive(Debug)]
pub struct PinnedTable {
    /// The backend id of every slot.
    pub ids: Vec<u32>,
    /// The backend address of every slot (`None`: an empty slot).
    pub addresses: Vec<Option<IpAddr>>,
}

/// Reads `vip`'s table from the maps `instance` pinned, whose tables have
/// `table_size` slots.
pub fn pinned_table(instance: &str, vip: &VipKey, table_size: u32) -> PinnedTable {
    let maps = InstancePaths::new(instance).maps();
    let open = |name: &str| {
        MapData::from_pin(maps.join(name))
            .unwrap_or_else(|e| panic!("opening the pinned {name} of {instance}: {e}"))
    };
    let vips: HashMap<MapData, VipKey, VipInfo> =
        HashMap::try_from(Map::HashMap(open(map_names::VIPS)))
            .unwrap_or_else(|e| panic!("{}: {e}", map_names::VIPS));
    let info = vips
        .get(vip, 0)
        .unwrap_or_else(|e| panic!("{instance} has no entry for {vip:?}: {e}"));
    assert_eq!(
        info.table_size, table_size,
        "{instance}: the VIP's table is not a whole table"
    );
    let backends: Array<MapData, Backend> = Array::try_from(Map::Array(open(map_names::BACKENDS)))
        .unwrap_or_else(|e| panic!("{}: {e}", map_names::BACKENDS));
    let table = MaglevTable::open_pinned(&maps.join(map_names::MAGLEV), table_size)
        .unwrap_or_else(|e| panic!("mapping {}'s {}: {e}", instance, map_names::MAGLEV));
    let ids = table.read(info.table_offset, info.table_size);
    let mut known: std::collections::HashMap<u32, Option<IpAddr>> = Default::default();
    let addresses = ids
        .iter()
        .map(|&id| {
            *known.entry(id).or_insert_with(|| {
                if id == NO_BACKEND {
                    return None;
                }
                let b = backends
                    .get(&id, 0)
                    .unwrap_or_else(|e| panic!("{instance}: backend id {id}: {e}"));
                assert!(
                    b.is_active(),
                    "{instance}: slot names inactive backend {id}"
                );
                Some(b.addr())
            })
        })
        .collect();
    PinnedTable { ids, addresses }
}
