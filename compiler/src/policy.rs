//! Precision policies as data (NUMERICS.md): a table from format class to
//! format, plus the approximation choices the lowering will read. Built-in
//! policies: `uniform64` (PUMA-like baseline), `ditto` (Ditto's mixed
//! precision), `ditto-nl64` (NUMERICS.md's table: non-linear parts all in
//! (64, 18)), `ditto-quad` (also Quad GeLU in (32, 8), for distilled models).
//! Users write their own as JSON (`--policy-file`):
//!
//! ```json
//! { "name": "mine", "formats": { "linear": [32, 10], "scores": [32, 8] },
//!   "gelu": "sym", "softmax": "puma", "exp": "quad", "exp_squarings": 4 }
//! ```
//!
//! Classes a policy does not name keep the format the model declares.
//! `"auto": true` (the built-in `ditto-auto`) lets calibrated bounds refine
//! the table: see [`crate::passes::resolve_auto`].

use crate::ir::Format;
use std::collections::BTreeMap;

/// Which GeLU approximation the lowering uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluApprox {
    /// PUMA's piecewise polynomial (valid for any pretrained model).
    Puma,
    /// MPCFormer's 0.125x² + 0.25x + 0.5 (distilled models only).
    Quad,
    /// relu(x) − g(|x|) with g(t) = t·Φ(−t) a quartic below 3.3 (valid for
    /// any pretrained model): two comparisons and one polynomial
    /// (`gelu_sym`, docs/approximations.md).
    Sym,
}

/// Which base softmax's exp raises to the power 2^t.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpApprox {
    /// PUMA's 1 + x/2^t (t = 8 by default).
    Puma,
    /// 1 + y + y²/2 at y = x/2^t, written ((1 + y)² + 1)/2: one product
    /// more, accurate with t = 4 (`exp_quad`).
    Quad,
}

/// Which softmax the lowering uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftmaxApprox {
    /// PUMA's: row max, exp by squarings, one reciprocal per row.
    Puma,
    /// MPCFormer's 2Quad, (x + 5)² normalised (distilled models only).
    TwoQuad,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub formats: BTreeMap<String, Format>,
    pub gelu: GeluApprox,
    pub softmax: SoftmaxApprox,
    /// The base exp raises to 2^t.
    pub exp: ExpApprox,
    /// Squarings t of exp's base.
    pub exp_squarings: u32,
    /// Pick fraction bits (and lower `probs_v`) from calibrated bounds
    /// ([`crate::passes::resolve_auto`]); needs `--bounds`.
    pub auto: bool,
}

/// The format classes of `std.transformer` (NUMERICS.md's table rows).
pub const CLASSES: &[&str] = &[
    "embedding",
    "linear",
    "weights",
    "scores",
    "softmax",
    "exp",
    "probs_v",
    "gelu",
    "gelu_poly",
    "residual",
    "head",
];

pub const BUILTIN: &[&str] = &[
    "uniform64",
    "ditto",
    "ditto-nl64",
    "ditto-quad",
    "ditto-auto",
];

/// Classes whose low-ring formats are bounded by the approximation they
/// hold rather than by the model: GeLU's polynomials are used on bounded
/// domains only (`gelu_sym`'s s = |x|/4 ≤ 0.825, where s²·2^24 < 2^30
/// at (32, 12); PUMA's pieces on [−4, 3], where (x/2)⁶·2^20 < 2^30 at
/// (32, 10), `gelu_puma_half`); exp's squarings stay in [0, 1], where a
/// product at (32, 14)·(32, 14) stays below 2^30. Values outside those
/// domains only reach branches that a selection discards. Calibration does
/// not move them (`ditto-auto`).
pub const APPROX_CLASSES: &[&str] = &["gelu", "gelu_poly", "exp"];

/// `gelu_sym`'s polynomial under `ditto` (see [`APPROX_CLASSES`]).
pub const GELU_POLY: Format = Format {
    ring: crate::ir::Ring::Z32,
    frac: 12,
};

/// The linear layers' weight matrices under `ditto`: two more fraction
/// bits than the activations they multiply (the weights' rounding, not the
/// activations', dominates the error of (32, 8) layers: on
/// all-MiniLM-L6-v2 a 3-token input goes from cosine 0.989 to 0.9985), at
/// the same bytes and rounds: the product's truncation drops 18 bits
/// instead of 16. The price is headroom: an accumulator must stay below
/// 2^(30−18) = 4096 instead of 16384 (check-ranges proves it where bounds
/// are known).
pub const WEIGHTS_LOW: Format = Format {
    ring: crate::ir::Ring::Z32,
    frac: 10,
};

/// exp's squarings under `ditto` (see [`APPROX_CLASSES`]).
pub const EXP_LOW: Format = Format {
    ring: crate::ir::Ring::Z32,
    frac: 14,
};

impl Policy {
    /// The built-in policies (docs/passes.md):
    /// - `uniform64`: every class in (64, 18) with PUMA's approximations,
    ///   PUMA's setting;
    /// - `ditto`: linear layers and scores in (32, 8), their weight matrices
    ///   in (32, 10) ([`WEIGHTS_LOW`]); GeLU by symmetry
    ///   (`gelu_sym`) with x and the result in (32, 8) and its quartic in
    ///   (32, 12); exp with a quadratic base and 4 squarings in (32, 14); the
    ///   rest (reciprocal, normalisations, probs·V, residuals, LayerNorm,
    ///   heads) in (64, 18);
    /// - `ditto-nl64`: NUMERICS.md's table: only linear layers and scores
    ///   low, PUMA's approximations, every non-linear part in (64, 18);
    /// - `ditto-quad`: `ditto` with Quad GeLU in (32, 8) (exp as `ditto`'s),
    ///   for distilled models;
    /// - `ditto-auto`: `ditto` refined by calibrated bounds.
    pub fn builtin(name: &str) -> Option<Policy> {
        let table = |overrides: &[(&str, Format)], all_high: bool| -> BTreeMap<String, Format> {
            CLASSES
                .iter()
                .map(|&c| {
                    let f = if all_high {
                        Format::HIGH
                    } else if let Some((_, f)) = overrides.iter().find(|(k, _)| *k == c) {
                        *f
                    } else if matches!(c, "linear" | "weights" | "scores") {
                        Format::LOW
                    } else {
                        Format::HIGH
                    };
                    (c.to_string(), f)
                })
                .collect()
        };
        let (fm, gelu, exp) = match name {
            "uniform64" => (table(&[], true), GeluApprox::Puma, ExpApprox::Puma),
            "ditto" | "ditto-auto" => (
                table(
                    &[
                        ("weights", WEIGHTS_LOW),
                        ("gelu", Format::LOW),
                        ("gelu_poly", GELU_POLY),
                        ("exp", EXP_LOW),
                    ],
                    false,
                ),
                GeluApprox::Sym,
                ExpApprox::Quad,
            ),
            "ditto-nl64" => (table(&[], false), GeluApprox::Puma, ExpApprox::Puma),
            "ditto-quad" => (
                table(
                    &[
                        ("weights", WEIGHTS_LOW),
                        ("gelu", Format::LOW),
                        ("exp", EXP_LOW),
                    ],
                    false,
                ),
                GeluApprox::Quad,
                ExpApprox::Quad,
            ),
            _ => return None,
        };
        Some(Policy {
            name: name.to_string(),
            formats: fm,
            gelu,
            softmax: SoftmaxApprox::Puma,
            exp,
            exp_squarings: if exp == ExpApprox::Quad { 4 } else { 8 },
            auto: name == "ditto-auto",
        })
    }

    /// Parses a policy file; errors say which field is wrong.
    pub fn from_json(text: &str) -> Result<Policy, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let obj = v.as_object().ok_or("a policy file holds one JSON object")?;
        for k in obj.keys() {
            if ![
                "name",
                "formats",
                "gelu",
                "softmax",
                "exp",
                "exp_squarings",
                "auto",
            ]
            .contains(&k.as_str())
            {
                return Err(format!(
                    "unknown field `{k}` (expected name, formats, gelu, softmax, exp, exp_squarings, auto)"
                ));
            }
        }
        let name = obj
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("field `name` (a string) is missing")?
            .to_string();
        let mut formats = BTreeMap::new();
        if let Some(f) = obj.get("formats") {
            let f = f
                .as_object()
                .ok_or("`formats` maps class names to [ring, frac] pairs")?;
            for (class, pair) in f {
                let p = pair
                    .as_array()
                    .filter(|p| p.len() == 2)
                    .and_then(|p| Some((p[0].as_i64()?, p[1].as_i64()?)));
                let (k, fr) = p.ok_or_else(|| {
                    format!("format of `{class}` must be [ring, frac], e.g. [32, 8]")
                })?;
                formats.insert(
                    class.clone(),
                    Format::new(k, fr).map_err(|e| format!("format of `{class}`: {e}"))?,
                );
            }
        }
        let gelu = match obj.get("gelu").map(|g| g.as_str()) {
            None | Some(Some("puma")) => GeluApprox::Puma,
            Some(Some("quad")) => GeluApprox::Quad,
            Some(Some("sym")) => GeluApprox::Sym,
            _ => return Err("`gelu` must be \"puma\", \"sym\" or \"quad\"".into()),
        };
        let exp = match obj.get("exp").map(|g| g.as_str()) {
            None | Some(Some("puma")) => ExpApprox::Puma,
            Some(Some("quad")) => ExpApprox::Quad,
            _ => return Err("`exp` must be \"puma\" or \"quad\"".into()),
        };
        let softmax = match obj.get("softmax").map(|g| g.as_str()) {
            None | Some(Some("puma")) => SoftmaxApprox::Puma,
            Some(Some("2quad")) => SoftmaxApprox::TwoQuad,
            _ => return Err("`softmax` must be \"puma\" or \"2quad\"".into()),
        };
        let exp_squarings = match obj.get("exp_squarings") {
            None if exp == ExpApprox::Quad => 4,
            None => 8,
            Some(x) => {
                x.as_u64()
                    .filter(|&t| (1..=16).contains(&t))
                    .ok_or("`exp_squarings` must be an integer in 1..=16")? as u32
            }
        };
        let auto = match obj.get("auto") {
            None => false,
            Some(a) => a.as_bool().ok_or("`auto` must be true or false")?,
        };
        Ok(Policy {
            name,
            formats,
            gelu,
            softmax,
            exp,
            exp_squarings,
            auto,
        })
    }

    /// One line per class, for reports and dumps.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .formats
            .iter()
            .map(|(c, f)| format!("{c}={f}"))
            .collect();
        format!(
            "{}: {}; gelu={:?}; softmax={:?}; exp={:?} with {} squarings{}",
            self.name,
            parts.join(" "),
            self.gelu,
            self.softmax,
            self.exp,
            self.exp_squarings,
            if self.auto {
                "; auto (from calibrated bounds)"
            } else {
                ""
            }
        )
    }
}
