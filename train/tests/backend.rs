//! The training backend against the compiler's own evaluators, which it
//! does not share code with: `Float` mode against the float evaluator on
//! the unlowered graphs, `Quantized` mode against the fixed-point backend on
//! the graphs lowered under a policy (the model a student is trained as is
//! the one MPC runs), and gradients against finite differences.

mod common;

use candle_core::{DType, Tensor};
use common::{float_graph, inputs, lowered, weights};
use ditto_compiler::ir::eval::{self, Tensor as ETensor};
use ditto_compiler::ir::fixed::evaluate_fixed;
use ditto_compiler::ir::{Elem, Graph, Op};
use ditto_train::{forward, to_eval, Mode, Params};
use proptest::prelude::*;
use std::collections::HashMap;

const MODELS: [(&str, usize); 3] = [("bert", 512), ("gpt2", 512), ("smollm2", 512)];

fn outputs(
    g: &Graph,
    mode: Mode,
    ins: &HashMap<String, ETensor>,
    p: &Params,
) -> Vec<(String, ETensor)> {
    forward(g, mode, ins, p, &|_| false)
        .unwrap()
        .outputs
        .iter()
        .map(|(k, t)| (k.clone(), to_eval(t).unwrap()))
        .collect()
}

#[test]
fn float_mode_matches_the_float_evaluator() {
    for (model, vocab) in MODELS {
        let (g, _) = float_graph(model, 6);
        let w = weights(&g, 1, 0.05);
        let ins = inputs(&g, vocab, 2);
        let want = eval::evaluate(&g, &ins, &w, &|_| false).unwrap().outputs;
        let p = Params::of_graph(&g, &w, DType::F64).unwrap();
        let got = outputs(&g, Mode::Float, &ins, &p);
        assert_eq!(got.len(), want.len(), "{model}");
        for (name, t) in got {
            let r = &want[&name];
            assert_eq!(t.shape, r.shape, "{model}.{name}");
            let worst = t
                .data
                .iter()
                .zip(&r.data)
                .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                .fold(0.0, f64::max);
            assert!(
                worst < 1e-9,
                "{model}.{name}: relative difference {worst:e}"
            );
        }
    }
}

/// The largest difference between the two, in units of the output's last
/// fraction bit, over all outputs; and how many elements differ at all.
fn units_apart(
    g: &Graph,
    got: &[(String, ETensor)],
    want: &indexmap::IndexMap<String, ETensor>,
) -> (f64, usize) {
    let mut worst: f64 = 0.0;
    let mut differ = 0;
    for (name, t) in got {
        let id = g
            .outputs()
            .into_iter()
            .find(|&id| matches!(&g.node(id).op, Op::Output { name: n, .. } if n == name))
            .unwrap();
        let Elem::Fixed(f) = g.node(id).ty.elem else {
            continue;
        };
        let unit = (-(f.frac as f64)).exp2();
        for (a, b) in t.data.iter().zip(&want[name].data) {
            let d = (a - b).abs() / unit;
            worst = worst.max(d);
            differ += usize::from(d > 0.0);
        }
    }
    (worst, differ)
}

#[test]
fn quantized_mode_matches_the_fixed_backend() {
    for (model, policy) in [
        ("bert", "ditto"),
        ("bert", "uniform64"),
        ("bert", "ditto-quad"),
        ("gpt2", "ditto"),
        ("smollm2", "ditto"),
    ] {
        let g = lowered(model, 6, policy);
        let w = weights(&g, 3, 0.05);
        let ins = inputs(&g, 512, 4);
        let want: indexmap::IndexMap<String, ETensor> = evaluate_fixed(&g, &ins, &w)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.decode()))
            .collect();
        let p = Params::of_graph(&g, &w, DType::F64).unwrap();
        let got = outputs(&g, Mode::Quantized, &ins, &p);
        let (worst, differ) = units_apart(&g, &got, &want);
        eprintln!("{model} under {policy}: {differ} elements differ, by at most {worst} units");
        assert!(worst <= 1.0, "{model} under {policy}: {worst} units apart");
        // negative control: the same graph without the rounding is far off
        let free = outputs(&g, Mode::Float, &ins, &p);
        let (off, _) = units_apart(&g, &free, &want);
        assert!(
            off > 4.0,
            "{model} under {policy}: unrounded only {off} units apart"
        );
    }
}

/// Σ over outputs of ⟨output, R⟩ for fixed random R: a scalar whose
/// gradient reaches every weight that matters.
fn probe(g: &Graph, ins: &HashMap<String, ETensor>, p: &Params) -> Tensor {
    let out = forward(g, Mode::Float, ins, p, &|_| false).unwrap().outputs;
    let mut total = Tensor::zeros((), DType::F64, &candle_core::Device::Cpu).unwrap();
    for (i, t) in out.values().enumerate() {
        let n = t.elem_count();
        let r: Vec<f64> = (0..n)
            .map(|j| (((i * 7919 + j * 104729) % 997) as f64 / 997.0) - 0.5)
            .collect();
        let r = Tensor::from_vec(r, t.dims(), &candle_core::Device::Cpu).unwrap();
        total = (total + (t * r).unwrap().sum_all().unwrap()).unwrap();
    }
    total
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

/// Autograd against central differences at `picks` coordinates of every
/// weight tensor.
fn check_gradients(g: &Graph, seed: u64, picks: usize) -> Result<(), TestCaseError> {
    let w = weights(g, seed, 0.1);
    let ins = inputs(g, 512, seed + 1);
    let p = Params::of_graph(g, &w, DType::F64).unwrap();
    let grads = probe(g, &ins, &p).backward().unwrap();
    let h = 1e-6;
    let mut moved = 0;
    for (name, var) in &p.vars {
        let n = var.elem_count();
        let base = to_eval(var.as_tensor()).unwrap();
        let grad = grads
            .get(var.as_tensor())
            .map(|t| to_eval(t).unwrap().data)
            .unwrap_or_else(|| vec![0.0; n]);
        for k in 0..picks.min(n) {
            let j = (seed as usize * 31 + k * 7877) % n;
            let at = |d: f64| {
                let mut v = base.data.clone();
                v[j] += d;
                var.set(
                    &Tensor::from_vec(v, base.shape.clone(), &candle_core::Device::Cpu).unwrap(),
                )
                .unwrap();
                scalar(&probe(g, &ins, &p))
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            at(0.0);
            moved += usize::from(fd.abs() > 1e-6);
            let tol = 1e-5 * (1.0 + fd.abs().max(grad[j].abs()));
            prop_assert!(
                (fd - grad[j]).abs() <= tol,
                "{name}[{j}]: autograd {} against finite differences {fd}",
                grad[j]
            );
        }
    }
    // most weights move the probe: a check of zeros would prove nothing
    prop_assert!(
        moved * 2 > p.vars.len(),
        "only {moved} coordinates move the probe"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every op of the float graphs (GeLU both ways, masked softmax,
    /// LayerNorm, RMSNorm, SiLU, RoPE tables, lookups, products, slices,
    /// concatenations, broadcasts, reductions, selections).
    #[test]
    fn float_graph_gradients_agree_with_finite_differences(seed in 1u64..1000) {
        for (model, _) in MODELS {
            let (g, _) = float_graph(model, 4);
            check_gradients(&g, seed, 3)?;
        }
    }

    /// The lowered graphs' ops in exact arithmetic: the approximations'
    /// polynomials, comparisons and selections, power-of-two
    /// normalisations (piecewise constant), rescales and conversions.
    #[test]
    fn lowered_graph_gradients_agree_with_finite_differences(seed in 1u64..1000) {
        for (model, policy) in [("bert", "ditto"), ("smollm2", "ditto")] {
            let g = lowered(model, 4, policy);
            check_gradients(&g, seed, 3)?;
        }
    }
}

/// A batch of examples in one pass gives each example's values of a pass
/// of its own, in both modes, on float and lowered graphs.
#[test]
fn a_batch_equals_its_examples_one_by_one() {
    for (model, policy) in [
        ("bert", None),
        ("gpt2", Some("ditto")),
        ("smollm2", Some("ditto")),
        ("bert", Some("ditto-quad")),
    ] {
        let g = match policy {
            None => float_graph(model, 5).0,
            Some(p) => lowered(model, 5, p),
        };
        let w = weights(&g, 5, 0.05);
        let p = Params::of_graph(&g, &w, DType::F64).unwrap();
        let exs: Vec<_> = (0..3).map(|i| inputs(&g, 512, 40 + i)).collect();
        let refs: Vec<_> = exs.iter().collect();
        for mode in [Mode::Float, Mode::Quantized] {
            let all = ditto_train::forward_batch(&g, mode, &refs, &p, &|_| false).unwrap();
            for (i, ex) in exs.iter().enumerate() {
                let one = forward(&g, mode, ex, &p, &|_| false).unwrap();
                for (name, t) in &one.outputs {
                    let b = to_eval(&all.outputs[name].get(i).unwrap()).unwrap();
                    let t = to_eval(t).unwrap();
                    assert_eq!(b.shape, t.shape, "{model} {policy:?} {name}");
                    let worst = b
                        .data
                        .iter()
                        .zip(&t.data)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f64::max);
                    assert!(
                        worst < 1e-9,
                        "{model} {policy:?} {mode:?} {name}[{i}]: {worst}"
                    );
                }
            }
        }
    }
}
