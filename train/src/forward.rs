//! A graph evaluated on candle tensors, differentiably: in `Float` mode the
//! exact real semantics of every op (the teacher, and the float evaluator's
//! twin); in `Quantized` mode the fixed-point backend's semantics
//! (`ditto_compiler::ir::fixed`) on real values — every value on its node's
//! grid, fraction bits dropped by floor where that backend truncates, reals
//! encoded to nearest — with straight-through gradients (the student).
//!
//! What differs from the fixed-point backend: a sum or product that leaves
//! its ring wraps there and is clamped here (a quantizer clamps; an addition
//! does not wrap); with f32 values, grids finer than the mantissa round.

use crate::quant::{quantize, Rounding};
use candle_core::{DType, Device, Tensor, Var};
use ditto_compiler::ir::eval::{self, EvalError, WeightSource};
use ditto_compiler::ir::formats::product_operand;
use ditto_compiler::ir::{Elem, Format, Graph, HighOp, NodeId, Op};
use indexmap::IndexMap;
use std::collections::{BTreeMap, HashMap};

/// Which semantics a forward pass has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exact real arithmetic, formats ignored.
    Float,
    /// The fixed-point backend's rounding, with straight-through gradients.
    Quantized,
}

/// The trainable weights of a graph, by name, in their stored layout.
pub struct Params {
    pub vars: BTreeMap<String, Var>,
    pub dtype: DType,
}

impl Params {
    /// Every weight `g` reads, from `weights`, as variables of `dtype`.
    pub fn of_graph(
        g: &Graph,
        weights: &dyn WeightSource,
        dtype: DType,
    ) -> Result<Params, EvalError> {
        let mut vars = BTreeMap::new();
        for id in g.ids() {
            if let Op::Weight { name, .. } = &g.node(id).op {
                if vars.contains_key(name) {
                    continue;
                }
                let t = weights.tensor(name).map_err(|message| EvalError::Weight {
                    name: name.clone(),
                    message,
                })?;
                let v = Tensor::from_vec(t.data, t.shape, &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .and_then(|t| Var::from_tensor(&t))
                    .map_err(candle_err)?;
                vars.insert(name.clone(), v);
            }
        }
        Ok(Params { vars, dtype })
    }

    /// The current values, as f64 tensors in their stored shapes.
    pub fn values(&self) -> Result<BTreeMap<String, eval::Tensor>, EvalError> {
        self.vars
            .iter()
            .map(|(k, v)| Ok((k.clone(), to_eval(v.as_tensor())?)))
            .collect()
    }
}

impl WeightSource for Params {
    fn tensor(&self, name: &str) -> Result<eval::Tensor, String> {
        let v = self
            .vars
            .get(name)
            .ok_or_else(|| format!("no weight `{name}` in the training parameters"))?;
        to_eval(v.as_tensor()).map_err(|e| e.to_string())
    }
}

/// A candle tensor as an f64 tensor of the IR's evaluators.
pub fn to_eval(t: &Tensor) -> Result<eval::Tensor, EvalError> {
    let shape = t.dims().to_vec();
    let data = t
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(candle_err)?;
    Ok(eval::Tensor::new(shape, data))
}

pub(crate) fn candle_err(e: candle_core::Error) -> EvalError {
    EvalError::Invalid(format!("training backend: {e}"))
}

/// One node's value: reals (or 0/1 as u8 for a boolean) and the grid they
/// are on.
#[derive(Clone)]
struct Val {
    t: Tensor,
    fmt: Option<Format>,
    /// A public constant's real value (re-encoded, not rescaled, when
    /// another format needs it — as `insert-conversions` does).
    exact: Option<f64>,
    /// Per example: the batch is the tensor's leading axis.
    batched: bool,
}

/// The result of a forward pass.
pub struct Forward {
    /// Revealed and kept outputs, by name, in node order.
    pub outputs: IndexMap<String, Tensor>,
    /// The values of the nodes `keep` selected (booleans as 0/1 in u8).
    pub kept: HashMap<NodeId, Tensor>,
}

/// Evaluates `g` on `inputs` with the weights `params` (differentiable in
/// them). `keep` selects nodes whose values are returned besides the
/// outputs (the distillation's taps).
pub fn forward(
    g: &Graph,
    mode: Mode,
    inputs: &HashMap<String, eval::Tensor>,
    params: &Params,
    keep: &dyn Fn(NodeId) -> bool,
) -> Result<Forward, EvalError> {
    run(g, mode, &[inputs], None, params, keep)
}

/// [`forward`] on a batch of examples at once (each a full set of the
/// graph's inputs): every value that depends on the inputs gets the batch as
/// a leading axis, so outputs and kept values are [B, ...] — the same
/// values as B separate passes, in far fewer (larger) tensor operations.
pub fn forward_batch(
    g: &Graph,
    mode: Mode,
    batch: &[&HashMap<String, eval::Tensor>],
    params: &Params,
    keep: &dyn Fn(NodeId) -> bool,
) -> Result<Forward, EvalError> {
    run(g, mode, batch, Some(batch.len()), params, keep)
}

fn run(
    g: &Graph,
    mode: Mode,
    inputs: &[&HashMap<String, eval::Tensor>],
    batch: Option<usize>,
    params: &Params,
    keep: &dyn Fn(NodeId) -> bool,
) -> Result<Forward, EvalError> {
    let ev = Eval {
        mode,
        dtype: params.dtype,
        batch,
    };
    let mut out = Forward {
        outputs: IndexMap::new(),
        kept: HashMap::new(),
    };
    eval::drive(g, |id, args: &[&Val]| {
        let node = g.node(id);
        let fmt = match node.ty.elem {
            Elem::Fixed(f) => Some(f),
            Elem::Bool => None,
        };
        let v = ev
            .step(&node.op, &node.ty.shape, fmt, args, inputs, params)
            .map_err(|e| match e {
                Err::Eval(e) => e,
                Err::Candle(e) => candle_err(e),
            })?;
        // in a batch, every output and kept value is per example
        let per_example = |t: &Tensor| -> Result<Tensor, EvalError> {
            match batch {
                Some(b) if !v.batched => {
                    let mut s = vec![b];
                    s.extend_from_slice(t.dims());
                    t.broadcast_as(s).map_err(candle_err)
                }
                _ => Ok(t.clone()),
            }
        };
        if let Op::Output { name, .. } = &node.op {
            out.outputs.insert(name.clone(), per_example(&v.t)?);
        }
        if keep(id) {
            out.kept.insert(id, per_example(&v.t)?);
        }
        Ok(v)
    })?;
    let order = g.output_names();
    out.outputs
        .sort_by_key(|name, _| order.iter().position(|n| n == name));
    Ok(out)
}

enum Err {
    Eval(EvalError),
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Err {
    fn from(e: candle_core::Error) -> Err {
        Err::Candle(e)
    }
}

impl From<EvalError> for Err {
    fn from(e: EvalError) -> Err {
        Err::Eval(e)
    }
}

type Res<T> = Result<T, Err>;

struct Eval {
    mode: Mode,
    dtype: DType,
    /// Examples in a batch (`None`: one, without a batch axis).
    batch: Option<usize>,
}

/// The fixed-point encoding of a real: the nearest point of the grid.
fn encoded(x: f64, f: Format) -> f64 {
    ditto_bytecode::fixed::decode(
        ditto_bytecode::fixed::encode(x, f.ring.bits(), f.frac as u32),
        f.frac as u32,
    )
}

impl Eval {
    fn quantized(&self) -> bool {
        self.mode == Mode::Quantized
    }

    fn constant(&self, data: Vec<f64>, shape: &[usize]) -> Res<Tensor> {
        Ok(Tensor::from_vec(data, shape.to_vec(), &Device::Cpu)?.to_dtype(self.dtype)?)
    }

    /// The operand as an op in format `to` reads it: rescaled (floor on the
    /// way down) as an explicit `convert` would; a constant re-encoded.
    fn read(&self, v: &Val, to: Format) -> Res<Tensor> {
        if !self.quantized() || v.fmt.is_none() {
            return Ok(v.t.clone());
        }
        if let Some(x) = v.exact {
            return self.constant(vec![encoded(x, to)], v.t.dims());
        }
        if v.fmt == Some(to) {
            return Ok(v.t.clone());
        }
        Ok(quantize(&v.t, to, Rounding::Floor)?)
    }

    /// A real result put on the grid of `f` by rounding to nearest.
    fn encode(&self, t: Tensor, f: Format) -> Res<Tensor> {
        if self.quantized() {
            Ok(quantize(&t, f, Rounding::Nearest)?)
        } else {
            Ok(t)
        }
    }

    /// A product's raw value truncated to `f`.
    fn truncate(&self, t: Tensor, raw: Format, f: Format) -> Res<Tensor> {
        if self.quantized() && raw != f {
            Ok(quantize(&t, f, Rounding::Floor)?)
        } else {
            Ok(t)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        op: &Op,
        shape: &[usize],
        fmt: Option<Format>,
        a: &[&Val],
        inputs: &[&HashMap<String, eval::Tensor>],
        params: &Params,
    ) -> Res<Val> {
        let f = || fmt.expect("numeric node (verified)");
        // a value depends on the example when any operand does (inputs do
        // in a batch); its tensor then has the batch as a leading axis
        let nb = match op {
            Op::Input { .. } => self.batch.is_some(),
            _ => a.iter().any(|v| v.batched),
        };
        let b = self.batch.unwrap_or(1);
        let full = |s: &[usize]| -> Vec<usize> {
            let mut v = if nb { vec![b] } else { vec![] };
            v.extend_from_slice(s);
            v
        };
        let val = |t: Tensor| Val {
            t,
            fmt,
            exact: None,
            batched: nb,
        };
        // operand v's tensor t (v's shape) broadcast to the node's shape
        let lift = |v: &Val, t: Tensor| -> Res<Tensor> {
            let to = full(shape);
            if v.batched {
                let inner = &t.dims()[1..];
                let mut s = vec![b];
                s.extend(std::iter::repeat_n(
                    1,
                    shape.len().saturating_sub(inner.len()),
                ));
                s.extend_from_slice(inner);
                Ok(t.reshape(s)?.broadcast_as(to)?)
            } else {
                Ok(t.broadcast_as(to)?)
            }
        };
        let ax = |axis: usize| axis + usize::from(nb);
        Ok(match op {
            Op::Input { name, .. } => {
                let mut data = Vec::new();
                for ex in inputs {
                    data.extend_from_slice(&eval::input(ex, name, shape)?.data);
                }
                let dims = full(shape);
                match fmt {
                    None => val(Tensor::from_vec(
                        data.iter()
                            .map(|&x| u8::from(x != 0.0))
                            .collect::<Vec<u8>>(),
                        dims,
                        &Device::Cpu,
                    )?),
                    Some(f) => val(self.encode(self.constant(data, &dims)?, f)?),
                }
            }
            Op::Weight { name, transposed } => {
                let w = params
                    .vars
                    .get(name)
                    .ok_or_else(|| EvalError::Weight {
                        name: name.clone(),
                        message: "not among the training parameters".into(),
                    })?
                    .as_tensor();
                let w = if *transposed {
                    w.t()?.contiguous()?
                } else {
                    w.reshape(shape)?
                };
                if w.dims() != shape {
                    return Err(EvalError::Weight {
                        name: name.clone(),
                        message: format!("has shape {:?}, the model expects {shape:?}", w.dims()),
                    }
                    .into());
                }
                val(self.encode(w, f())?)
            }
            Op::Const { value } => {
                let x = if self.quantized() {
                    encoded(*value, f())
                } else {
                    *value
                };
                Val {
                    t: self.constant(vec![x], shape)?,
                    fmt,
                    exact: Some(*value),
                    batched: false,
                }
            }
            Op::Iota { n } => val(self.constant((0..*n).map(|i| i as f64).collect(), shape)?),
            Op::Rotary {
                part,
                theta,
                offset,
            } => {
                let (n, d) = match shape {
                    [n, d] => (*n, *d),
                    _ => return Err(EvalError::Invalid("a rotary table is a matrix".into()).into()),
                };
                let table = ditto_bytecode::fixed::rotary_table(*part, n, d, *theta, *offset);
                let table = if self.quantized() {
                    table.into_iter().map(|x| encoded(x, f())).collect()
                } else {
                    table
                };
                val(self.constant(table, shape)?)
            }
            Op::Add | Op::Sub => {
                let x = lift(a[0], self.read(a[0], f())?)?;
                let y = lift(a[1], self.read(a[1], f())?)?;
                val(if matches!(op, Op::Add) {
                    (x + y)?
                } else {
                    (x - y)?
                })
            }
            Op::Mul | Op::MatMul => {
                let (fa, fb) = match (a[0].fmt, a[1].fmt) {
                    (Some(p), Some(q)) => (product_operand(p, f()), product_operand(q, f())),
                    _ => return Err(EvalError::Invalid("a product of booleans".into()).into()),
                };
                let (x, y) = (self.read(a[0], fa)?, self.read(a[1], fb)?);
                let p = if matches!(op, Op::Mul) {
                    (lift(a[0], x)? * lift(a[1], y)?)?
                } else {
                    // both per example: the lower-rank side gets unit axes
                    // after the batch axis, so that the IR's batch axes align
                    let (x, y) = if a[0].batched && a[1].batched && x.rank() != y.rank() {
                        let pad = |t: Tensor, r: usize| -> Res<Tensor> {
                            let mut s = vec![b];
                            s.extend(std::iter::repeat_n(1, r - t.rank()));
                            s.extend_from_slice(&t.dims()[1..]);
                            Ok(t.reshape(s)?)
                        };
                        let r = x.rank().max(y.rank());
                        (pad(x, r)?, pad(y, r)?)
                    } else {
                        (x, y)
                    };
                    x.contiguous()?.broadcast_matmul(&y.contiguous()?)?
                };
                let raw = Format {
                    ring: f().ring,
                    frac: fa.frac + fb.frac,
                };
                val(self.truncate(p, raw, f())?)
            }
            Op::Neg => val(a[0].t.neg()?),
            Op::Lt | Op::Gt | Op::Le | Op::Ge | Op::Eq | Op::Ne => {
                let y = match a[0].fmt {
                    Some(fa) => self.read(a[1], fa)?,
                    None => a[1].t.clone(),
                };
                let (x, y) = (lift(a[0], a[0].t.clone())?, lift(a[1], y)?);
                val(match op {
                    Op::Lt => x.lt(&y)?,
                    Op::Gt => x.gt(&y)?,
                    Op::Le => x.le(&y)?,
                    Op::Ge => x.ge(&y)?,
                    Op::Eq => x.eq(&y)?,
                    _ => x.ne(&y)?,
                })
            }
            Op::Not => val(a[0].t.ones_like()?.sub(&a[0].t)?),
            Op::Select => {
                let (x, y) = match fmt {
                    Some(f) => (self.read(a[1], f)?, self.read(a[2], f)?),
                    None => (a[1].t.clone(), a[2].t.clone()),
                };
                let (x, y) = (lift(a[1], x)?, lift(a[2], y)?);
                val(lift(a[0], a[0].t.clone())?.where_cond(&x, &y)?)
            }
            Op::Transpose { perm } => {
                let p: Vec<usize> = if nb {
                    std::iter::once(0)
                        .chain(perm.iter().map(|&i| i + 1))
                        .collect()
                } else {
                    perm.clone()
                };
                val(a[0].t.permute(p)?)
            }
            Op::Reshape { .. } => val(a[0].t.reshape(full(shape))?),
            Op::Slice { axis, start, end } => val(a[0].t.narrow(ax(*axis), *start, end - start)?),
            Op::Concat { axis } => {
                let parts = a
                    .iter()
                    .map(|v| {
                        let t = match fmt {
                            Some(f) => self.read(v, f)?,
                            None => v.t.clone(),
                        };
                        if nb && !v.batched {
                            let mut s = vec![b];
                            s.extend_from_slice(t.dims());
                            Ok(t.broadcast_as(s)?)
                        } else {
                            Ok(t)
                        }
                    })
                    .collect::<Res<Vec<_>>>()?;
                val(Tensor::cat(&parts, ax(*axis))?)
            }
            Op::Broadcast { .. } => val(lift(a[0], a[0].t.clone())?),
            Op::Sum { axis } => val(self.read(a[0], f())?.sum_keepdim(ax(*axis))?),
            Op::Max { axis } => val(self.read(a[0], f())?.max_keepdim(ax(*axis))?),
            Op::Mean { axis } => {
                let x = self.read(a[0], f())?;
                let len = x.dims()[ax(*axis)] as f64;
                if self.quantized() {
                    // the sum times the public 1/len in the same format, truncated
                    let inv = encoded(1.0 / len, f());
                    let s = x.sum_keepdim(ax(*axis))?.affine(inv, 0.0)?;
                    val(quantize(&s, f(), Rounding::Floor)?)
                } else {
                    val(x.mean_keepdim(ax(*axis))?)
                }
            }
            Op::NormScale { kind } => {
                // piecewise constant: no gradient
                let x = self.read(a[0], f())?;
                let dims = x.dims().to_vec();
                let xs = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                let frac = f().frac as i32;
                let out = xs
                    .iter()
                    .map(|&v| {
                        if self.quantized() {
                            let w = (v * (frac as f64).exp2()).round() as i64;
                            if w > 0 {
                                encoded(kind.scale(63 - w.leading_zeros() as i32 - frac), f())
                            } else {
                                0.0
                            }
                        } else if v > 0.0 {
                            kind.scale(highest_bit(v))
                        } else {
                            0.0
                        }
                    })
                    .collect();
                val(self.constant(out, &dims)?)
            }
            Op::Convert | Op::Output { .. } => match fmt {
                Some(f) => val(self.read(a[0], f)?),
                None => val(a[0].t.clone()),
            },
            Op::Rescale { bits } => val(a[0].t.affine((-(*bits as f64)).exp2(), 0.0)?),
            Op::High(h) => {
                let args = a
                    .iter()
                    .map(|v| match v.fmt {
                        Some(_) => self.read(v, f()),
                        None => Ok(v.t.clone()),
                    })
                    .collect::<Res<Vec<_>>>()?;
                val(self.encode(high(h, &args)?, f())?)
            }
            Op::Embed => {
                let ids = a[0]
                    .t
                    .to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1::<f64>()?;
                let table = self.read(a[1], f())?;
                let rows = table.dims()[0];
                let mut idx = Vec::with_capacity(ids.len());
                for id in ids {
                    if id < 0.0 || id.fract() != 0.0 || id as usize >= rows {
                        return Err(EvalError::IdOutOfRange { id, rows }.into());
                    }
                    idx.push(id as u32);
                }
                let n = idx.len();
                let idx = Tensor::from_vec(idx, n, &Device::Cpu)?;
                val(table.index_select(&idx, 0)?.reshape(full(shape))?)
            }
        })
    }
}

/// ⌊log2 x⌋ of a positive finite real, exactly (from its exponent bits).
fn highest_bit(x: f64) -> i32 {
    let (m, e) = (
        x.to_bits() & ((1 << 52) - 1),
        ((x.to_bits() >> 52) & 0x7ff) as i32,
    );
    if e == 0 {
        // subnormal: 2^−1074 · m
        -1074 + 63 - m.leading_zeros() as i32
    } else {
        e - 1023
    }
}

/// The exact real semantics of a high op on candle tensors (the teacher's,
/// and the student's for ops its policy leaves unlowered).
pub fn high(h: &HighOp, a: &[Tensor]) -> candle_core::Result<Tensor> {
    let x = &a[0];
    let last = x.rank().saturating_sub(1);
    match h {
        HighOp::Gelu { tanh: false } => x.gelu_erf(),
        HighOp::Gelu { tanh: true } => x.gelu(),
        HighOp::Exp => x.exp(),
        HighOp::Recip => x.recip(),
        HighOp::Rsqrt => x.sqrt()?.recip(),
        HighOp::Tanh => x.tanh(),
        HighOp::Silu => x.silu(),
        HighOp::Softmax { masked } => {
            // masked-out entries get probability 0; a row with none left is 0
            let far = x.ones_like()?.affine(0.0, -1e30)?;
            // (a mask shared by a batch's examples covers each)
            let mask = if *masked {
                Some(a[1].broadcast_as(x.dims())?)
            } else {
                None
            };
            let on = if let Some(m) = &mask {
                m.where_cond(x, &far)?
            } else {
                x.clone()
            };
            let m = on.max_keepdim(last)?.detach();
            let z = on.broadcast_sub(&m)?;
            let z = if let Some(m) = &mask {
                m.where_cond(&z, &far)?
            } else {
                z
            };
            let e = z.exp()?;
            let s = e.sum_keepdim(last)?.clamp(1e-30, f64::INFINITY)?;
            e.broadcast_div(&s)
        }
        HighOp::LayerNorm { eps } => {
            let mu = x.mean_keepdim(last)?;
            let xc = x.broadcast_sub(&mu)?;
            let var = xc.sqr()?.mean_keepdim(last)?;
            xc.broadcast_div(&var.affine(1.0, *eps)?.sqrt()?)?
                .broadcast_mul(&a[1])?
                .broadcast_add(&a[2])
        }
        HighOp::RmsNorm { eps } => {
            let ms = x.sqr()?.mean_keepdim(last)?;
            x.broadcast_div(&ms.affine(1.0, *eps)?.sqrt()?)?
                .broadcast_mul(&a[1])
        }
    }
}
