//! The applier: performs a plan's ops in order on a [`MapWriter`], each table
//! write with its table built just before (see [`super::table_builder`]).

use lb_common::Backend;

use super::{
    table_builder::{TableBuilder, TableSpec},
    Op, ReconcileError,
};
use crate::dataplane::{Dataplane, DataplaneError};

/// An op as a [`MapWriter`] receives it: a table write carries its built table
/// (backend ids, one per slot).
pub type MapWrite = Op<Vec<u32>>;

/// The map writes a plan needs; `Dataplane` implements it, tests record it.
pub trait MapWriter {
    /// Performs `op`; returns how many table slots changed (0 for ops that
    /// write no table).
    fn write(&mut self, op: &MapWrite) -> Result<usize, DataplaneError>;
}

impl MapWriter for Dataplane {
    fn write(&mut self, op: &MapWrite) -> Result<usize, DataplaneError> {
        match op {
            Op::SetGlobal(g) => self.set_global_config(g)?,
            Op::AddTxPort(i) => self.add_tx_port(*i)?,
            Op::RemoveTxPort(i) => self.remove_tx_port(*i)?,
            Op::SetBackend { id, backend } => self.set_backend(*id, backend)?,
            Op::ClearBackend { id } => self.set_backend(*id, &Backend::default())?,
            Op::ResetBackendState { id } => {
                self.reset_backend_stats(*id)?;
                self.reset_next_hop(*id)?;
            }
            Op::ResetVipStats { vip_id } => self.reset_vip_stats(*vip_id)?,
            Op::WriteTable { offset, table, .. } => return Ok(self.maglev().write(*offset, table)),
            Op::ClearTable { offset, len, .. } => return Ok(self.maglev().clear(*offset, *len)),
            Op::SetVip { key, info } => self.set_vip(key, info)?,
            Op::RemoveVip { key } => self.remove_vip(key)?,
            Op::SetPrefix { prefix, value } => self.set_source_prefix(prefix, *value)?,
            Op::RemovePrefix { prefix } => self.remove_source_prefix(prefix)?,
            Op::SetPolicy { vip_id, policy } => self.set_vip_policy(*vip_id, policy)?,
            Op::ResetPolicyState { vip_id } => {
                self.reset_policy_stats(*vip_id)?;
                self.reset_vip_bucket(*vip_id)?;
            }
            Op::SetFilterWord { index, word } => self.set_vip_filter_word(*index, *word)?,
        }
        Ok(0)
    }
}

/// Performs `ops` in order on `w`, building each table with `build`; returns
/// how many table slots changed. Stops at the first failure: the ops before it
/// are in the maps.
pub(super) fn write_all<W, B>(ops: &[Op], w: &mut W, build: B) -> Result<usize, ReconcileError>
where
    W: MapWriter,
    B: Fn(&TableSpec) -> Result<Vec<u32>, ReconcileError> + Sync,
{
    let mut tables = TableBuilder::new(ops, build);
    let mut slots_changed = 0;
    for (step, op) in ops.iter().enumerate() {
        let write = op.with_built_table(|| tables.take(step))?;
        slots_changed += w.write(&write).map_err(|source| ReconcileError::Apply {
            step,
            op: op_name(op),
            source: Box::new(source),
        })?;
    }
    Ok(slots_changed)
}

impl Op {
    /// This op as the writer receives it; `table` builds a table write's table.
    fn with_built_table(
        &self,
        table: impl FnOnce() -> Result<Vec<u32>, ReconcileError>,
    ) -> Result<MapWrite, ReconcileError> {
        Ok(match *self {
            Op::SetGlobal(g) => Op::SetGlobal(g),
            Op::AddTxPort(i) => Op::AddTxPort(i),
            Op::RemoveTxPort(i) => Op::RemoveTxPort(i),
            Op::SetBackend { id, backend } => Op::SetBackend { id, backend },
            Op::ClearBackend { id } => Op::ClearBackend { id },
            Op::ResetBackendState { id } => Op::ResetBackendState { id },
            Op::ResetVipStats { vip_id } => Op::ResetVipStats { vip_id },
            Op::WriteTable { vip_id, offset, .. } => Op::WriteTable {
                vip_id,
                offset,
                table: table()?,
            },
            Op::ClearTable {
                vip_id,
                offset,
                len,
            } => Op::ClearTable {
                vip_id,
                offset,
                len,
            },
            Op::SetVip { key, info } => Op::SetVip { key, info },
            Op::RemoveVip { key } => Op::RemoveVip { key },
            Op::SetPrefix { prefix, value } => Op::SetPrefix { prefix, value },
            Op::RemovePrefix { prefix } => Op::RemovePrefix { prefix },
            Op::SetPolicy { vip_id, policy } => Op::SetPolicy { vip_id, policy },
            Op::ResetPolicyState { vip_id } => Op::ResetPolicyState { vip_id },
            Op::SetFilterWord { index, word } => Op::SetFilterWord { index, word },
        })
    }
}

fn op_name(op: &Op) -> String {
    match op {
        Op::SetGlobal(_) => "set global config".into(),
        Op::AddTxPort(i) => format!("add transmit port {i}"),
        Op::RemoveTxPort(i) => format!("remove transmit port {i}"),
        Op::SetBackend { id, .. } => format!("set backend {id}"),
        Op::ClearBackend { id } => format!("clear backend {id}"),
        Op::ResetBackendState { id } => format!("reset stats and next hop of backend {id}"),
        Op::ResetVipStats { vip_id } => format!("reset stats of vip {vip_id}"),
        Op::WriteTable { vip_id, .. } => format!("write table of vip {vip_id}"),
        Op::ClearTable { vip_id, .. } => format!("clear table of vip {vip_id}"),
        Op::SetVip { info, .. } => format!("set vip {}", info.vip_id),
        Op::RemoveVip { .. } => "remove vip".into(),
        Op::SetPrefix { prefix, .. } => format!(
            "set source prefix {}/{} of vip {}",
            prefix.addr, prefix.len, prefix.vip_id
        ),
        Op::RemovePrefix { prefix } => format!(
            "remove source prefix {}/{} of vip {}",
            prefix.addr, prefix.len, prefix.vip_id
        ),
        Op::SetPolicy { vip_id, .. } => format!("set policy of vip {vip_id}"),
        Op::ResetPolicyState { vip_id } => format!("reset policy state of vip {vip_id}"),
        Op::SetFilterWord { index, .. } => format!("set word {index} of the VIP-address filter"),
    }
}
