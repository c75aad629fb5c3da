//! A seeded distillation of tiny BERT under `ditto-quad` (Quad GeLU): the
//! layer-wise loss falls, and the student, run by the fixed-point backend
//! (not by the training backend), is closer to the float teacher than the
//! undistilled model on inputs it was not trained on.

mod common;

use candle_core::DType;
use common::{float_graph, inputs, lowered, weights};
use ditto_compiler::ir::eval::{self, Tensor as ETensor, WeightSource};
use ditto_compiler::ir::fixed::evaluate_fixed;
use ditto_train::{loss, target, Pair, Params, Recipe, Stage, Trainer};
use std::collections::HashMap;
use std::time::Instant;

const SEQ: i64 = 8;

/// Mean squared distance of the fixed-point run of `student` from the
/// float teacher's outputs, over `set`.
fn fixed_error(
    g: &ditto_compiler::ir::Graph,
    teacher_g: &ditto_compiler::ir::Graph,
    teacher: &dyn WeightSource,
    student: &dyn WeightSource,
    set: &[HashMap<String, ETensor>],
) -> f64 {
    let mut total = 0.0;
    let mut n = 0;
    for ins in set {
        let want = eval::evaluate(teacher_g, ins, teacher, &|_| false)
            .unwrap()
            .outputs;
        let got = evaluate_fixed(g, ins, student).unwrap();
        for (name, t) in want {
            let s = got[&name].decode();
            for (a, b) in s.data.iter().zip(&t.data) {
                total += (a - b) * (a - b);
                n += 1;
            }
        }
    }
    total / n as f64
}

#[test]
fn distilling_tiny_bert_under_quad_gelu_recovers_the_teacher() {
    let (tg, _) = float_graph("bert", SEQ);
    let sg = lowered("bert", SEQ, "ditto-quad");
    let pair = Pair::new(tg.clone(), sg.clone());
    // 2 layers: the embedding LayerNorm's operand, 2 per layer, 1 softmax each
    assert!(pair.taps.len() >= 5, "{} taps", pair.taps.len());
    let w = weights(&tg, 11, 0.08);
    let teacher = Params::of_graph(&tg, &w, DType::F32).unwrap();
    let student = Params::of_graph(&tg, &w, DType::F32).unwrap();
    let train: Vec<_> = (0..64).map(|i| inputs(&tg, 512, 100 + i)).collect();
    let held: Vec<_> = (0..16).map(|i| inputs(&tg, 512, 5000 + i)).collect();
    let targets: Vec<_> = train
        .iter()
        .map(|x| target(&pair, &teacher, x).unwrap())
        .collect();
    let held_targets: Vec<_> = held
        .iter()
        .map(|x| target(&pair, &teacher, x).unwrap())
        .collect();
    let held_loss = |p: &Params| {
        held.iter()
            .zip(&held_targets)
            .map(|(x, t)| {
                loss(&pair, p, x, t, Stage::Hidden)
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            })
            .sum::<f64>()
            / held.len() as f64
    };
    let before = held_loss(&student);
    let undistilled = fixed_error(&sg, &tg, &w, &w, &held);
    let recipe = Recipe {
        lr: 2e-3,
        steps: 300,
        warmup: 0.1,
        ..Recipe::default()
    };
    let mut tr = Trainer::new(&student, recipe.clone()).unwrap();
    let start = Instant::now();
    let batch = 4;
    for step in 0..recipe.steps {
        let l = tr
            .step(batch, |b| {
                let i = (step * batch + b) % train.len();
                loss(&pair, &student, &train[i], &targets[i], Stage::Hidden)
            })
            .unwrap();
        if step % 50 == 0 {
            eprintln!("step {step}: loss {l:.3e}");
        }
    }
    let after = held_loss(&student);
    let sw = ditto_compiler::weights::InMemory(student.values().unwrap().into_iter().collect());
    let distilled = fixed_error(&sg, &tg, &w, &sw, &held);
    eprintln!(
        "{} steps in {:.1} s; held-out loss {before:.3e} → {after:.3e}; fixed-point output error {undistilled:.3e} → {distilled:.3e}",
        recipe.steps,
        start.elapsed().as_secs_f64()
    );
    assert!(
        after * 10.0 <= before,
        "held-out loss {before:e} → {after:e}"
    );
    assert!(
        distilled < undistilled,
        "fixed-point error {undistilled:e} → {distilled:e}"
    );
}
