//! Quantization-aware distillation (MPCFormer's recipe, on the IR): the
//! teacher is a model's float graph with its weights; the student is the
//! same model lowered under a policy, evaluated in `Quantized` mode, its
//! weights initialised from the teacher's. Stage `hidden` matches, with
//! mean squared errors, the pre-softmax attention scores (masked entries
//! left out) and the hidden states — the operands of every softmax and
//! normalisation, which lowering leaves in place so the two graphs share
//! them by node id — and the outputs; stage `pred` only the outputs.
//! AdamW with decoupled weight decay, gradient clipping by global norm, a
//! linear warm-up.

use crate::forward::{candle_err, Mode, Params};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ditto_compiler::ir::eval::{self, EvalError};
use ditto_compiler::ir::{Graph, HighOp, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// What a point of comparison holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapKind {
    /// A softmax's operand (attention scores before it).
    Scores,
    /// A normalisation's operand (the residual stream).
    Hidden,
}

/// A node whose values the student is taught to match.
#[derive(Debug, Clone, Copy)]
pub struct Tap {
    pub id: NodeId,
    pub kind: TapKind,
    /// The boolean mask of a masked softmax: only its true entries count.
    pub mask: Option<NodeId>,
}

/// A teacher graph and its student (the same model lowered under a
/// policy, for the same sizes), with the taps they share.
pub struct Pair {
    pub teacher: Graph,
    pub student: Graph,
    pub taps: Vec<Tap>,
}

impl Pair {
    /// Finds the taps: the operands of the teacher's softmax, LayerNorm and
    /// RMSNorm nodes that the student still has (lowering replaces those
    /// nodes, never their operands; a fused or folded operand is left
    /// out).
    pub fn new(teacher: Graph, student: Graph) -> Pair {
        let mut taps = Vec::new();
        let mut seen = HashSet::new();
        for id in teacher.topo_order().unwrap_or_default() {
            let Op::High(h) = &teacher.node(id).op else {
                continue;
            };
            let ops = teacher.operands(id);
            let (kind, mask) = match h {
                HighOp::Softmax { masked } => (TapKind::Scores, masked.then(|| ops[1])),
                HighOp::LayerNorm { .. } | HighOp::RmsNorm { .. } => (TapKind::Hidden, None),
                HighOp::Gelu { .. }
                | HighOp::Exp
                | HighOp::Recip
                | HighOp::Rsqrt
                | HighOp::Tanh
                | HighOp::Silu => continue,
            };
            let x = ops[0];
            let shared = |n: NodeId| {
                student.contains(n) && student.node(n).ty.shape == teacher.node(n).ty.shape
            };
            if shared(x) && mask.is_none_or(shared) && seen.insert(x) {
                taps.push(Tap { id: x, kind, mask });
            }
        }
        Pair {
            teacher,
            student,
            taps,
        }
    }
}

/// Which losses a step minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Attention scores, hidden states and outputs.
    Hidden,
    /// Outputs only.
    Pred,
}

/// The optimiser's settings.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub lr: f64,
    pub steps: usize,
    pub weight_decay: f64,
    /// Largest global gradient norm (0: no clipping).
    pub clip: f64,
    /// Fraction of the steps over which the learning rate rises linearly.
    pub warmup: f64,
    pub stage: Stage,
}

impl Default for Recipe {
    /// MPCFormer's stage-1 settings.
    fn default() -> Recipe {
        Recipe {
            lr: 5e-5,
            steps: 1000,
            weight_decay: 0.01,
            clip: 1.0,
            warmup: 0.0,
            stage: Stage::Hidden,
        }
    }
}

/// The teacher's values at the taps and outputs for one example (no
/// gradient), to compare the student with.
pub struct Target {
    taps: HashMap<NodeId, Tensor>,
    outputs: Vec<(String, Tensor)>,
}

/// Runs the teacher on `inputs`.
pub fn target(
    pair: &Pair,
    teacher: &Params,
    inputs: &HashMap<String, eval::Tensor>,
) -> Result<Target, EvalError> {
    Ok(targets(pair, teacher, &[inputs])?.remove(0))
}

/// Runs the teacher on a batch of examples (of the pair's size) in one
/// batched pass; one target per example.
pub fn targets(
    pair: &Pair,
    teacher: &Params,
    inputs: &[&HashMap<String, eval::Tensor>],
) -> Result<Vec<Target>, EvalError> {
    let want: HashSet<NodeId> = pair
        .taps
        .iter()
        .flat_map(|t| [Some(t.id), t.mask].into_iter().flatten())
        .collect();
    let f = crate::forward::forward_batch(&pair.teacher, Mode::Float, inputs, teacher, &|id| {
        want.contains(&id)
    })?;
    (0..inputs.len())
        .map(|i| {
            let one = |t: &Tensor| t.get(i).map(|t| t.detach()).map_err(candle_err);
            Ok(Target {
                taps: f
                    .kept
                    .iter()
                    .map(|(k, v)| Ok((*k, one(v)?)))
                    .collect::<Result<_, EvalError>>()?,
                outputs: f
                    .outputs
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), one(v)?)))
                    .collect::<Result<_, EvalError>>()?,
            })
        })
        .collect()
}

/// Mean squared error of `s` against `t` over the entries where `mask`
/// (0/1, the same shape) is 1, or over all.
fn mse(s: &Tensor, t: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let d = (s.to_dtype(t.dtype())? - t)?;
    match mask {
        None => d.sqr()?.mean_all(),
        Some(m) => {
            let m = m.to_dtype(t.dtype())?;
            let n = m
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?
                .max(1.0);
            (d.sqr()? * m)?.sum_all()?.affine(1.0 / n, 0.0)
        }
    }
}

/// The student's loss on one example against the teacher's `target`: the
/// stage's mean squared errors, summed.
pub fn loss(
    pair: &Pair,
    student: &Params,
    inputs: &HashMap<String, eval::Tensor>,
    target: &Target,
    stage: Stage,
) -> Result<Tensor, EvalError> {
    loss_batch(pair, student, &[inputs], &[target], stage)
}

/// [`loss`] over a batch of examples in one batched pass: each mean
/// squared error is over all the batch's entries.
pub fn loss_batch(
    pair: &Pair,
    student: &Params,
    inputs: &[&HashMap<String, eval::Tensor>],
    targets: &[&Target],
    stage: Stage,
) -> Result<Tensor, EvalError> {
    let want: HashSet<NodeId> = pair.taps.iter().map(|t| t.id).collect();
    let f =
        crate::forward::forward_batch(&pair.student, Mode::Quantized, inputs, student, &|id| {
            want.contains(&id)
        })?;
    let stacked = |get: &dyn Fn(&Target) -> Option<&Tensor>| -> Result<Option<Tensor>, EvalError> {
        let ts: Option<Vec<&Tensor>> = targets.iter().map(|t| get(t)).collect();
        match ts {
            Some(ts) if !ts.is_empty() => Ok(Some(Tensor::stack(&ts, 0).map_err(candle_err)?)),
            _ => Ok(None),
        }
    };
    let mut total = Tensor::zeros((), student.dtype, &Device::Cpu).map_err(candle_err)?;
    let mut add = |l: Tensor| -> Result<(), EvalError> {
        total = (&total + l.to_dtype(student.dtype).map_err(candle_err)?).map_err(candle_err)?;
        Ok(())
    };
    if stage == Stage::Hidden {
        for tap in &pair.taps {
            let (Some(s), Some(t)) = (f.kept.get(&tap.id), stacked(&|x| x.taps.get(&tap.id))?)
            else {
                continue;
            };
            // (the masks are public comparisons: the teacher's are the student's)
            let m = match tap.mask {
                Some(m) => stacked(&|x| x.taps.get(&m))?,
                None => None,
            };
            add(mse(s, &t, m.as_ref()).map_err(candle_err)?)?;
        }
    }
    for (k, (name, _)) in targets[0].outputs.iter().enumerate() {
        if let (Some(s), Some(t)) = (
            f.outputs.get(name),
            stacked(&|x| x.outputs.get(k).map(|o| &o.1))?,
        ) {
            add(mse(s, &t, None).map_err(candle_err)?)?;
        }
    }
    Ok(total)
}

/// AdamW over a student's weights, step by step.
pub struct Trainer {
    opt: AdamW,
    vars: Vec<Var>,
    recipe: Recipe,
    step: usize,
}

impl Trainer {
    pub fn new(student: &Params, recipe: Recipe) -> Result<Trainer, EvalError> {
        let vars: Vec<Var> = student.vars.values().cloned().collect();
        let opt = AdamW::new(
            vars.clone(),
            ParamsAdamW {
                lr: recipe.lr,
                weight_decay: recipe.weight_decay,
                ..Default::default()
            },
        )
        .map_err(candle_err)?;
        Ok(Trainer {
            opt,
            vars,
            recipe,
            step: 0,
        })
    }

    /// The learning rate of step `i`: a linear warm-up, then a linear
    /// decay to zero at the last step (HuggingFace's "linear" schedule,
    /// which MPCFormer's scripts use).
    pub fn lr_at(&self, i: usize) -> f64 {
        let n = self.recipe.steps.max(1);
        let warm = (self.recipe.warmup * n as f64).round() as usize;
        if i < warm {
            self.recipe.lr * (i + 1) as f64 / warm as f64
        } else {
            self.recipe.lr * (n.saturating_sub(i)) as f64 / (n - warm).max(1) as f64
        }
    }

    /// One optimiser step on the mean loss of a batch of `n` examples,
    /// `loss_of(i)` giving example i's. Each example's graph is
    /// differentiated and dropped before the next (memory stays one or two
    /// examples' worth), two at a time; the gradients are summed. Returns
    /// the mean loss.
    pub fn step(
        &mut self,
        n: usize,
        loss_of: impl Fn(usize) -> Result<Tensor, EvalError> + Sync,
    ) -> Result<f64, EvalError> {
        use rayon::prelude::*;
        let scale = 1.0 / n.max(1) as f64;
        let one = |i: usize| -> Result<(f64, Vec<Option<Tensor>>), EvalError> {
            let l = loss_of(i)?
                .to_dtype(DType::F64)
                .and_then(|l| l.affine(scale, 0.0))
                .map_err(candle_err)?;
            let v = l.to_scalar::<f64>().map_err(candle_err)?;
            let g = l.backward().map_err(candle_err)?;
            Ok((
                v,
                self.vars
                    .iter()
                    .map(|x| g.get(x.as_tensor()).cloned())
                    .collect(),
            ))
        };
        let add = |a: Option<Tensor>, b: Option<Tensor>| -> Result<Option<Tensor>, EvalError> {
            Ok(match (a, b) {
                (Some(a), Some(b)) => Some((a + b).map_err(candle_err)?),
                (a, b) => a.or(b),
            })
        };
        let (value, summed) = (0..n).into_par_iter().with_max_len(1).map(one).try_reduce(
            || (0.0, vec![None; self.vars.len()]),
            |(va, ga), (vb, gb)| {
                let g = ga
                    .into_iter()
                    .zip(gb)
                    .map(|(a, b)| add(a, b))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((va + vb, g))
            },
        )?;
        let mut grads = candle_core::backprop::GradStore::default();
        let mut sq = 0.0;
        for (v, g) in self.vars.iter().zip(summed) {
            if let Some(g) = g {
                sq += g
                    .to_dtype(DType::F64)
                    .and_then(|g| g.sqr())
                    .and_then(|g| g.sum_all())
                    .and_then(|g| g.to_scalar::<f64>())
                    .map_err(candle_err)?;
                grads.insert(v.as_tensor(), g);
            }
        }
        let norm = sq.sqrt();
        if self.recipe.clip > 0.0 && norm > self.recipe.clip {
            let s = self.recipe.clip / norm;
            for v in &self.vars {
                if let Some(g) = grads.remove(v.as_tensor()) {
                    grads.insert(v.as_tensor(), g.affine(s, 0.0).map_err(candle_err)?);
                }
            }
        }
        self.opt.set_learning_rate(self.lr_at(self.step));
        self.opt.step(&grads).map_err(candle_err)?;
        self.step += 1;
        Ok(value)
    }

    /// Continues a run at step `i` (its learning rate; the moments start
    /// from zero).
    pub fn skip_to(&mut self, i: usize) {
        self.step = i;
    }
}
