//! Calibrated bounds shipped with the models (models/bounds/, built into
//! the binary), applied by default so that `check-ranges` guards every
//! policy, built-in or a user's, on the shipped checkpoints: a policy whose
//! products or conversions would overflow on them is refused at compile
//! time, at the DSL line. Each file is the output of
//! `scripts/calibrate-shipped.sh` (`ditto calibrate` on
//! models/bounds/corpus.txt) and applies only to the graph it was made for
//! (same model, config and layers) and, when the run has weights, only to
//! the weights it was made with (every weight's largest |value| must agree).

use anyhow::Result;
use ditto_compiler::calibrate::Calibration;
use ditto_compiler::ir::eval::WeightSource;
use ditto_compiler::ir::{Graph, Op};

/// (model, what the bounds were calibrated on, calibration file).
const SHIPPED: &[(&str, &str, &str)] = &[(
    "minilm",
    "all-MiniLM-L6-v2",
    include_str!("../models/bounds/minilm.json"),
)];

/// What happened to the shipped bounds of a model.
pub enum Shipped {
    /// Applied to the graph: (checkpoint, nodes bounded).
    Applied(&'static str, usize),
    /// None for this model.
    None,
    /// Not applied, and why (a note for the user).
    Skipped(String),
}

/// Applies `model`'s shipped bounds to `g` when they fit the graph and, if
/// `weights` is given, the weights.
pub fn apply_shipped(
    g: &mut Graph,
    model: &str,
    weights: Option<&dyn WeightSource>,
) -> Result<Shipped> {
    let Some((_, what, text)) = SHIPPED.iter().find(|s| s.0 == model) else {
        return Ok(Shipped::None);
    };
    let cal = Calibration::from_json(text)
        .map_err(|e| anyhow::anyhow!("shipped bounds of {model}: {e}"))?;
    if cal.fingerprint != ditto_compiler::calibrate::fingerprint(g) {
        return Ok(Shipped::Skipped(format!(
            "the shipped bounds of `{model}` are for its whole graph; this one differs (another \
             --layers or model file): `ditto calibrate` makes bounds for it (--bounds)"
        )));
    }
    if let Some(w) = weights {
        for id in g.ids() {
            let Op::Weight { name, .. } = &g.node(id).op else {
                continue;
            };
            let Some((_, want)) = cal.observed.get(&id.index()) else {
                continue;
            };
            let got = w
                .values(name)
                .map_err(|e| anyhow::anyhow!("weight {name:?}: {e}"))?
                .iter()
                .fold(0f64, |m, x| m.max(x.abs()));
            if (got - want).abs() > 1e-9 * want.max(1.0) {
                return Ok(Shipped::Skipped(format!(
                    "the shipped bounds of `{model}` are for {what}; these weights differ \
                     ({name:?}: largest |w| {got:e}, not {want:e}), so check-ranges knows only \
                     declared bounds: `ditto calibrate` makes bounds for them (--bounds)"
                )));
            }
        }
    }
    let n = cal.apply(g).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Shipped::Applied(what, n))
}

/// Which shipped bounds a compilation may use.
#[derive(Clone, Copy)]
pub enum Check<'a> {
    /// The graph's, whatever the weights (`ditto compile` has none).
    Graph,
    /// The graph's, if they were calibrated on these weights.
    Weights(&'a (dyn WeightSource + Sync)),
    /// None (seeded weights, a graph cut for `bench --input embeddings`).
    Off,
}

/// Applies the shipped bounds of the graph's model as `check` allows;
/// prints a note when they exist but do not fit, and with `verbose` when
/// they are applied. Returns whether applied.
pub fn default_bounds(g: &mut Graph, check: Check<'_>, verbose: bool) -> Result<bool> {
    let weights: Option<&dyn WeightSource> = match check {
        Check::Off => return Ok(false),
        Check::Graph => None,
        Check::Weights(w) => Some(w),
    };
    let model = g.name.clone();
    Ok(match apply_shipped(g, &model, weights)? {
        Shipped::Applied(what, n) => {
            if verbose {
                eprintln!("bounds: calibrated on {what} (models/bounds/{model}.json), {n} nodes");
            }
            true
        }
        Shipped::None => false,
        Shipped::Skipped(why) => {
            eprintln!("note: {why}");
            false
        }
    })
}
