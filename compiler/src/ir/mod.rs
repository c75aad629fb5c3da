//! The typed IR: [`types`], [`ops`], the [`graph`] container, the op type rules
//! ([`infer`]), the text format ([`text`]), the [`verify`]er, the float
//! evaluator ([`eval`]) and Graphviz output ([`dot`]).

pub mod dot;
pub mod eval;
pub mod fixed;
pub mod formats;
pub mod graph;
pub mod high;
pub mod infer;
pub mod ops;
pub mod text;
pub mod types;
pub mod verify;

pub use graph::{Graph, Loc, Node, NodeId, Step};
pub use high::HighOp;
pub use ops::{Op, Owner};
pub use types::{Elem, Format, Ring, Type, Vis};
