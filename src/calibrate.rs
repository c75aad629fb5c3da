//! `ditto calibrate`: float evaluation of a model over sample inputs,
//! recording the largest |value| of every node (compiler::calibrate).

use anyhow::{anyhow, bail, Context, Result};
use ditto_compiler::calibrate::Calibration;
use ditto_compiler::ir::eval::max_abs;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// Model file, or the name of one in models/.
    file: String,
    #[arg(long, required_unless_present = "random_weights")]
    weights: Option<PathBuf>,
    #[arg(long, value_name = "SEED", conflicts_with = "weights")]
    random_weights: Option<u64>,
    #[arg(long)]
    config: Option<String>,
    #[arg(long)]
    layers: Option<i64>,
    /// A sample text (repeatable), tokenized with tokenizer.json beside --weights.
    #[arg(long)]
    text: Vec<String>,
    /// A file of sample texts, one per line.
    #[arg(long)]
    texts: Option<PathBuf>,
    /// A sample as token ids, comma-separated (repeatable).
    #[arg(long)]
    ids: Vec<String>,
    /// Bounds are the observed maxima times this.
    #[arg(long, default_value_t = 2.0)]
    margin: f64,
    #[arg(short, long)]
    output: PathBuf,
}

pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    if !(args.margin >= 1.0 && args.margin.is_finite()) {
        bail!("--margin must be at least 1");
    }
    let mut texts = args.text.clone();
    if let Some(f) = &args.texts {
        let t =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        texts.extend(
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    let mut samples: Vec<Vec<u32>> = Vec::new();
    if !texts.is_empty() {
        let tj = crate::tokens::tokenizer_beside(&args.weights)?;
        for t in &texts {
            samples.push(crate::tokens::encode(&tj, t)?);
        }
    }
    for ids in &args.ids {
        samples.push(crate::tokens::parse_ids(ids)?);
    }
    if samples.is_empty() {
        bail!("give samples with --text, --texts FILE or --ids");
    }
    let path = crate::model_path(&args.file);
    let crate::run::Loaded {
        weights,
        opts: base,
        ..
    } = crate::run::load(
        &path,
        &args.weights,
        args.random_weights,
        &args.config,
        args.layers,
        1,
    )?;
    let mut cal: Option<Calibration> = None;
    for (k, ids) in samples.iter().enumerate() {
        let opts = ditto_compiler::elab::Options {
            seq: Some(ids.len() as i64),
            ..base.clone()
        };
        let (_, e) = crate::compile_reported(&path, &opts)?;
        let g = &e.graph;
        let toks = crate::inputs::Tokens {
            ids: ids.clone(),
            segments: None,
        };
        let slots = crate::inputs::graph_slots(g);
        let values = crate::inputs::fill(&slots, &toks, &Default::default())?;
        let inputs = crate::inputs::tensors(&slots, &values);
        let m = max_abs(g, &inputs, weights.as_ref())
            .map_err(|e| anyhow!("sample {}: evaluation failed: {e}", k + 1))?;
        let c = cal.get_or_insert_with(|| Calibration::new(&e.model, &e.config, g, args.margin));
        c.add(g, &m).map_err(|e| anyhow!("sample {}: {e}", k + 1))?;
    }
    let cal = cal.expect("at least one sample");
    let text = serde_json::to_string_pretty(&cal.to_json())?;
    std::fs::write(&args.output, text)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "wrote {}: {} nodes of {} (config {}) over {} samples, margin {}",
        args.output.display(),
        cal.observed.len(),
        cal.model,
        cal.config,
        cal.samples,
        cal.margin
    );
    Ok(())
}
