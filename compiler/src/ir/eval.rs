//! The float evaluator: runs an (unlowered) IR graph in f64 with exact math —
//! erf GeLU, `exp`, `1/sqrt`, `tanh`. It is the utility reference that secure
//! runs are compared against, so it favours clarity and accuracy; the matmul is
//! still blocked and parallel so that BERT-sized graphs evaluate in seconds.

use super::graph::{Graph, NodeId};
use super::ops::Op;
use indexmap::IndexMap;
use rayon::prelude::*;
use std::collections::HashMap;

/// A dense row-major f64 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }
    pub fn scalar(x: f64) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![x],
        }
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    pub(crate) fn map(&self, f: impl Fn(f64) -> f64 + Sync) -> Tensor {
        Tensor::new(
            self.shape.clone(),
            self.data.par_iter().map(|&x| f(x)).collect(),
        )
    }
    /// (outer, len, inner) around `axis`.
    fn split(&self, axis: usize) -> (usize, usize, usize) {
        let outer = self.shape[..axis].iter().product();
        let inner = self.shape[axis + 1..].iter().product();
        (outer, self.shape[axis], inner)
    }
}

/// Where weight values come from (a safetensors file, generated weights, ...).
pub trait WeightSource {
    /// The tensor named `name` as f64, with its stored shape.
    fn tensor(&self, name: &str) -> Result<Tensor, String>;
    /// Its values alone, borrowed where the source holds them as f64 (the
    /// VM deals them without a copy).
    fn values(&self, name: &str) -> Result<std::borrow::Cow<'_, [f64]>, String> {
        self.tensor(name).map(|t| std::borrow::Cow::Owned(t.data))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("input `{0}` was not supplied")]
    MissingInput(String),
    #[error("input `{name}` has shape {got:?}, the model expects {want:?}")]
    InputShape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("weight `{name}`: {message}")]
    Weight { name: String, message: String },
    #[error("embed: id {id} is outside the table of {rows} rows")]
    IdOutOfRange { id: f64, rows: usize },
    #[error("the graph is not valid: {0}")]
    Invalid(String),
}

/// The result of an evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub outputs: IndexMap<String, Tensor>,
    /// Values of the nodes selected by `keep` (for tests and calibration).
    pub kept: HashMap<NodeId, Tensor>,
}

/// Evaluates `g`; `keep` selects nodes whose values are returned besides the
/// outputs (all others are dropped after their last use).
pub fn evaluate(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    weights: &dyn WeightSource,
    keep: &dyn Fn(NodeId) -> bool,
) -> Result<Evaluation, EvalError> {
    let mut out = Evaluation {
        outputs: IndexMap::new(),
        kept: HashMap::new(),
    };
    drive(g, |id, args: &[&Tensor]| {
        let node = g.node(id);
        let v = eval_op(&node.op, &node.ty.shape, args, inputs, weights)?;
        if let Op::Output { name, .. } = &node.op {
            out.outputs.insert(name.clone(), v.clone());
        }
        if keep(id) {
            out.kept.insert(id, v.clone());
        }
        Ok(v)
    })?;
    // outputs in declaration (node) order, not evaluation order
    let order = g.output_names();
    out.outputs
        .sort_by_key(|name, _| order.iter().position(|n| n == name));
    Ok(out)
}

/// Evaluates `g` and returns the largest |value| of every node (NaN and
/// infinities count as infinite): one calibration sample.
pub fn max_abs(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    weights: &dyn WeightSource,
) -> Result<HashMap<NodeId, f64>, EvalError> {
    let mut out = HashMap::new();
    drive(g, |id, args: &[&Tensor]| {
        let node = g.node(id);
        let v = eval_op(&node.op, &node.ty.shape, args, inputs, weights)?;
        let m = v.data.iter().fold(0.0f64, |m, x| {
            if x.is_finite() {
                m.max(x.abs())
            } else {
                f64::INFINITY
            }
        });
        out.insert(id, m);
        Ok(v)
    })?;
    Ok(out)
}

/// Runs `step` on every node in topological order with its operands'
/// values, keeping each value only until its last use (a node used twice by
/// one user, `mul %1, %1`, counts twice). Shared by the float and
/// fixed-point evaluators and the training backend (ditto-train).
pub fn drive<V>(
    g: &Graph,
    mut step: impl FnMut(NodeId, &[&V]) -> Result<V, EvalError>,
) -> Result<(), EvalError> {
    let order = g
        .topo_order()
        .map_err(|n| EvalError::Invalid(format!("cycle through node {}", n.index())))?;
    let mut remaining: HashMap<NodeId, usize> = order.iter().map(|&n| (n, 0)).collect();
    for &n in &order {
        for o in g.operands(n) {
            *remaining.get_mut(&o).expect("operands are nodes") += 1;
        }
    }
    let mut vals: HashMap<NodeId, V> = HashMap::new();
    for &id in &order {
        let operands = g.operands(id);
        let v = {
            let args: Vec<&V> = operands.iter().map(|o| &vals[o]).collect();
            step(id, &args)?
        };
        for o in operands {
            let r = remaining.get_mut(&o).expect("operand is in the order");
            *r -= 1;
            if *r == 0 {
                vals.remove(&o);
            }
        }
        vals.insert(id, v);
    }
    Ok(())
}

fn binary(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64 + Sync) -> Tensor {
    if a.shape == b.shape {
        Tensor::new(
            a.shape.clone(),
            a.data
                .par_iter()
                .zip(&b.data)
                .map(|(&x, &y)| f(x, y))
                .collect(),
        )
    } else {
        // one side holds a single element; the result has the broadcast
        // shape (`[] > [1, 1]` is `[1, 1]`, not `[]`)
        let (rank, big) = (
            a.shape.len().max(b.shape.len()),
            a.data.len() >= b.data.len(),
        );
        let dim = |t: &Tensor, i: usize| {
            let off = rank - t.shape.len();
            if i < off {
                1
            } else {
                t.shape[i - off]
            }
        };
        let shape: Vec<usize> = (0..rank).map(|i| dim(a, i).max(dim(b, i))).collect();
        let data = if big {
            let y = b.data[0];
            a.data.par_iter().map(|&x| f(x, y)).collect()
        } else {
            let x = a.data[0];
            b.data.par_iter().map(|&y| f(x, y)).collect()
        };
        Tensor::new(shape, data)
    }
}

fn bool_of(x: bool) -> f64 {
    if x {
        1.0
    } else {
        0.0
    }
}

/// Reduces along `axis` keeping it with size 1.
fn reduce(t: &Tensor, axis: usize, init: f64, f: impl Fn(f64, f64) -> f64) -> Tensor {
    let (outer, len, inner) = t.split(axis);
    let mut data = vec![init; outer * inner];
    for o in 0..outer {
        for l in 0..len {
            let row = &t.data[(o * len + l) * inner..(o * len + l + 1) * inner];
            for (d, &x) in data[o * inner..(o + 1) * inner].iter_mut().zip(row) {
                *d = f(*d, x);
            }
        }
    }
    let mut shape = t.shape.clone();
    shape[axis] = 1;
    Tensor::new(shape, data)
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Source strides of a transpose of `shape` by `perm`.
pub(crate) fn transpose_strides(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    perm.iter().map(|&p| st[p]).collect()
}

/// Source strides of NumPy broadcasting from `from` to `to` (0 on repeated axes).
pub(crate) fn broadcast_strides(from: &[usize], to: &[usize]) -> Vec<usize> {
    let off = to.len() - from.len();
    let st = strides(from);
    (0..to.len())
        .map(|i| {
            if i < off || from[i - off] == 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}

/// Gathers `out_shape` elements, where source index = Σ idx[i]·src_stride[i].
pub(crate) fn gather<T: Copy>(data: &[T], out_shape: &[usize], src_strides: &[usize]) -> Vec<T> {
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; out_shape.len()];
    for _ in 0..n {
        let off: usize = idx.iter().zip(src_strides).map(|(i, s)| i * s).sum();
        out.push(data[off]);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// C[b] = A[b] · B[b] (or B shared), rows in parallel, B transposed for locality.
fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let ra = a.shape.len();
    let rb = b.shape.len();
    let (m, k) = (a.shape[ra - 2], a.shape[ra - 1]);
    let n = b.shape[rb - 1];
    let batch: usize = a.shape[..ra - 2].iter().product();
    let b_batched = rb > 2;
    let mut out = vec![0.0; batch * m * n];
    let bt_all: Vec<Vec<f64>> = (0..if b_batched { batch } else { 1 })
        .map(|bi| {
            let bm = &b.data[bi * k * n..(bi + 1) * k * n];
            let mut t = vec![0.0; k * n];
            for r in 0..k {
                for c in 0..n {
                    t[c * k + r] = bm[r * n + c];
                }
            }
            t
        })
        .collect();
    out.par_chunks_mut(n).enumerate().for_each(|(row, o)| {
        let bi = row / m;
        let arow = &a.data[row * k..(row + 1) * k];
        let bt = &bt_all[if b_batched { bi } else { 0 }];
        for (c, oc) in o.iter_mut().enumerate() {
            let bcol = &bt[c * k..(c + 1) * k];
            *oc = arow.iter().zip(bcol).map(|(x, y)| x * y).sum();
        }
    });
    let mut shape = a.shape[..ra - 2].to_vec();
    shape.extend([m, n]);
    Tensor::new(shape, out)
}

fn eval_op(
    op: &Op,
    shape: &[usize],
    a: &[&Tensor],
    inputs: &HashMap<String, Tensor>,
    weights: &dyn WeightSource,
) -> Result<Tensor, EvalError> {
    Ok(match op {
        Op::Input { name, .. } => input(inputs, name, shape)?.clone(),
        Op::Weight { name, transposed } => Tensor::new(
            shape.to_vec(),
            weight_data(weights, name, *transposed, shape)?,
        ),
        other => eval_real(other, shape, a)?,
    })
}

/// The value supplied for input `name`, checked against the node's shape
/// (shared by every evaluator).
pub fn input<'a>(
    inputs: &'a HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
) -> Result<&'a Tensor, EvalError> {
    let t = inputs
        .get(name)
        .ok_or_else(|| EvalError::MissingInput(name.to_string()))?;
    if t.shape != shape {
        return Err(EvalError::InputShape {
            name: name.to_string(),
            got: t.shape.clone(),
            want: shape.to_vec(),
        });
    }
    Ok(t)
}

/// The elements of weight `name` in the layout of a node of shape `shape`:
/// as stored, or (`transposed`) the stored matrix transposed.
pub fn weight_data(
    weights: &dyn WeightSource,
    name: &str,
    transposed: bool,
    shape: &[usize],
) -> Result<Vec<f64>, EvalError> {
    let t = weights.tensor(name).map_err(|message| EvalError::Weight {
        name: name.to_string(),
        message,
    })?;
    let want: Vec<usize> = if transposed {
        shape.iter().rev().copied().collect()
    } else {
        shape.to_vec()
    };
    if t.numel() != want.iter().product::<usize>() || (transposed && t.shape != want) {
        return Err(EvalError::Weight {
            name: name.to_string(),
            message: format!("has shape {:?}, the model expects {:?}", t.shape, want),
        });
    }
    Ok(if transposed {
        transpose_matrix(&t.data, want[0], want[1])
    } else {
        t.data
    })
}

/// The transpose of an r×c row-major matrix, in cache-sized blocks.
pub fn transpose_matrix<T: Copy + Default>(v: &[T], r: usize, c: usize) -> Vec<T> {
    const B: usize = 32;
    let mut out = vec![T::default(); v.len()];
    for i0 in (0..r).step_by(B) {
        for j0 in (0..c).step_by(B) {
            for i in i0..(i0 + B).min(r) {
                for j in j0..(j0 + B).min(c) {
                    out[j * r + i] = v[i * c + j];
                }
            }
        }
    }
    out
}

/// The exact real semantics of every non-leaf op (shared with the
/// fixed-point evaluator for ops it does not lower yet).
pub(crate) fn eval_real(op: &Op, shape: &[usize], a: &[&Tensor]) -> Result<Tensor, EvalError> {
    Ok(match op {
        Op::Input { .. } | Op::Weight { .. } => {
            return Err(EvalError::Invalid(format!(
                "`{}` has no operands to compute from",
                op.name()
            )))
        }
        Op::Const { value } => Tensor::scalar(*value),
        Op::Iota { n } => Tensor::new(vec![*n], (0..*n).map(|i| i as f64).collect()),
        Op::Rotary {
            part,
            theta,
            offset,
        } => match shape {
            [n, d] => Tensor::new(
                shape.to_vec(),
                ditto_bytecode::fixed::rotary_table(*part, *n, *d, *theta, *offset),
            ),
            _ => return Err(EvalError::Invalid("a rotary table is a matrix".into())),
        },
        Op::Add => binary(a[0], a[1], |x, y| x + y),
        Op::Sub => binary(a[0], a[1], |x, y| x - y),
        Op::Mul => binary(a[0], a[1], |x, y| x * y),
        Op::Neg => a[0].map(|x| -x),
        Op::Lt => binary(a[0], a[1], |x, y| bool_of(x < y)),
        Op::Gt => binary(a[0], a[1], |x, y| bool_of(x > y)),
        Op::Le => binary(a[0], a[1], |x, y| bool_of(x <= y)),
        Op::Ge => binary(a[0], a[1], |x, y| bool_of(x >= y)),
        Op::Eq => binary(a[0], a[1], |x, y| bool_of(x == y)),
        Op::Ne => binary(a[0], a[1], |x, y| bool_of(x != y)),
        Op::Not => a[0].map(|x| bool_of(x == 0.0)),
        Op::Select => {
            let pick = |t: &Tensor, i: usize| {
                if t.data.len() == 1 {
                    t.data[0]
                } else {
                    t.data[i]
                }
            };
            let data = (0..a[0].numel())
                .map(|i| {
                    if a[0].data[i] != 0.0 {
                        pick(a[1], i)
                    } else {
                        pick(a[2], i)
                    }
                })
                .collect();
            Tensor::new(shape.to_vec(), data)
        }
        Op::MatMul => matmul(a[0], a[1]),
        Op::Transpose { perm } => Tensor::new(
            shape.to_vec(),
            gather(&a[0].data, shape, &transpose_strides(&a[0].shape, perm)),
        ),
        Op::Reshape { .. } | Op::Convert | Op::Output { .. } => {
            Tensor::new(shape.to_vec(), a[0].data.clone())
        }
        Op::Slice { axis, start, end } => {
            let (outer, len, inner) = a[0].split(*axis);
            let mut data = Vec::with_capacity(outer * (end - start) * inner);
            for o in 0..outer {
                data.extend_from_slice(
                    &a[0].data[(o * len + start) * inner..(o * len + end) * inner],
                );
            }
            Tensor::new(shape.to_vec(), data)
        }
        Op::Concat { axis } => {
            let outer: usize = shape[..*axis].iter().product();
            let mut data = Vec::with_capacity(shape.iter().product());
            for o in 0..outer {
                for t in a {
                    let (_, len, inner) = t.split(*axis);
                    data.extend_from_slice(&t.data[o * len * inner..(o + 1) * len * inner]);
                }
            }
            Tensor::new(shape.to_vec(), data)
        }
        Op::Broadcast { shape: to } => Tensor::new(
            to.clone(),
            gather(&a[0].data, to, &broadcast_strides(&a[0].shape, to)),
        ),
        Op::Sum { axis } => reduce(a[0], *axis, 0.0, |x, y| x + y),
        Op::Max { axis } => reduce(a[0], *axis, f64::NEG_INFINITY, f64::max),
        Op::Mean { axis } => {
            let n = a[0].shape[*axis] as f64;
            reduce(a[0], *axis, 0.0, |x, y| x + y).map(|x| x / n)
        }
        Op::Rescale { bits } => {
            let s = (-(*bits as f64)).exp2();
            a[0].map(move |x| x * s)
        }
        Op::NormScale { kind } => {
            let k = *kind;
            a[0].map(move |x| {
                if x > 0.0 {
                    k.scale(x.log2().floor() as i32)
                } else {
                    0.0
                }
            })
        }
        Op::High(h) => h.eval(shape, a)?,
        Op::Embed => {
            let (ids, table) = (a[0], a[1]);
            let (rows, d) = (table.shape[0], table.shape[1]);
            let mut data = Vec::with_capacity(ids.numel() * d);
            for &id in &ids.data {
                let i = id.round();
                if !(0.0..rows as f64).contains(&i) {
                    return Err(EvalError::IdOutOfRange { id, rows });
                }
                let i = i as usize;
                data.extend_from_slice(&table.data[i * d..(i + 1) * d]);
            }
            Tensor::new(shape.to_vec(), data)
        }
    })
}
