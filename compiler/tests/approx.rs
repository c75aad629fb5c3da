//! The stdlib approximations, measured: each runs in fixed point (compiled
//! with the default pass pipeline and evaluated on cleartext rings) on a grid
//! over its input range, and its largest absolute error against f64 math is
//! asserted. The figures are recorded in docs/approximations.md; run with
//! `--nocapture` to print them.

use ditto_compiler::driver::compile_text;
use ditto_compiler::elab::Options;
use ditto_compiler::ir::eval::Tensor;
use ditto_compiler::ir::fixed::evaluate_fixed;
use ditto_compiler::passes::{run, Ctx, DumpAfter, DEFAULT_PIPELINE};
use ditto_compiler::policy::Policy;
use ditto_compiler::weights::InMemory;
use std::collections::HashMap;

/// Max |approx(x) − exact(x)| over `n` points of [lo, hi], with `call` the
/// DSL expression of `x` evaluated in format (k, f).
fn max_error(
    call: &str,
    fmt: (u32, u32),
    lo: f64,
    hi: f64,
    n: usize,
    exact: impl Fn(f64) -> f64,
) -> f64 {
    max_error_row(call, fmt, lo, hi, n, |xs| {
        xs.iter().map(|&x| exact(x)).collect()
    })
}

/// Like [`max_error`] for a function of the whole row (softmax).
fn max_error_row(
    call: &str,
    fmt: (u32, u32),
    lo: f64,
    hi: f64,
    n: usize,
    exact: impl Fn(&[f64]) -> Vec<f64>,
) -> f64 {
    max_error_in(call, fmt, &[], lo, hi, n, exact)
}

/// Like [`max_error_row`] with exp's squarings (class `exp`) in format
/// `exp` instead.
fn max_error_exp(
    call: &str,
    fmt: (u32, u32),
    exp: (u32, u32),
    lo: f64,
    hi: f64,
    n: usize,
    exact: impl Fn(&[f64]) -> Vec<f64>,
) -> f64 {
    max_error_in(call, fmt, &[("exp", exp)], lo, hi, n, exact)
}

/// Like [`max_error_row`] with some classes (`exp`, `gelu_poly`) in their
/// own formats; the others default to `fmt` (`scores` to (32, 8)).
fn max_error_in(
    call: &str,
    fmt: (u32, u32),
    classes: &[(&str, (u32, u32))],
    lo: f64,
    hi: f64,
    n: usize,
    exact: impl Fn(&[f64]) -> Vec<f64>,
) -> f64 {
    let xs: Vec<f64> = (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect();
    let err = max_error_on(call, fmt, classes, &xs, exact);
    let inner: Vec<String> = classes
        .iter()
        .map(|(c, (k, f))| format!(" {c} in ({k}, {f})"))
        .collect();
    println!(
        "{call:<20} ({}, {}){} on [{lo}, {hi}]: max abs error {err:.2e}",
        fmt.0,
        fmt.1,
        inner.join(",")
    );
    err
}

/// Max |approx − exact| on the row `xs`.
fn max_error_on(
    call: &str,
    fmt: (u32, u32),
    classes: &[(&str, (u32, u32))],
    xs: &[f64],
    exact: impl Fn(&[f64]) -> Vec<f64>,
) -> f64 {
    let n = xs.len();
    let class = |c: &str| {
        let (k, f) = classes
            .iter()
            .find(|(n, _)| *n == c)
            .map(|(_, f)| *f)
            .unwrap_or(fmt);
        format!("format {c} = ({k}, {f});\n")
    };
    let src = format!(
        "use std.approx;\nformat scores = (32, 8);\n{}{}{}model m(S) {{\n    input x: s{k}.{f}[S] from client;\n    precision ({k}, {f}) {{\n        let y = {call};\n    }}\n    output y;\n}}\n",
        class("exp"),
        class("gelu_poly"),
        class("rmsnorm"),
        k = fmt.0,
        f = fmt.1,
    );
    let c = compile_text(
        "approx.ditto",
        &src,
        &Options {
            seq: Some(n as i64),
            ..Default::default()
        },
    );
    let mut g = match c.result {
        Ok(e) => e.graph,
        Err(d) => panic!("{}", ditto_compiler::diag::render(&c.sources, &d, false)),
    };
    // the declared formats hold where `ditto` would place exp and GeLU's
    // polynomial itself
    let mut policy = Policy::builtin("ditto").unwrap();
    policy.formats.remove("exp");
    policy.formats.remove("gelu_poly");
    run(
        &mut g,
        DEFAULT_PIPELINE,
        &Ctx {
            policy: &policy,
            sources: None,
            weight_bounds: None,
        },
        &DumpAfter::None,
    )
    .expect("pipeline");
    let inputs = HashMap::from([("x".to_string(), Tensor::new(vec![n], xs.to_vec()))]);
    let out = evaluate_fixed(&g, &inputs, &InMemory::default()).expect("evaluates");
    let y = out["y"].decode();
    let want = exact(xs);
    want.iter()
        .zip(&y.data)
        .map(|(&w, &v)| (v - w).abs())
        .fold(0.0, f64::max)
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

#[test]
fn exp_for_softmax() {
    // t = 8 squarings (SPU's default) and t = 5 (PUMA's example configs).
    assert!(max_error("exp_neg(x, 8)", (64, 18), -16.0, 0.0, 2001, f64::exp) < 2e-3);
    assert!(max_error("exp_neg(x, 5)", (64, 18), -16.0, 0.0, 2001, f64::exp) < 1.2e-2);
    // in the low ring (models/policies/ditto-exp32.json): the squarings
    // stay in [0, 1], but the base 1 + x/2^8 is quantised to 2^−14, which
    // the squarings amplify 256-fold near x = 0
    assert!(max_error("exp_neg(x, 8)", (32, 14), -16.0, 0.0, 2001, f64::exp) < 2e-2);
    // the quadratic base (`ditto`): t = 4 squarings are as close as PUMA's
    // t = 8, and its base keeps its precision in (32, 14), where `ditto`
    // runs it
    assert!(max_error("exp_quad(x, 4)", (64, 18), -16.0, 0.0, 2001, f64::exp) < 1.2e-3);
    assert!(max_error("exp_quad(x, 4)", (32, 14), -16.0, 0.0, 2001, f64::exp) < 2.5e-3);
    // t = 3 is not enough: the base stays above 0.5 down to x = −14, so
    // (0.78)^8 = 0.14 where e^x is 1e-6
    assert!(max_error("exp_quad(x, 3)", (64, 18), -16.0, 0.0, 2001, f64::exp) > 0.1);
}

#[test]
fn gelu_piecewise() {
    // The polynomial itself is 1.99e-2 off at x = 3 (where it jumps to x);
    // fixed point adds about 1e-3.
    assert!(max_error("gelu_puma(x)", (64, 18), -8.0, 8.0, 4001, gelu) < 2.2e-2);
    // away from the jump: the polynomial's own 8.5e-3 (its constant term at 0)
    assert!(max_error("gelu_puma(x)", (64, 18), -8.0, 2.5, 2001, gelu) < 9e-3);
    // in (32, 10), as `ditto` runs it: the polynomials are used on [−4, 3]
    // only, where x⁶·2^20 < 2^30; larger |x| overflow in discarded branches
    assert!(max_error("gelu_puma_half(x)", (32, 10), -8.0, 8.0, 4001, gelu) < 2.2e-2);
    // the power basis in x loses its small coefficients' precision there
    // (0.0018·x⁶ at 2^−10: about 0.1 off near x = 3)
    assert!(max_error("gelu_puma(x)", (32, 10), -8.0, 8.0, 4001, gelu) > 5e-2);
}

#[test]
fn gelu_by_symmetry() {
    // relu(x) − g(|x|): the quartic's own 2.0e-3 (and g(3.3) = 1.6e-3 beyond)
    assert!(max_error("gelu_sym(x)", (64, 18), -8.0, 8.0, 4001, gelu) < 2.5e-3);
    // x and the result in (32, 8), the polynomial in `poly`
    let in_low = |poly: (u32, u32)| {
        max_error_in(
            "gelu_sym(x)",
            (32, 8),
            &[("gelu_poly", poly)],
            -8.0,
            8.0,
            4001,
            |xs| xs.iter().map(|&x| gelu(x)).collect(),
        )
    };
    // as `ditto` runs it, the polynomial in (32, 12): the rounding of input
    // and output is most of the error
    let ditto = in_low((32, 12));
    assert!(ditto < 8e-3);
    // the polynomial in (32, 8) as well: its powers lose too much
    let low = in_low((32, 8));
    assert!(low > ditto);
}

#[test]
fn gelu_quad_is_its_polynomial() {
    // Quad is exact to itself up to fixed-point rounding, in (32, 8) as
    // ditto-quad runs it.
    let quad = |x: f64| 0.125 * x * x + 0.25 * x + 0.5;
    assert!(max_error("gelu_quad(x)", (32, 8), -6.0, 6.0, 1001, quad) < 3e-2);
}

#[test]
fn reciprocal_goldschmidt() {
    let recip = |x: f64| 1.0 / x;
    // softmax denominators lie in [1, n]
    assert!(max_error("recip_goldschmidt(x, 5)", (64, 18), 1.0, 128.0, 2001, recip) < 2e-5);
    assert!(
        max_error(
            "recip_goldschmidt(x, 5)",
            (64, 18),
            0.05,
            1000.0,
            4001,
            recip
        ) < 2e-4
    );
    // three steps are as good (softmax's `normalise` takes three): the
    // relative error after them, 0.0858^8, is below the format's resolution
    assert!(max_error("recip_goldschmidt(x, 3)", (64, 18), 1.0, 128.0, 2001, recip) < 2e-5);
}

#[test]
fn tanh_through_exp() {
    assert!(max_error("tanh_exp(x, 8)", (64, 18), -8.0, 8.0, 4001, f64::tanh) < 2.5e-3);
}

#[test]
fn rsqrt_for_layernorm() {
    let rsqrt = |x: f64| 1.0 / x.sqrt();
    // LayerNorm variances (plus eps)
    assert!(max_error("rsqrt_poly(x)", (64, 18), 0.01, 1000.0, 4001, rsqrt) < 1e-4);
    // LayerNorm's form, the scale folded into the coefficients: as precise
    // at large x (relative error below 6e-4 per decade), where s is small
    for (lo, hi, bound) in [
        (0.01, 0.1, 2e-3),
        (1.0, 10.0, 1.2e-4),
        (100.0, 1000.0, 2e-5),
    ] {
        let folded = max_error("rsqrt_terms(x, 1)", (64, 18), lo, hi, 1001, rsqrt);
        let plain = max_error("rsqrt_poly(x)", (64, 18), lo, hi, 1001, rsqrt);
        assert!(
            folded < bound && plain < bound,
            "[{lo}, {hi}]: {folded} and {plain}"
        );
    }
}

#[test]
fn softmax_puma_and_2quad() {
    let softmax = |xs: &[f64]| {
        let m = xs.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = xs.iter().map(|x| (x - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect::<Vec<f64>>()
    };
    // a row of 64 attention scores over [−8, 4]; the row max runs in (32, 8)
    // under `ditto`
    assert!(max_error_row("softmax_puma(x, 8, 1)", (64, 18), -8.0, 4.0, 64, softmax) < 1e-3);
    // exp, the sum and the normalisation in (32, 14), as `ditto` places them
    let in_exp32 = |call: &str| max_error_exp(call, (64, 18), (32, 14), -8.0, 4.0, 64, softmax);
    // PUMA's base there: its 2^−14 rounding squared 8 times
    let low = in_exp32("softmax_puma(x, 8, 1)");
    eprintln!("  (PUMA's exp in (32, 14): max abs error {low:.2e})");
    assert!(low < 3e-3);
    // `ditto`'s exp: the quadratic base with 4 squarings
    let quad = in_exp32("softmax_puma(x, 4, 2)");
    eprintln!("  (quadratic base, t = 4, in (32, 14): max abs error {quad:.2e})");
    assert!(quad < 1e-3);
    // 2Quad against its own formula: the Goldschmidt reciprocal of row sums
    // in the thousands dominates (about 1e-4 relative)
    let two_quad = |xs: &[f64]| {
        let q: Vec<f64> = xs.iter().map(|x| (x + 5.0) * (x + 5.0)).collect();
        let s: f64 = q.iter().sum();
        q.iter().map(|v| v / s).collect::<Vec<f64>>()
    };
    assert!(max_error_row("softmax_2quad(x)", (64, 18), -8.0, 4.0, 64, two_quad) < 3e-4);
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

#[test]
fn silu_by_symmetry() {
    // relu(x) − g(|x|): the sextic's own 2.7e-3 (and g(8) = 2.7e-3 beyond)
    let wide = max_error("silu_sym(x)", (64, 18), -20.0, 20.0, 4001, silu);
    assert!(wide < 3e-3, "{wide}");
    // as `ditto` runs it: x and the result in (32, 8), the polynomial in
    // (32, 12)
    let ditto = max_error_in(
        "silu_sym(x)",
        (32, 8),
        &[("gelu_poly", (32, 12))],
        -20.0,
        20.0,
        4001,
        |xs| xs.iter().map(|&x| silu(x)).collect(),
    );
    assert!(ditto < 9e-3, "{ditto}");
}

/// RMSNorm of a row with γ = 1.
fn rms_norm(xs: &[f64]) -> Vec<f64> {
    let ms = xs.iter().map(|x| x * x).sum::<f64>() / xs.len() as f64;
    xs.iter().map(|x| x / (ms + 1e-5).sqrt()).collect()
}

#[test]
fn rmsnorm_with_massive_activations() {
    // a row of ordinary values, and one with a massive activation (Llama's:
    // SmolLM2-135M has 22 552), in (64, 18) as every policy runs it
    let cls = [("rmsnorm", (64, 28))];
    let small = max_error_in(
        "rmsnorm_mpc(x, 1.0, 1e-5)",
        (64, 18),
        &cls,
        -3.0,
        3.0,
        576,
        rms_norm,
    );
    assert!(small < 2e-3, "{small}");
    // rows of a few hundredths (embeddings; seeded weights)
    let tiny = max_error_in(
        "rmsnorm_mpc(x, 1.0, 1e-5)",
        (64, 18),
        &cls,
        -0.03,
        0.05,
        576,
        rms_norm,
    );
    assert!(tiny < 2e-3, "{tiny}");
    let mut row: Vec<f64> = (0..576)
        .map(|i| ((i * 37) % 101) as f64 / 17.0 - 3.0)
        .collect();
    row[0] = 22552.0;
    row[7] = -900.0;
    let big = max_error_on("rmsnorm_mpc(x, 1.0, 1e-5)", (64, 18), &cls, &row, rms_norm);
    println!("rmsnorm_mpc with 22 552 and −900 among ordinary values: max abs error {big:.2e}");
    assert!(big < 2e-3, "{big}");
    // without the pre-scaling, 22 552² at 36 fraction bits leaves the ring
    let plain = max_error_on(
        "x * rsqrt_poly(mean(x * x, -1) + 1e-5)",
        (64, 18),
        &[],
        &row,
        rms_norm,
    );
    assert!(plain > 1.0, "{plain}");
}
