//! Fixed-point evaluation: runs an IR graph on cleartext ring elements with
//! the arithmetic the MPC backend performs — values in Z_2^k with f fraction
//! bits as each node's type says, wrapping sums and products, products whose
//! fraction bits add up. It separates quantization error from protocol bugs.
//!
//! Semantics of formats: wherever an operand's format differs from the one
//! its op needs, the value is rescaled exactly as an explicit `convert` would
//! (shift right with floor, or left; then reduce into the target ring), so
//! `insert-conversions` and `insert-truncations` leave results bit-identical.
//! Truncation is the deterministic floor, the u = 0 case of the MPC
//! protocol's ⌊x/2^m⌋ + u.
//!
//! Not yet lowered ops (exp, reciprocal, rsqrt, tanh, GeLU, softmax,
//! LayerNorm) are computed exactly on the decoded inputs and re-encoded, until
//! `lower-nonlinear` replaces them by their fixed-point approximations.

use super::eval::{broadcast_strides, gather, transpose_strides, EvalError, Tensor, WeightSource};
use super::graph::Graph;
use super::ops::Op;
use super::types::{Elem, Format};
use rayon::prelude::*;
use std::collections::HashMap;

/// A tensor of ring elements with its format (`None` for booleans, stored as
/// 0/1).
#[derive(Debug, Clone, PartialEq)]
pub struct FixedTensor {
    pub shape: Vec<usize>,
    pub format: Option<Format>,
    /// Signed representatives (sign-extended from the ring's width).
    pub data: Vec<i64>,
    /// For a public constant, its real value: a constant needed in another
    /// format is re-encoded (as `insert-conversions` does), not rescaled.
    pub exact: Option<f64>,
}

impl FixedTensor {
    pub fn decode(&self) -> Tensor {
        let scale = self.format.map(|f| (f.frac as f64).exp2()).unwrap_or(1.0);
        Tensor::new(
            self.shape.clone(),
            self.data.iter().map(|&v| v as f64 / scale).collect(),
        )
    }
}

/// Reduces into Z_2^bits and returns the signed representative (the
/// bytecode's definition, [`ditto_bytecode::fixed`]).
pub use ditto_bytecode::fixed::wrap;

fn encode(x: f64, f: Format) -> i64 {
    ditto_bytecode::fixed::encode(x, f.ring.bits(), f.frac as u32)
}

/// The value `v` in format `from`, rescaled to `to` (floor on the way down).
#[inline]
pub fn rescale(v: i64, from: Format, to: Format) -> i64 {
    ditto_bytecode::fixed::rescale(v, from.frac as u32, to.ring.bits(), to.frac as u32)
}

/// A comparison of a and b (b read in a's format), 1 where it holds; one side
/// may be a scalar.
fn compare(a: &[&FixedTensor], numel: usize, holds: fn(i64, i64) -> bool) -> Vec<i64> {
    let fa = a[0].format.expect("numeric operand");
    let (x, y) = (&a[0].data, rescaled(a[1], fa));
    (0..numel)
        .map(|i| {
            let p = x[if x.len() == 1 { 0 } else { i }];
            let q = y[if y.len() == 1 { 0 } else { i }];
            holds(p, q) as i64
        })
        .collect()
}

fn rescaled(t: &FixedTensor, to: Format) -> Vec<i64> {
    if let Some(x) = t.exact {
        return vec![encode(x, to)];
    }
    match t.format {
        Some(from) if from != to => t.data.iter().map(|&v| rescale(v, from, to)).collect(),
        _ => t.data.clone(),
    }
}

/// Evaluates `g` in fixed point. Inputs and weights arrive as reals and are
/// encoded in their nodes' formats.
pub fn evaluate_fixed(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
    weights: &dyn WeightSource,
) -> Result<indexmap::IndexMap<String, FixedTensor>, EvalError> {
    let mut outputs = indexmap::IndexMap::new();
    super::eval::drive(g, |id, args: &[&FixedTensor]| {
        let node = g.node(id);
        let format = match node.ty.elem {
            Elem::Fixed(f) => Some(f),
            Elem::Bool => None,
        };
        let data = eval_op(&node.op, &node.ty.shape, format, args, inputs, weights)?;
        let exact = match node.op {
            Op::Const { value } => Some(value),
            _ => None,
        };
        let v = FixedTensor {
            shape: node.ty.shape.clone(),
            format,
            data,
            exact,
        };
        if let Op::Output { name, .. } = &node.op {
            outputs.insert(name.clone(), v.clone());
        }
        Ok(v)
    })?;
    Ok(outputs)
}

/// The operand as the op sees it: numbers rescaled to the node's format
/// (as `insert-conversions` would make explicit), booleans unchanged.
fn in_format(t: &FixedTensor, to: Format) -> FixedTensor {
    match t.format {
        Some(_) => FixedTensor {
            shape: t.shape.clone(),
            format: Some(to),
            data: rescaled(t, to),
            exact: t.exact,
        },
        None => t.clone(),
    }
}

/// Applies an exact real function to the operand (in the node's format) and
/// re-encodes.
fn eval_op(
    op: &Op,
    shape: &[usize],
    fmt: Option<Format>,
    a: &[&FixedTensor],
    inputs: &HashMap<String, Tensor>,
    weights: &dyn WeightSource,
) -> Result<Vec<i64>, EvalError> {
    let numel: usize = shape.iter().product();
    let f = || fmt.expect("numeric node (verified)");
    let bits = || f().ring.bits();
    Ok(match op {
        Op::Input { name, .. } => super::eval::input(inputs, name, shape)?
            .data
            .iter()
            .map(|&x| encode(x, f()))
            .collect(),
        Op::Weight { name, transposed } => {
            let data = super::eval::weight_data(weights, name, *transposed, shape)?;
            data.par_iter().map(|&x| encode(x, f())).collect()
        }
        Op::Const { value } => vec![encode(*value, f())],
        Op::Iota { n } => (0..*n as i64)
            .map(|i| {
                rescale(
                    i,
                    Format {
                        ring: f().ring,
                        frac: 0,
                    },
                    f(),
                )
            })
            .collect(),
        Op::Rotary {
            part,
            theta,
            offset,
        } => match shape {
            [n, d] => ditto_bytecode::fixed::rotary_table(*part, *n, *d, *theta, *offset)
                .into_iter()
                .map(|v| encode(v, f()))
                .collect(),
            _ => return Err(EvalError::Invalid("a rotary table is a matrix".into())),
        },
        Op::Add | Op::Sub => {
            let (x, y) = (rescaled(a[0], f()), rescaled(a[1], f()));
            let sub = matches!(op, Op::Sub);
            (0..numel)
                .map(|i| {
                    let (p, q) = (
                        x[if x.len() == 1 { 0 } else { i }] as i128,
                        y[if y.len() == 1 { 0 } else { i }] as i128,
                    );
                    wrap(if sub { p - q } else { p + q }, bits())
                })
                .collect()
        }
        Op::Mul | Op::MatMul => {
            // Operands in the product's ring, each with its own fraction bits;
            // the product has their sum, then is rescaled to the node's format.
            let ring = f().ring;
            let fa = super::formats::product_operand(a[0].format.expect("numeric"), f());
            let fb = super::formats::product_operand(a[1].format.expect("numeric"), f());
            let (x, y) = (rescaled(a[0], fa), rescaled(a[1], fb));
            let raw = Format {
                ring,
                frac: fa.frac + fb.frac,
            };
            let prod: Vec<i64> = if matches!(op, Op::Mul) {
                (0..numel)
                    .map(|i| {
                        let p = x[if x.len() == 1 { 0 } else { i }] as i128;
                        let q = y[if y.len() == 1 { 0 } else { i }] as i128;
                        wrap(p * q, ring.bits())
                    })
                    .collect()
            } else {
                matmul(&x, &a[0].shape, &y, &a[1].shape, ring.bits())
            };
            if raw == f() {
                prod
            } else {
                prod.iter().map(|&v| rescale(v, raw, f())).collect()
            }
        }
        Op::Neg => a[0]
            .data
            .iter()
            .map(|&v| {
                wrap(
                    -(v as i128),
                    a[0].format.map(|f| f.ring.bits()).unwrap_or(64),
                )
            })
            .collect(),
        Op::Lt => compare(a, numel, |p, q| p < q),
        Op::Gt => compare(a, numel, |p, q| p > q),
        Op::Le => compare(a, numel, |p, q| p <= q),
        Op::Ge => compare(a, numel, |p, q| p >= q),
        Op::Eq => compare(a, numel, |p, q| p == q),
        Op::Ne => compare(a, numel, |p, q| p != q),
        Op::Not => a[0].data.iter().map(|&v| (v == 0) as i64).collect(),
        Op::Select => {
            let (x, y) = (rescaled(a[1], f()), rescaled(a[2], f()));
            (0..numel)
                .map(|i| {
                    let pick = |v: &Vec<i64>| v[if v.len() == 1 { 0 } else { i }];
                    if a[0].data[i] != 0 {
                        pick(&x)
                    } else {
                        pick(&y)
                    }
                })
                .collect()
        }
        Op::Transpose { perm } => same_format(
            a[0],
            fmt,
            gather(&a[0].data, shape, &transpose_strides(&a[0].shape, perm)),
        ),
        Op::Reshape { .. } => same_format(a[0], fmt, a[0].data.clone()),
        // the words stay: read with more fraction bits, they are x·2^−bits
        Op::Rescale { .. } => a[0].data.clone(),
        Op::Convert | Op::Output { .. } => match fmt {
            Some(to) => rescaled(a[0], to),
            None => a[0].data.clone(),
        },
        Op::Slice { axis, start, end } => {
            let outer: usize = a[0].shape[..*axis].iter().product();
            let inner: usize = a[0].shape[axis + 1..].iter().product();
            let len = a[0].shape[*axis];
            let mut out = Vec::with_capacity(numel);
            for o in 0..outer {
                out.extend_from_slice(
                    &a[0].data[(o * len + start) * inner..(o * len + end) * inner],
                );
            }
            same_format(a[0], fmt, out)
        }
        Op::Concat { axis } => {
            let outer: usize = shape[..*axis].iter().product();
            let parts: Vec<Vec<i64>> = a
                .iter()
                .map(|t| match fmt {
                    Some(to) => rescaled(t, to),
                    None => t.data.clone(),
                })
                .collect();
            let mut out = Vec::with_capacity(numel);
            for o in 0..outer {
                for (t, p) in a.iter().zip(&parts) {
                    let inner: usize = t.shape[*axis..].iter().product();
                    out.extend_from_slice(&p[o * inner..(o + 1) * inner]);
                }
            }
            out
        }
        Op::Broadcast { shape: to } => same_format(
            a[0],
            fmt,
            gather(&a[0].data, to, &broadcast_strides(&a[0].shape, to)),
        ),
        Op::Sum { axis } | Op::Max { axis } | Op::Mean { axis } => {
            let x = rescaled(a[0], f());
            let t = a[0];
            let outer: usize = t.shape[..*axis].iter().product();
            let inner: usize = t.shape[axis + 1..].iter().product();
            let len = t.shape[*axis];
            let mut out = vec![
                if matches!(op, Op::Max { .. }) {
                    i64::MIN
                } else {
                    0
                };
                outer * inner
            ];
            for o in 0..outer {
                for l in 0..len {
                    for i in 0..inner {
                        let v = x[(o * len + l) * inner + i];
                        let d = &mut out[o * inner + i];
                        *d = if matches!(op, Op::Max { .. }) {
                            (*d).max(v)
                        } else {
                            wrap(*d as i128 + v as i128, bits())
                        };
                    }
                }
            }
            if matches!(op, Op::Mean { .. }) {
                // multiply by the public 1/len in the same format, then truncate
                let inv = encode(1.0 / len as f64, f());
                out.iter()
                    .map(|&s| wrap((s as i128 * inv as i128) >> f().frac, bits()))
                    .collect()
            } else {
                out
            }
        }
        Op::NormScale { kind } => {
            // from the ring value X = x·2^f exactly: e = ⌊log2 X⌋ − f
            let x = rescaled(a[0], f());
            let frac = f().frac as i32;
            x.iter()
                .map(|&v| {
                    if v > 0 {
                        encode(kind.scale(63 - v.leading_zeros() as i32 - frac), f())
                    } else {
                        0
                    }
                })
                .collect()
        }
        Op::High(h) => {
            // Exact on decoded inputs (see the module doc).
            let decoded: Vec<Tensor> = a.iter().map(|t| in_format(t, f()).decode()).collect();
            let refs: Vec<&Tensor> = decoded.iter().collect();
            let out = h.eval(shape, &refs)?;
            out.data.iter().map(|&x| encode(x, f())).collect()
        }
        Op::Embed => {
            let (ids, table) = (a[0], a[1]);
            let rows = table.shape[0];
            let d = table.shape[1];
            let tv = rescaled(table, f());
            let idf = ids.format.expect("integer ids");
            let mut out = Vec::with_capacity(numel);
            for &raw in &ids.data {
                let id = rescale(
                    raw,
                    idf,
                    Format {
                        ring: idf.ring,
                        frac: 0,
                    },
                );
                if id < 0 || id as usize >= rows {
                    return Err(EvalError::IdOutOfRange {
                        id: id as f64,
                        rows,
                    });
                }
                out.extend_from_slice(&tv[id as usize * d..(id as usize + 1) * d]);
            }
            out
        }
    })
}

/// Data movement keeps the operand's values; if the node's format differs
/// (only possible in hand-written IR), rescale.
fn same_format(t: &FixedTensor, fmt: Option<Format>, data: Vec<i64>) -> Vec<i64> {
    match (t.format, fmt) {
        (Some(from), Some(to)) if from != to => {
            data.iter().map(|&v| rescale(v, from, to)).collect()
        }
        _ => data,
    }
}

/// Batched wrapping matmul over the last two axes (right side shared or
/// batched), in Z_2^bits.
fn matmul(x: &[i64], xs: &[usize], y: &[i64], ys: &[usize], bits: u32) -> Vec<i64> {
    let (ra, rb) = (xs.len(), ys.len());
    let (m, k, n) = (xs[ra - 2], xs[ra - 1], ys[rb - 1]);
    let batch: usize = xs[..ra - 2].iter().product();
    let shared = rb == 2;
    let mut out = vec![0i64; batch * m * n];
    out.par_chunks_mut(n).enumerate().for_each(|(row, o)| {
        let bi = row / m;
        let xrow = &x[row * k..(row + 1) * k];
        let yb = if shared { 0 } else { bi * k * n };
        let mut acc = vec![0u64; n];
        for (l, &xv) in xrow.iter().enumerate() {
            let yrow = &y[yb + l * n..yb + (l + 1) * n];
            for (c, &yv) in yrow.iter().enumerate() {
                acc[c] = acc[c].wrapping_add((xv as u64).wrapping_mul(yv as u64));
            }
        }
        for (c, v) in acc.into_iter().enumerate() {
            o[c] = wrap(v as i64 as i128, bits);
        }
    });
    out
}
