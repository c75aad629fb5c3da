//! `dce`: removes nodes from which no output is reachable.

use super::{Ctx, Pass};
use crate::diag::Diagnostic;
use crate::ir::Graph;

pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }
    fn description(&self) -> &'static str {
        "remove nodes no output depends on"
    }
    fn run(&self, g: &mut Graph, _: &Ctx) -> Result<bool, Vec<Diagnostic>> {
        Ok(g.prune_dead() > 0)
    }
}
