//! A checkpoint as a user has it: a safetensors file or a HuggingFace
//! folder (model.safetensors, config.json, tokenizer.json). Two things make
//! it fit a model file without edits:
//!
//! - the tensor-name prefix of a task model (`bert.` in every
//!   `BertForSequenceClassification`) is detected by matching the names the
//!   model declares, or set with `--weight-prefix`;
//! - config.json's dimensions (and `id2label`) replace the model config's
//!   values when `--config` is not given.

use anyhow::{bail, Context, Result};
use ditto_compiler::elab::ConfigValue;
use ditto_compiler::gguf::Gguf;
use ditto_compiler::ir::eval::{Tensor, WeightSource};
use ditto_compiler::weights::{SafetensorsFile, TensorInfo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file behind a checkpoint.
enum Store {
    Safetensors(SafetensorsFile),
    /// llama.cpp's format, tensors under HuggingFace names.
    Gguf(Gguf),
}

/// A safetensors or GGUF file whose tensors may carry a prefix the model's
/// names lack: `name` is looked up as `prefix + name` when `name` itself is
/// absent.
pub struct Checkpoint {
    store: Store,
    names: BTreeMap<String, TensorInfo>,
    pub prefix: String,
}

/// Whether a file starts with GGUF's magic bytes.
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == b"GGUF"
}

impl Checkpoint {
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let file = if path.is_dir() {
            path.join("model.safetensors")
        } else {
            path.to_path_buf()
        };
        let (store, names) = if is_gguf(&file) {
            let g = Gguf::open(&file).map_err(anyhow::Error::msg)?;
            let names = g.info();
            (Store::Gguf(g), names)
        } else {
            let f = SafetensorsFile::open(&file)?;
            let names = f.info().clone();
            (Store::Safetensors(f), names)
        };
        Ok(Checkpoint {
            store,
            names,
            prefix: String::new(),
        })
    }

    fn source(&self) -> &dyn WeightSource {
        match &self.store {
            Store::Safetensors(f) => f,
            Store::Gguf(g) => g,
        }
    }

    fn resolve<'a>(&self, name: &'a str) -> std::borrow::Cow<'a, str> {
        if self.prefix.is_empty() || self.names.contains_key(name) {
            name.into()
        } else {
            format!("{}{name}", self.prefix).into()
        }
    }

    /// The tensors under the names the model uses (the prefix removed).
    pub fn info(&self) -> BTreeMap<String, TensorInfo> {
        self.names
            .iter()
            .map(|(k, v)| {
                let k = k.strip_prefix(&self.prefix).unwrap_or(k);
                (k.to_string(), v.clone())
            })
            .collect()
    }

    /// Sets the prefix that makes the most of `declared` (the model's
    /// weight names) found, when some are missing as they are. Returns it.
    pub fn fit(&mut self, declared: &[String]) -> Option<String> {
        let names = &self.names;
        let missing: Vec<&String> = declared
            .iter()
            .filter(|d| !names.contains_key(*d))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &missing {
            for t in names.keys() {
                if let Some(p) = t.strip_suffix(m.as_str()) {
                    if p.ends_with('.') {
                        *votes.entry(p).or_default() += 1;
                    }
                }
            }
        }
        let (best, _) = votes
            .into_iter()
            .max_by_key(|&(p, n)| (n, std::cmp::Reverse(p.len())))?;
        self.prefix = best.to_string();
        Some(self.prefix.clone())
    }
}

impl WeightSource for Checkpoint {
    fn tensor(&self, name: &str) -> Result<Tensor, String> {
        self.source().tensor(&self.resolve(name))
    }
    fn values(&self, name: &str) -> Result<std::borrow::Cow<'_, [f64]>, String> {
        self.source().values(&self.resolve(name))
    }
}

/// What a HuggingFace config.json says that a model config can use.
#[derive(Debug, Default)]
pub struct HfConfig {
    /// Config values under the names the shipped models use.
    pub values: BTreeMap<String, ConfigValue>,
    /// Label names by class index (`id2label`).
    pub labels: Option<Vec<String>>,
    /// What the values were read from, as reports name the config.
    pub source: String,
}

/// The config of a checkpoint: a GGUF file's metadata, or the config.json
/// of a checkpoint folder (or beside a file named `model.safetensors`, as in
/// such a folder), if any.
pub fn hf_config(weights: &Path) -> Result<Option<HfConfig>> {
    if is_gguf(weights) {
        let g = Gguf::open(weights).map_err(anyhow::Error::msg)?;
        return gguf_config(&g)
            .map(Some)
            .with_context(|| weights.display().to_string());
    }
    let dir: PathBuf = if weights.is_dir() {
        weights.to_path_buf()
    } else if weights
        .file_name()
        .is_some_and(|n| n == "model.safetensors")
    {
        weights.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let j: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    parse_hf_config(&j)
        .map(Some)
        .with_context(|| path.display().to_string())
}

/// A llama GGUF's hyper-parameters under the shipped models' names
/// (`{arch}.block_count` → `layers`, …, `rope.freq_base` → `theta`).
fn gguf_config(g: &Gguf) -> Result<HfConfig> {
    let arch = g
        .metadata("general.architecture")
        .context("no `general.architecture` in the metadata")?;
    let mut c = HfConfig {
        source: "GGUF metadata".into(),
        ..Default::default()
    };
    for (ours, key) in [
        ("layers", "block_count"),
        ("hidden", "embedding_length"),
        ("heads", "attention.head_count"),
        ("kv_heads", "attention.head_count_kv"),
        ("ffn", "feed_forward_length"),
        ("vocab", "vocab_size"),
        ("max_pos", "context_length"),
    ] {
        if let Some(v) = g.metadata_u64(&format!("{arch}.{key}")) {
            if v == 0 || v > i64::MAX as u64 {
                bail!("`{arch}.{key}` must be positive, not {v}");
            }
            c.values.insert(ours.into(), ConfigValue::Int(v as i64));
        }
    }
    if !c.values.contains_key("vocab") {
        if let Some(n) = g.metadata_len("tokenizer.ggml.tokens") {
            c.values.insert("vocab".into(), ConfigValue::Int(n as i64));
        }
    }
    for (ours, key) in [
        ("eps", "attention.layer_norm_rms_epsilon"),
        ("theta", "rope.freq_base"),
    ] {
        if let Some(v) = g.metadata_f64(&format!("{arch}.{key}")) {
            if !(v.is_finite() && v > 0.0) {
                bail!("`{arch}.{key}` must be a positive number, not {v}");
            }
            c.values.insert(ours.into(), ConfigValue::Float(v));
        }
    }
    Ok(c)
}

fn parse_hf_config(j: &serde_json::Value) -> Result<HfConfig> {
    let mut c = HfConfig {
        source: "config.json".into(),
        ..Default::default()
    };
    let int = |keys: &[&str]| keys.iter().find_map(|k| j.get(*k).and_then(|v| v.as_i64()));
    // (our name, HF keys: BERT-style first, then GPT-2's)
    for (ours, keys) in [
        ("layers", &["num_hidden_layers", "n_layer"][..]),
        ("hidden", &["hidden_size", "n_embd"]),
        ("heads", &["num_attention_heads", "n_head"]),
        ("ffn", &["intermediate_size", "n_inner"]),
        ("vocab", &["vocab_size"]),
        ("max_pos", &["max_position_embeddings", "n_positions"]),
    ] {
        if let Some(v) = int(keys) {
            if v <= 0 {
                bail!("`{}` must be positive, not {v}", keys[0]);
            }
            c.values.insert(ours.into(), ConfigValue::Int(v));
        }
    }
    // GPT-2 leaves n_inner null for 4 × n_embd
    if !c.values.contains_key("ffn") {
        if let Some(ConfigValue::Int(h)) = c.values.get("hidden") {
            if j.get("n_embd").is_some() {
                c.values.insert("ffn".into(), ConfigValue::Int(4 * h));
            }
        }
    }
    if let Some(eps) = ["layer_norm_eps", "layer_norm_epsilon"]
        .iter()
        .find_map(|k| j.get(*k).and_then(|v| v.as_f64()))
    {
        c.values.insert("eps".into(), ConfigValue::Float(eps));
    }
    if let Some(m) = j.get("id2label").and_then(|v| v.as_object()) {
        let mut labels = vec![String::new(); m.len()];
        for (k, v) in m {
            let i: usize = k.parse().ok().filter(|&i| i < m.len()).with_context(|| {
                format!("id2label: `{k}` is not a class index below {}", m.len())
            })?;
            labels[i] = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
        }
        c.values
            .insert("labels".into(), ConfigValue::Int(labels.len() as i64));
        c.labels = Some(labels);
    } else if let Some(n) = int(&["num_labels"]) {
        c.values.insert("labels".into(), ConfigValue::Int(n));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_and_gpt2_configs_map_to_the_model_names() {
        let bert = serde_json::json!({
            "num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 12,
            "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512,
            "layer_norm_eps": 1e-12, "id2label": {"1": "pos", "0": "neg"}
        });
        let c = parse_hf_config(&bert).unwrap();
        assert_eq!(c.values["layers"], ConfigValue::Int(6));
        assert_eq!(c.values["labels"], ConfigValue::Int(2));
        assert_eq!(c.labels.unwrap(), vec!["neg", "pos"]);
        let gpt2 = serde_json::json!({"n_layer": 12, "n_embd": 768, "n_head": 12, "n_inner": null,
            "n_positions": 1024, "layer_norm_epsilon": 1e-5, "vocab_size": 50257});
        let c = parse_hf_config(&gpt2).unwrap();
        assert_eq!(c.values["ffn"], ConfigValue::Int(3072));
        assert_eq!(c.values["max_pos"], ConfigValue::Int(1024));
        let bad = serde_json::json!({"id2label": {"7": "x"}});
        assert!(parse_hf_config(&bad).is_err());
    }
}
