//! Type rules of the IR ops: the one place that says what shape, visibility
//! and element kind an op produces from its operands. The elaborator uses it to
//! build nodes (its errors become diagnostics) and the verifier to check them.
//!
//! The format of a fixed-point result is not decided here: it belongs to the
//! node (chosen by the precision region or the policy); conversions between
//! formats are inserted by later passes.

use super::ops::Op;
use super::types::{shape_str, Elem, Type, Vis};

/// What the rule determines about a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inferred {
    pub vis: Vis,
    pub is_bool: bool,
    pub shape: Vec<usize>,
}

fn join(ts: &[&Type]) -> Vis {
    ts.iter().fold(Vis::Public, |v, t| v.join(t.vis))
}

pub(crate) fn need_fixed(t: &Type, what: &str) -> Result<(), String> {
    if t.is_bool() {
        Err(format!("{what} must be a number, not a boolean ({t})"))
    } else {
        Ok(())
    }
}

/// Result shape of NumPy broadcasting, or `None` if the shapes are incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let db = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Elementwise binary ops take equal shapes, or a rank-0 operand on either side.
fn elementwise(a: &Type, b: &Type, opname: &str) -> Result<Vec<usize>, String> {
    if a.shape == b.shape || b.rank() == 0 {
        Ok(a.shape.clone())
    } else if a.rank() == 0 {
        Ok(b.shape.clone())
    } else {
        Err(format!(
            "`{opname}` needs operands of equal shape, got {} and {}",
            shape_str(&a.shape),
            shape_str(&b.shape)
        ))
    }
}

/// Applies `op`'s type rule to operand types. Leaves (inputs, weights,
/// constants, iota) have declared types and return `Ok(None)`.
pub fn infer(op: &Op, ts: &[&Type]) -> Result<Option<Inferred>, String> {
    if !op.arity().accepts(ts.len()) {
        return Err(format!(
            "`{}` takes {} operand(s), got {}",
            op.name(),
            op.arity(),
            ts.len()
        ));
    }
    let vis = join(ts);
    let fixed = |shape: Vec<usize>| {
        Ok(Some(Inferred {
            vis,
            is_bool: false,
            shape,
        }))
    };
    match op {
        Op::Input { .. }
        | Op::Weight { .. }
        | Op::Const { .. }
        | Op::Iota { .. }
        | Op::Rotary { .. } => Ok(None),
        Op::Add | Op::Sub | Op::Mul => {
            need_fixed(ts[0], "the left operand")?;
            need_fixed(ts[1], "the right operand")?;
            fixed(elementwise(ts[0], ts[1], op.name())?)
        }
        Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne => {
            need_fixed(ts[0], "the left operand")?;
            need_fixed(ts[1], "the right operand")?;
            let shape = elementwise(ts[0], ts[1], op.name())?;
            Ok(Some(Inferred {
                vis,
                is_bool: true,
                shape,
            }))
        }
        Op::Not => {
            if !ts[0].is_bool() {
                return Err(format!("`not` needs a boolean, got {}", ts[0]));
            }
            Ok(Some(Inferred {
                vis,
                is_bool: true,
                shape: ts[0].shape.clone(),
            }))
        }
        Op::High(h) => h.infer(ts, vis).map(Some),
        Op::Neg | Op::NormScale { .. } | Op::Rescale { .. } | Op::Convert => {
            need_fixed(ts[0], "the operand")?;
            fixed(ts[0].shape.clone())
        }
        Op::Output { .. } => Ok(Some(Inferred {
            vis: ts[0].vis,
            is_bool: ts[0].is_bool(),
            shape: ts[0].shape.clone(),
        })),
        Op::MatMul => {
            let (a, b) = (ts[0], ts[1]);
            need_fixed(a, "the left operand")?;
            need_fixed(b, "the right operand")?;
            if a.rank() < 2 || b.rank() < 2 {
                return Err(format!(
                    "`@` needs matrices (rank ≥ 2), got {} and {}",
                    shape_str(&a.shape),
                    shape_str(&b.shape)
                ));
            }
            let (m, k) = (a.shape[a.rank() - 2], a.shape[a.rank() - 1]);
            let (k2, n) = (b.shape[b.rank() - 2], b.shape[b.rank() - 1]);
            if k != k2 {
                return Err(format!(
                    "`@` inner dimensions differ: {} @ {} ({k} ≠ {k2})",
                    shape_str(&a.shape),
                    shape_str(&b.shape)
                ));
            }
            let batch_a = &a.shape[..a.rank() - 2];
            let batch_b = &b.shape[..b.rank() - 2];
            if !batch_b.is_empty() && batch_a != batch_b {
                return Err(format!(
                    "`@` batch dimensions differ: {} @ {}",
                    shape_str(&a.shape),
                    shape_str(&b.shape)
                ));
            }
            let mut shape = batch_a.to_vec();
            shape.extend([m, n]);
            fixed(shape)
        }
        Op::Select => {
            let (c, a, b) = (ts[0], ts[1], ts[2]);
            if !c.is_bool() {
                return Err(format!("`select` needs a boolean condition, got {c}"));
            }
            need_fixed(a, "the second operand")?;
            need_fixed(b, "the third operand")?;
            for t in [a, b] {
                if t.rank() != 0 && t.shape != c.shape {
                    return Err(format!(
                        "`select` branches must have the condition's shape {} (or be scalars), got {}",
                        shape_str(&c.shape),
                        shape_str(&t.shape)
                    ));
                }
            }
            fixed(c.shape.clone())
        }
        Op::Transpose { perm } => {
            let t = ts[0];
            let mut seen = perm.clone();
            seen.sort();
            if seen != (0..t.rank()).collect::<Vec<_>>() {
                return Err(format!(
                    "transpose order {perm:?} is not a permutation of the {} axes of {}",
                    t.rank(),
                    shape_str(&t.shape)
                ));
            }
            let shape = perm.iter().map(|&p| t.shape[p]).collect();
            Ok(Some(Inferred {
                vis,
                is_bool: t.is_bool(),
                shape,
            }))
        }
        Op::Reshape { shape } => {
            let t = ts[0];
            no_empty_axis(shape)?;
            let n: usize = shape.iter().product();
            if n != t.numel() {
                return Err(format!(
                    "cannot reshape {} ({} elements) to {} ({n} elements)",
                    shape_str(&t.shape),
                    t.numel(),
                    shape_str(shape)
                ));
            }
            Ok(Some(Inferred {
                vis,
                is_bool: t.is_bool(),
                shape: shape.clone(),
            }))
        }
        Op::Slice { axis, start, end } => {
            let t = ts[0];
            if *axis >= t.rank() {
                return Err(format!(
                    "axis {axis} out of range for {}",
                    shape_str(&t.shape)
                ));
            }
            if start >= end || *end > t.shape[*axis] {
                return Err(format!(
                    "slice {start}..{end} is empty or outside axis {axis} of length {}",
                    t.shape[*axis]
                ));
            }
            let mut shape = t.shape.clone();
            shape[*axis] = end - start;
            Ok(Some(Inferred {
                vis,
                is_bool: t.is_bool(),
                shape,
            }))
        }
        Op::Concat { axis } => {
            let t0 = ts[0];
            if *axis >= t0.rank() {
                return Err(format!(
                    "axis {axis} out of range for {}",
                    shape_str(&t0.shape)
                ));
            }
            let mut shape = t0.shape.clone();
            for t in &ts[1..] {
                let same_rest = t.rank() == t0.rank()
                    && (0..t0.rank()).all(|i| i == *axis || t.shape[i] == t0.shape[i]);
                if !same_rest || t.is_bool() != t0.is_bool() {
                    return Err(format!(
                        "cannot concatenate {} and {} along axis {axis}",
                        t0, t
                    ));
                }
                shape[*axis] += t.shape[*axis];
            }
            Ok(Some(Inferred {
                vis,
                is_bool: t0.is_bool(),
                shape,
            }))
        }
        Op::Broadcast { shape } => {
            let t = ts[0];
            no_empty_axis(shape)?;
            match broadcast_shapes(shape, &t.shape) {
                Some(s) if &s == shape => Ok(Some(Inferred {
                    vis,
                    is_bool: t.is_bool(),
                    shape: shape.clone(),
                })),
                _ => Err(format!(
                    "cannot broadcast {} to {}",
                    shape_str(&t.shape),
                    shape_str(shape)
                )),
            }
        }
        Op::Sum { axis } | Op::Max { axis } | Op::Mean { axis } => {
            let t = ts[0];
            need_fixed(t, "the operand")?;
            if *axis >= t.rank() {
                return Err(format!(
                    "axis {axis} out of range for {}",
                    shape_str(&t.shape)
                ));
            }
            let mut shape = t.shape.clone();
            shape[*axis] = 1;
            fixed(shape)
        }
        Op::Embed => {
            let (ids, table) = (ts[0], ts[1]);
            need_fixed(ids, "the ids")?;
            need_fixed(table, "the table")?;
            if ids.rank() != 1 || table.rank() != 2 {
                return Err(format!(
                    "embed needs ids of rank 1 and a table of rank 2, got {} and {}",
                    shape_str(&ids.shape),
                    shape_str(&table.shape)
                ));
            }
            if ids.format().map(|f| f.frac) != Some(0) {
                return Err(format!(
                    "embed needs integer ids (fraction bits 0), got {ids}"
                ));
            }
            fixed(vec![ids.shape[0], table.shape[1]])
        }
    }
}

/// Tensors have at least one element: an axis of length 0 is refused.
pub fn no_empty_axis(shape: &[usize]) -> Result<(), String> {
    if shape.contains(&0) {
        return Err(format!(
            "{} has an axis of length 0 (empty tensors are not supported)",
            shape_str(shape)
        ));
    }
    Ok(())
}

/// The full type of a non-leaf node given its rule result and the node's own
/// format (ignored for booleans).
pub fn with_elem(inf: Inferred, elem_if_fixed: Elem) -> Type {
    Type {
        vis: inf.vis,
        elem: if inf.is_bool {
            Elem::Bool
        } else {
            elem_if_fixed
        },
        shape: inf.shape,
    }
}
