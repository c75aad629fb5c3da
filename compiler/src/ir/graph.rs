//! The IR graph: typed nodes in a petgraph `StableGraph`, reachable only
//! through this module's API so no petgraph index leaks out.
//!
//! Edges point from operand to user and carry the operand's position; the
//! operands of a node are its incoming edges sorted by position.

use super::ops::Op;
use super::types::Type;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A stable handle to a node of one [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    fn idx(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
    fn of(i: NodeIndex) -> NodeId {
        NodeId(i.index() as u32)
    }
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A source location: file index into [`Graph::files`], 1-based line and
/// column, and length in bytes of the source text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Loc {
    pub file: u32,
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: Type,
    pub loc: Option<Loc>,
    /// The DSL name the value was bound to, if any (for dumps and tests).
    pub name: Option<String>,
    /// The format class (`precision` region) the node was written in.
    pub class: Option<String>,
    /// A declared bound on |value| (`@bound(b)`), in real units.
    pub bound: Option<f64>,
    /// Built inside a function marked `@approx` (an MPC approximation whose
    /// ranges its own tests establish; `check-ranges` skips it).
    pub approx: bool,
}

impl Node {
    pub fn new(op: Op, ty: Type) -> Node {
        Node {
            op,
            ty,
            loc: None,
            name: None,
            class: None,
            bound: None,
            approx: false,
        }
    }
}

/// One step of an execution schedule: nodes that communicate in the same
/// round (independent of each other), or a block of local nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub round: bool,
    pub nodes: Vec<NodeId>,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub name: String,
    /// Source file names, indexed by `Loc::file`.
    pub files: Vec<String>,
    /// The `schedule` pass's execution order (codegen checks that it still
    /// covers the graph; any later pass that edits the graph clears it).
    pub schedule: Option<Vec<Step>>,
    g: StableDiGraph<Node, u32>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            files: vec![],
            schedule: None,
            g: StableDiGraph::new(),
        }
    }

    /// Adds a node with its operands in order.
    pub fn add(&mut self, node: Node, operands: &[NodeId]) -> NodeId {
        let id = self.g.add_node(node);
        for (pos, o) in operands.iter().enumerate() {
            self.g.add_edge(o.idx(), id, pos as u32);
        }
        NodeId::of(id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.idx())
    }

    /// Panics if `id` is not in the graph (an internal invariant: ids come from
    /// this graph and are removed only through [`Graph::remove`]).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.idx()]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.idx()]
    }

    pub fn len(&self) -> usize {
        self.g.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }

    /// All node ids in increasing index order.
    pub fn ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.node_indices().map(NodeId::of).collect();
        v.sort();
        v
    }

    /// Operands of `id`, in position order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut e: Vec<(u32, NodeId)> = self
            .g
            .edges_directed(id.idx(), Direction::Incoming)
            .map(|e| (*e.weight(), NodeId::of(e.source())))
            .collect();
        e.sort();
        e.into_iter().map(|(_, n)| n).collect()
    }

    /// Distinct users of `id`, in increasing index order.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .g
            .edges_directed(id.idx(), Direction::Outgoing)
            .map(|e| NodeId::of(e.target()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Removes a node and its edges.
    pub fn remove(&mut self, id: NodeId) {
        self.g.remove_node(id.idx());
    }

    /// Makes every user of `old` use `new` instead (positions preserved).
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let edges: Vec<(NodeIndex, u32)> = self
            .g
            .edges_directed(old.idx(), Direction::Outgoing)
            .map(|e| (e.target(), *e.weight()))
            .collect();
        let ids: Vec<_> = self
            .g
            .edges_directed(old.idx(), Direction::Outgoing)
            .map(|e| e.id())
            .collect();
        for e in ids {
            self.g.remove_edge(e);
        }
        for (t, w) in edges {
            self.g.add_edge(new.idx(), t, w);
        }
    }

    /// Makes operand `pos` of `user` be `new` (other operands unchanged).
    pub fn set_operand(&mut self, user: NodeId, pos: usize, new: NodeId) {
        let e = self
            .g
            .edges_directed(user.idx(), Direction::Incoming)
            .find(|e| *e.weight() == pos as u32)
            .map(|e| e.id());
        if let Some(e) = e {
            self.g.remove_edge(e);
        }
        self.g.add_edge(new.idx(), user.idx(), pos as u32);
    }

    /// A deterministic topological order (Kahn's algorithm, smallest index
    /// first). `Err` holds a node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        let mut indeg: std::collections::HashMap<NodeIndex, usize> = self
            .g
            .node_indices()
            .map(|n| (n, self.g.edges_directed(n, Direction::Incoming).count()))
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(n, _)| Reverse(n.index()))
            .collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(Reverse(i)) = ready.pop() {
            let n = NodeIndex::new(i);
            order.push(NodeId::of(n));
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let d = indeg.get_mut(&e.target()).expect("edge target is a node");
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(e.target().index()));
                }
            }
        }
        if order.len() == self.g.node_count() {
            Ok(order)
        } else {
            let stuck = indeg
                .iter()
                .filter(|(_, &d)| d > 0)
                .map(|(n, _)| n.index())
                .min()
                .unwrap_or(0);
            Err(NodeId(stuck as u32))
        }
    }

    /// Output nodes in topological order.
    pub fn outputs(&self) -> Vec<NodeId> {
        self.ids()
            .into_iter()
            .filter(|&i| matches!(self.node(i).op, Op::Output { .. }))
            .collect()
    }

    /// The outputs' names in the order the model declares them (node order).
    pub fn output_names(&self) -> Vec<String> {
        self.outputs()
            .into_iter()
            .filter_map(|i| match &self.node(i).op {
                Op::Output { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The names of the outputs kept `to parties` (session state, never
    /// revealed to the client).
    pub fn kept_output_names(&self) -> Vec<String> {
        self.outputs()
            .into_iter()
            .filter_map(|i| match &self.node(i).op {
                Op::Output { name, kept: true } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Removes nodes from which no output is reachable. Returns how many.
    pub fn prune_dead(&mut self) -> usize {
        let mut live = std::collections::HashSet::new();
        let mut stack = self.outputs();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.operands(n));
            }
        }
        let dead: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|n| !live.contains(n))
            .collect();
        for &d in &dead {
            self.remove(d);
        }
        dead.len()
    }

    /// Structural equality up to node numbering: both graphs, visited in their
    /// topological orders, have equal nodes with corresponding operands.
    pub fn same_as(&self, other: &Graph) -> bool {
        let (Ok(a), Ok(b)) = (self.topo_order(), other.topo_order()) else {
            return false;
        };
        if a.len() != b.len() || self.name != other.name || self.files != other.files {
            return false;
        }
        let pos_a: std::collections::HashMap<NodeId, usize> =
            a.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let pos_b: std::collections::HashMap<NodeId, usize> =
            b.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        a.iter().zip(&b).all(|(&x, &y)| {
            self.node(x) == other.node(y)
                && self
                    .operands(x)
                    .iter()
                    .map(|o| pos_a[o])
                    .eq(other.operands(y).iter().map(|o| pos_b[o]))
        })
    }
}
