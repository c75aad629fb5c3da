//! A model's inputs from the command line, by name. Every command that
//! evaluates a model (run, calibrate, bench, client) fills them here, so a
//! padded program means the same thing everywhere:
//!
//! - `ids` [S]: the token ids, padded with 0 up to S;
//! - `len` [1]: how many of them are real (the key mask and the pooling use
//!   it); a model without `len` must be given exactly S tokens;
//! - `segments` [S]: token-type ids (0 for the first text, 1 for `--pair`),
//!   padded with 0;
//! - `pos` [1]: the position of the first token (0; `ditto generate` gives
//!   each step's);
//! - `from parties` inputs (a session's state, e.g. a key/value cache):
//!   zero, as on a session's first run;
//! - any other input: `--input NAME=v1,v2,...` (real values).

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};

/// A model's input: its name and shape.
pub struct Slot {
    pub name: String,
    pub shape: Vec<usize>,
    /// Supplied by the model owner rather than the client.
    pub owner: bool,
    /// Session state held by the parties (`from parties`).
    pub state: bool,
}

/// The tokens of one query: ids, and the token types of a pair.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// 0/1 per token for a sentence pair; `None` for a single text.
    pub segments: Option<Vec<u32>>,
}

/// `--input NAME=v1,v2,...` values by name.
pub fn parse_named(given: &[String]) -> Result<BTreeMap<String, Vec<f64>>> {
    let mut out = BTreeMap::new();
    for g in given {
        let (name, vals) = g
            .split_once('=')
            .with_context(|| format!("--input {g}: expected NAME=v1,v2,..."))?;
        let vals =
            vals.split(',')
                .map(|v| {
                    let x: f64 = v.trim().parse().with_context(|| {
                        format!("--input {name}: `{}` is not a number", v.trim())
                    })?;
                    if !x.is_finite() {
                        bail!("--input {name}: {x} is not a finite number");
                    }
                    Ok(x)
                })
                .collect::<Result<Vec<f64>>>()?;
        out.insert(name.trim().to_string(), vals);
    }
    Ok(out)
}

/// The sequence length a model is compiled for: `--seq` when given (never
/// shorter than the input), else the input's own length.
pub fn seq_for(tokens: &Tokens, seq: Option<usize>) -> Result<usize> {
    let n = tokens.ids.len();
    if n == 0 {
        // inputs given by name only (`--input`): sizes from --seq/--size
        return Ok(seq.unwrap_or(1));
    }
    match seq {
        Some(s) if s < n => bail!(
            "the input has {n} tokens, more than --seq {s}; cutting it would drop tokens \
             (the final [SEP] among them): give a larger --seq or a shorter input"
        ),
        Some(s) => Ok(s),
        None => Ok(n),
    }
}

/// Values for every slot, by name. Errors say which input is missing or
/// does not fit, and how to supply it.
pub fn fill(
    slots: &[Slot],
    tokens: &Tokens,
    named: &BTreeMap<String, Vec<f64>>,
) -> Result<HashMap<String, Vec<f64>>> {
    let n = tokens.ids.len();
    let has_len = slots.iter().any(|s| s.name == "len");
    let mut out = HashMap::new();
    for s in slots {
        let numel: usize = s.shape.iter().product();
        if let Some(v) = named.get(&s.name) {
            if v.len() != numel {
                bail!(
                    "--input {}: {} values, the model's input has shape {:?} ({numel} values; \
                     sizes come from --seq and --size)",
                    s.name,
                    v.len(),
                    s.shape
                );
            }
            out.insert(s.name.clone(), v.clone());
            continue;
        }
        let padded = |xs: &[u32]| -> Result<Vec<f64>> {
            if s.shape.len() != 1 {
                bail!(
                    "input `{}` has shape {:?}; token inputs are vectors [S]",
                    s.name,
                    s.shape
                );
            }
            if xs.len() > numel {
                bail!(
                    "the input has {} tokens; the program was compiled for at most {numel} \
                     (ditto compile --seq)",
                    xs.len()
                );
            }
            if xs.len() < numel && !has_len {
                bail!(
                    "the input has {} tokens and the model takes exactly {numel}: it has no \
                     `len` input to mask padding, so padding would change the answer",
                    xs.len()
                );
            }
            let mut v: Vec<f64> = xs.iter().map(|&i| i as f64).collect();
            v.resize(numel, 0.0);
            Ok(v)
        };
        let v = match s.name.as_str() {
            _ if s.state => vec![0.0; numel],
            _ if s.owner => bail!(
                "input `{}` belongs to the model owner; pass it with --input {}=v1,v2,...",
                s.name,
                s.name
            ),
            "ids" => padded(&tokens.ids)?,
            "len" => {
                if numel != 1 {
                    bail!("input `len` must have shape [1], not {:?}", s.shape);
                }
                vec![n as f64]
            }
            "pos" if numel == 1 => vec![0.0],
            "segments" => match &tokens.segments {
                Some(seg) => padded(seg)?,
                None => padded(&vec![0; n])?,
            },
            other => bail!(
                "input `{other}` (shape {:?}) was not supplied: pass --input {other}=v1,v2,... \
                 (`ids`, `len` and `segments` come from --ids/--text)",
                s.shape
            ),
        };
        out.insert(s.name.clone(), v);
    }
    if tokens.segments.is_some() && !slots.iter().any(|s| s.name == "segments") {
        bail!(
            "--pair needs a model with a `segments` input (token-type ids), e.g. bert-classifier"
        );
    }
    for name in named.keys() {
        if !slots.iter().any(|s| &s.name == name) {
            let names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "--input {name}: the model has no such input (its inputs: {})",
                names.join(", ")
            );
        }
    }
    Ok(out)
}

/// A graph's inputs as evaluator tensors: each slot's values in its shape.
pub fn tensors(
    slots: &[Slot],
    values: &HashMap<String, Vec<f64>>,
) -> HashMap<String, ditto_compiler::ir::eval::Tensor> {
    slots
        .iter()
        .filter_map(|s| {
            let v = values.get(&s.name)?;
            Some((
                s.name.clone(),
                ditto_compiler::ir::eval::Tensor::new(s.shape.clone(), v.clone()),
            ))
        })
        .collect()
}

/// The inputs of an IR graph, in node order.
pub fn graph_slots(g: &ditto_compiler::ir::Graph) -> Vec<Slot> {
    use ditto_compiler::ir::{Op, Owner};
    g.ids()
        .into_iter()
        .filter_map(|i| match &g.node(i).op {
            Op::Input { name, owner } => Some(Slot {
                name: name.clone(),
                shape: g.node(i).ty.shape.clone(),
                owner: *owner == Owner::ModelOwner,
                state: *owner == Owner::Parties,
            }),
            _ => None,
        })
        .collect()
}

/// The inputs of a bytecode program, by port.
pub fn program_slots(prog: &ditto_bytecode::Program) -> Vec<Slot> {
    prog.inputs
        .iter()
        .map(|p| Slot {
            name: p.name.clone(),
            shape: prog.regs[p.reg.0 as usize]
                .shape
                .iter()
                .map(|&d| d as usize)
                .collect(),
            owner: p.owner == Some(ditto_bytecode::Owner::ModelOwner),
            state: p.owner == Some(ditto_bytecode::Owner::Parties),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, shape: &[usize]) -> Slot {
        Slot {
            name: name.into(),
            shape: shape.to_vec(),
            owner: false,
            state: false,
        }
    }

    #[test]
    fn padding_needs_a_length_input() {
        let t = Tokens {
            ids: vec![101, 7, 102],
            segments: None,
        };
        let none = BTreeMap::new();
        let v = fill(&[slot("ids", &[5]), slot("len", &[1])], &t, &none).unwrap();
        assert_eq!(v["ids"], vec![101.0, 7.0, 102.0, 0.0, 0.0]);
        assert_eq!(v["len"], vec![3.0]);
        let e = fill(&[slot("ids", &[5])], &t, &none).unwrap_err();
        assert!(e.to_string().contains("no `len` input"), "{e}");
        let e = fill(&[slot("ids", &[2]), slot("len", &[1])], &t, &none).unwrap_err();
        assert!(e.to_string().contains("at most 2"), "{e}");
        assert!(seq_for(&t, Some(2)).is_err());
        assert_eq!(seq_for(&t, Some(8)).unwrap(), 8);
    }

    #[test]
    fn segments_and_named_inputs() {
        let t = Tokens {
            ids: vec![101, 7, 102, 9, 102],
            segments: Some(vec![0, 0, 0, 1, 1]),
        };
        let named = parse_named(&["x=1.5,2".to_string()]).unwrap();
        let slots = [
            slot("ids", &[6]),
            slot("len", &[1]),
            slot("segments", &[6]),
            slot("x", &[2]),
        ];
        let v = fill(&slots, &t, &named).unwrap();
        assert_eq!(v["segments"], vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(v["x"], vec![1.5, 2.0]);
        let e = fill(&slots[..3], &t, &named).unwrap_err();
        assert!(e.to_string().contains("no such input"), "{e}");
        let e = fill(&slots, &t, &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("--input x="), "{e}");
        assert!(parse_named(&["x=nan".to_string()]).is_err());
    }
}
