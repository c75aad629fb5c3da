//! High ops: the operations a policy lowers to `@approx` DSL functions
//! (`lower-nonlinear`, docs/passes.md), declared here once with everything
//! the compiler knows about them — name, operands, attributes, type rule,
//! exact real semantics, range bound. They have no MPC instruction: until
//! lowered they communicate nothing, cost nothing, keep no operand's format,
//! and the fixed-point evaluator computes them exactly on decoded operands.
//! Adding one is this file, a DSL builtin, an `@approx` function and a
//! policy lowering (docs/contributing.md).

use super::eval::{EvalError, Tensor};
use super::infer::{need_fixed, Inferred};
use super::ops::{declare_ops, Arity, AttrField, AttrVal, OpInfo};
use super::types::{shape_str, Type, Vis};
use rayon::prelude::*;
use std::collections::BTreeMap;

use Arity::Exactly;

declare_ops! { HighOp, HIGH, ;
    Gelu { tanh: bool } = "gelu" ("x") [Exactly(1)] "GeLU: the erf form, or the tanh form GPT-2 uses when `tanh`";
    Softmax { masked: bool } = "softmax" ("x [, mask]") [Exactly(if *masked { 2 } else { 1 })]
        "softmax over the last axis; with `masked`, a boolean mask marks the entries that take part (others get probability 0)";
    LayerNorm { eps: f64 } = "layernorm" ("x, gamma, beta") [Exactly(3)] "LayerNorm over the last axis";
    Exp = "exp" ("x") [Exactly(1)] "e^x, element-wise";
    Recip = "recip" ("x") [Exactly(1)] "1/x, element-wise";
    Rsqrt = "rsqrt" ("x") [Exactly(1)] "1/√x, element-wise";
    Tanh = "tanh" ("x") [Exactly(1)] "tanh x, element-wise";
    Silu = "silu" ("x") [Exactly(1)] "SiLU (swish): x·σ(x), element-wise (Llama's FFN gate)";
    RmsNorm { eps: f64 } = "rmsnorm" ("x, gamma") [Exactly(2)]
        "RMSNorm over the last axis: x·γ/√(mean(x²) + eps) (Llama)";
}

impl HighOp {
    /// The real function of an element-wise op (which constant folding may
    /// apply to a public scalar).
    pub fn elementwise(&self) -> Option<fn(f64) -> f64> {
        match self {
            HighOp::Gelu { tanh: false } => Some(gelu_erf),
            HighOp::Gelu { tanh: true } => Some(gelu_tanh),
            HighOp::Exp => Some(f64::exp),
            HighOp::Recip => Some(|x| 1.0 / x),
            HighOp::Rsqrt => Some(|x| 1.0 / x.sqrt()),
            HighOp::Tanh => Some(f64::tanh),
            HighOp::Silu => Some(silu),
            HighOp::Softmax { .. } | HighOp::LayerNorm { .. } | HighOp::RmsNorm { .. } => None,
        }
    }

    /// The type rule: the result's visibility and shape from the operands'
    /// types (arity already checked).
    pub fn infer(&self, ts: &[&Type], vis: Vis) -> Result<Inferred, String> {
        let x = ts[0];
        need_fixed(x, "the operand")?;
        match self {
            HighOp::Gelu { .. }
            | HighOp::Exp
            | HighOp::Recip
            | HighOp::Rsqrt
            | HighOp::Tanh
            | HighOp::Silu => {}
            HighOp::Softmax { masked } => {
                if x.rank() == 0 {
                    return Err("softmax needs at least one axis".into());
                }
                if *masked {
                    let m = ts[1];
                    if !m.is_bool() || m.shape != x.shape {
                        return Err(format!(
                            "the softmax mask must be a boolean of shape {}, got {m}",
                            shape_str(&x.shape)
                        ));
                    }
                }
            }
            HighOp::LayerNorm { .. } | HighOp::RmsNorm { .. } => {
                let d = *x
                    .shape
                    .last()
                    .ok_or("a normalisation needs at least one axis")?;
                let params: &[(&Type, &str)] = match self {
                    HighOp::LayerNorm { .. } => &[(ts[1], "gamma"), (ts[2], "beta")],
                    _ => &[(ts[1], "gamma")],
                };
                for &(t, what) in params {
                    need_fixed(t, what)?;
                    if t.shape != [d] {
                        return Err(format!(
                            "{} {what} must have shape [{d}] to match {}, got {}",
                            self.name(),
                            shape_str(&x.shape),
                            shape_str(&t.shape)
                        ));
                    }
                }
            }
        }
        Ok(Inferred {
            vis,
            is_bool: false,
            shape: x.shape.clone(),
        })
    }

    /// The exact real semantics (the float backend; the fixed backend on
    /// decoded operands).
    pub fn eval(&self, shape: &[usize], a: &[&Tensor]) -> Result<Tensor, EvalError> {
        if let Some(f) = self.elementwise() {
            return Ok(a[0].map(f));
        }
        let d = *shape
            .last()
            .ok_or_else(|| EvalError::Invalid(format!("`{}` needs an axis", self.name())))?;
        let mut data = a[0].data.clone();
        match self {
            HighOp::Softmax { masked } => {
                data.par_chunks_mut(d).enumerate().for_each(|(r, row)| {
                    let on = |j: usize| !*masked || a[1].data[r * d + j] != 0.0;
                    let m = (0..d)
                        .filter(|&j| on(j))
                        .map(|j| row[j])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let mut s = 0.0;
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = if on(j) { (*v - m).exp() } else { 0.0 };
                        s += *v;
                    }
                    if s > 0.0 {
                        row.iter_mut().for_each(|v| *v /= s);
                    }
                });
            }
            HighOp::LayerNorm { eps } => {
                let (g, b) = (a[1], a[2]);
                data.par_chunks_mut(d).for_each(|row| {
                    let mu = row.iter().sum::<f64>() / d as f64;
                    let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / d as f64;
                    let r = 1.0 / (var + eps).sqrt();
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = (*v - mu) * r * g.data[j] + b.data[j];
                    }
                });
            }
            HighOp::RmsNorm { eps } => {
                let g = a[1];
                data.par_chunks_mut(d).for_each(|row| {
                    let ms = row.iter().map(|v| v * v).sum::<f64>() / d as f64;
                    let r = 1.0 / (ms + eps).sqrt();
                    for (j, v) in row.iter_mut().enumerate() {
                        *v *= r * g.data[j];
                    }
                });
            }
            HighOp::Gelu { .. }
            | HighOp::Exp
            | HighOp::Recip
            | HighOp::Rsqrt
            | HighOp::Tanh
            | HighOp::Silu => {
                unreachable!("element-wise, above")
            }
        }
        Ok(Tensor::new(shape.to_vec(), data))
    }

    /// A bound on |result| from bounds on the operands' |values| (`None`
    /// where unknown), for `check-ranges`; `last` is the operand's last axis.
    pub fn bound(&self, get: &dyn Fn(usize) -> Option<f64>, last: usize) -> Option<f64> {
        match self {
            HighOp::Gelu { .. } | HighOp::Silu => get(0),
            // |x_j|/rms(x) ≤ √d, as for LayerNorm
            HighOp::RmsNorm { .. } => get(1).map(|g| g * (last as f64).sqrt()),
            HighOp::Softmax { .. } | HighOp::Tanh => Some(1.0),
            HighOp::LayerNorm { .. } => {
                let d = last as f64;
                get(1).zip(get(2)).map(|(g, b)| g * d.sqrt() + b)
            }
            HighOp::Exp | HighOp::Recip | HighOp::Rsqrt => None,
        }
    }
}

/// SiLU x·σ(x), written to stay finite for large |x|.
pub(crate) fn silu(x: f64) -> f64 {
    if x >= 0.0 {
        x / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        x * e / (1.0 + e)
    }
}

pub(crate) fn gelu_erf(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

pub(crate) fn gelu_tanh(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}
