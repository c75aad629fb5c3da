//! Fake quantization: a value put on a format's grid exactly as the
//! fixed-point backend puts it (floor when fraction bits are dropped, round
//! to nearest when a real is encoded), clamped to the ring's range, with a
//! straight-through gradient (the identity inside the range, zero outside).
//! A custom op, so that the forward value is the grid value itself (x +
//! detach(q − x) is not, in floating point).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use ditto_compiler::ir::Format;

/// How a real reaches the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// ⌊x·2^f⌋ (a truncation: products, conversions to fewer fraction bits)
    Floor,
    /// to nearest (encoding a real: weights, inputs, exact functions' results)
    Nearest,
}

/// The grid of `fmt` and its range [−2^(k−1), 2^(k−1) − 1]·2^−f.
#[derive(Debug, Clone, Copy)]
pub struct Quant {
    pub scale: f64,
    pub lo: f64,
    pub hi: f64,
    pub rounding: Rounding,
}

impl Quant {
    pub fn new(fmt: Format, rounding: Rounding) -> Quant {
        let k = fmt.ring.bits() as i32;
        let f = fmt.frac as i32;
        let scale = (f as f64).exp2();
        Quant {
            scale,
            lo: -((k - 1 - f) as f64).exp2(),
            hi: (((k - 1) as f64).exp2() - 1.0) / scale,
            rounding,
        }
    }

    fn apply(&self, x: f64) -> f64 {
        let v = x * self.scale;
        let v = match self.rounding {
            Rounding::Floor => v.floor(),
            Rounding::Nearest => v.round(),
        };
        (v / self.scale).clamp(self.lo, self.hi)
    }
}

impl CustomOp1 for Quant {
    fn name(&self) -> &'static str {
        "fake-quantize"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("fake-quantize: not contiguous".into()))?;
        let out = match storage {
            CpuStorage::F64(v) => {
                CpuStorage::F64(v[start..end].iter().map(|&x| self.apply(x)).collect())
            }
            CpuStorage::F32(v) => CpuStorage::F32(
                v[start..end]
                    .iter()
                    .map(|&x| self.apply(x as f64) as f32)
                    .collect(),
            ),
            _ => {
                return Err(candle_core::Error::Msg(
                    "fake-quantize: not a float tensor".into(),
                ))
            }
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // straight through inside the ring's range, nothing beyond it
        let inside = arg.ge(self.lo)?.mul(&arg.le(self.hi)?)?;
        Ok(Some(inside.where_cond(grad, &grad.zeros_like()?)?))
    }
}

/// `x` on the grid of `fmt`.
pub fn quantize(x: &Tensor, fmt: Format, rounding: Rounding) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Quant::new(fmt, rounding))
}
